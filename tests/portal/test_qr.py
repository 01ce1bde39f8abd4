"""portal.qr: a QR code is a PNG that decodes (pypng's reader) to exactly the modules qrcode computes for the
text, at the asked scale with a 4-module quiet zone; and WeCom's own image is used when it can be fetched."""

from __future__ import annotations

import struct

import png
import pytest
import qrcode

from portal import qr

URL = "https://wework.qpic.cn/wwpic/contact_way/8c3e1b2a.png?state=s%3A12%3Ak9"


def _decoded(data: bytes) -> tuple[int, int, list[list[int]]]:
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    assert info["greyscale"] and not info["alpha"]
    return width, height, [list(row) for row in rows]


@pytest.mark.parametrize(("text", "scale"), [(URL, 8), ("短文本 ✓", 3), ("x" * 900, 1)])
def test_the_png_draws_qrcodes_matrix_for_the_text(text, scale):
    data = qr.qr_png_render(text, scale=scale)
    expected = qrcode.QRCode(border=4)
    expected.add_data(text)
    matrix = expected.get_matrix()  # the modules, the 4-module quiet zone included

    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    size = len(matrix) * scale
    assert struct.unpack(">II", data[16:24]) == (size, size)
    width, height, rows = _decoded(data)
    assert (width, height) == (size, size)
    # Every pixel of every module, not a sample: dark (0) exactly where qrcode puts a module.
    assert rows == [[0 if dark else 1 for dark in line for _ in range(scale)] for line in matrix for _ in range(scale)]


def test_different_texts_draw_different_codes():
    assert qr.qr_png_render("a") != qr.qr_png_render("b")


def test_wecoms_image_is_used_when_it_can_be_fetched(monkeypatch):
    wecom_png = qr.qr_png_render("from WeCom")

    class Response:
        status_code = 200
        content = wecom_png

    monkeypatch.setattr(qr.requests, "get", lambda url, timeout: Response())
    assert qr.qr_png_fetch_or_render(URL) == wecom_png


def test_the_url_is_drawn_here_when_wecom_answers_something_else(monkeypatch):
    class Response:
        status_code = 200
        content = b"<html>busy</html>"

    monkeypatch.setattr(qr.requests, "get", lambda url, timeout: Response())
    assert qr.qr_png_fetch_or_render(URL) == qr.qr_png_render(URL)


@pytest.mark.parametrize("size", [164, 170])
def test_an_image_code_has_qrcodes_modules_in_whole_pixels_centred_in_the_size_asked(size):
    matrix = qr.qr_matrix(URL)
    scale, offset = size // len(matrix), (size - size // len(matrix) * len(matrix)) // 2
    image = qr.qr_image(URL, size=size)
    assert image.size == (size, size) and image.mode == "L"
    pixels = image.load()
    assert all(pixels[offset + col * scale + dx, offset + row * scale + dy] == (0 if dark else 255)
               for row, line in enumerate(matrix) for col, dark in enumerate(line) for dx in (0, scale - 1)
               for dy in (0, scale - 1))
    assert pixels[0, 0] == 255 and pixels[size - 1, size - 1] == 255  # the quiet zone's corners


def test_an_image_code_too_dense_for_its_size_is_refused():
    with pytest.raises(ValueError, match="cannot be drawn"):
        qr.qr_image(URL, size=80, min_scale=2)
