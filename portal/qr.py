"""QR codes as PNG images (one module for the app, on the maintained ``qrcode`` library)."""

from __future__ import annotations

import logging
import struct
import zlib

import qrcode
import requests

logger = logging.getLogger(__name__)


QR_FETCH_TIMEOUT = 5


def qr_png_render(text: str, *, scale: int = 8) -> bytes:
    """``text`` as a QR code in a greyscale PNG (qrcode's matrix, encoded here: no Pillow needed)."""
    code = qrcode.QRCode(border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    rows = b"".join((b"\x00" + bytes(0 if dark else 255 for dark in line for _ in range(scale))) * scale
                    for line in matrix)
    size = len(matrix) * scale

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def qr_png_fetch_or_render(url: str) -> bytes:
    """The code's QR image from WeCom; if it cannot be fetched in time, the same URL drawn as a QR here."""
    try:
        response = requests.get(url, timeout=QR_FETCH_TIMEOUT)
        if response.status_code == 200 and response.content.startswith(b"\x89PNG"):
            return response.content
    except requests.RequestException:
        logger.warning("QR image %s could not be fetched; drawing it", url)
    return qr_png_render(url)
