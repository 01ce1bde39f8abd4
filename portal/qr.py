"""QR codes: the one QR module of the app, on the maintained ``qrcode`` library.

As PNG files (``qr_png_render``): qrcode draws and writes the PNG itself, through its pure-Python backend
(``PyPNGImage``, on pypng), a 1-bit greyscale image. The WeCom sandbox, which imports nothing of ours, calls the
same library the same way for its contact-way images (``wecom_sandbox.contacts.qr_png``).
As Pillow images for drawing on something else (``qr_image``, used by the posters): qrcode computes the
modules, Pillow scales them up to the pixel size asked.
Read back (``qr_payload_read``): what a QR image at a URL encodes, fetched through the WeCom gateway and decoded
by zxing-cpp, so that posters redraw a contact way's code crisp at any size.
"""

from __future__ import annotations

import io
import logging

import qrcode
import qrcode.exceptions
import requests
from PIL import Image
from qrcode.image.pure import PyPNGImage

logger = logging.getLogger(__name__)


QR_FETCH_TIMEOUT = 5


def qr_png_render(text: str, *, scale: int = 8) -> bytes:
    """``text`` as a QR code in a PNG: ``scale`` pixels a module, the standard 4-module quiet zone."""
    code = qrcode.QRCode(box_size=scale, border=4, image_factory=PyPNGImage)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()


def qr_matrix(text: str, *, border: int = 4, mask_pattern: int | None = None) -> list[list[bool]]:
    """The modules of ``text``'s QR code (dark = True), the ``border``-module quiet zone included.

    ``mask_pattern`` None lets qrcode pick the best of the eight masks (its penalty score, about 5 ms in pure
    Python); a fixed one (0–7) is as valid for every reader and six times faster, for codes drawn by the thousand.
    """
    code = qrcode.QRCode(border=border, mask_pattern=mask_pattern)
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()


def qr_image(text: str, *, size: int, border: int = 4, mask_pattern: int | None = None,
             min_scale: int = 1) -> Image.Image:
    """``text`` as a QR code in a ``size`` × ``size`` greyscale ("L") Pillow image, quiet zone included.

    Each module is a whole number of pixels (crisp edges for the camera), the code centred on white; the
    pixels left over widen the quiet zone. Raises ValueError if ``size`` has fewer than ``min_scale`` pixels a
    module, or the text is more than a QR code holds.
    """
    try:
        matrix = qr_matrix(text, border=border, mask_pattern=mask_pattern)
    except qrcode.exceptions.DataOverflowError as exc:
        raise ValueError(f"{len(text)} characters are more than a QR code holds") from exc
    modules = len(matrix)
    scale = size // modules
    if scale < max(1, min_scale):
        raise ValueError(f"a QR code of {modules} modules cannot be drawn in {size} pixels")
    code = Image.frombytes("L", (modules, modules), bytes(0 if dark else 255 for row in matrix for dark in row))
    code = code.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
    if code.width == size:
        return code
    image = Image.new("L", (size, size), 255)
    offset = (size - code.width) // 2
    image.paste(code, (offset, offset))
    return image


def qr_decode(data: bytes) -> str | None:
    """The text of the first QR code in an image (PNG, JPEG…), by zxing-cpp; None if there is none or the bytes
    are not an image."""
    import zxingcpp

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
            found = zxingcpp.read_barcodes(image.convert("L"), formats=qr_only)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return next((code.text for code in found if code.valid and code.text), None)


def qr_payload_read(*, url: str) -> str | None:
    """What the QR image at ``url`` (a contact way's ``qr_code`` from WeCom) encodes; None if it cannot be
    fetched now or holds no QR code (logged; the caller tries again later)."""
    from portal.wecom.gateway import WeComError, wecom_file_fetch

    try:
        data = wecom_file_fetch(url, caller="portal.qr.qr_payload_read")
    except WeComError as exc:
        logger.warning("QR image could not be fetched: %s", exc)
        return None
    payload = qr_decode(data)
    if payload is None:
        logger.warning("QR image fetched holds no readable QR code (%d bytes)", len(data))
    return payload


def qr_png_fetch_or_render(url: str) -> bytes:
    """The code's QR image from WeCom; if it cannot be fetched in time, the same URL drawn as a QR here."""
    try:
        response = requests.get(url, timeout=QR_FETCH_TIMEOUT)
        if response.status_code == 200 and response.content.startswith(b"\x89PNG"):
            return response.content
    except requests.RequestException:
        logger.warning("QR image %s could not be fetched; drawing it", url)
    return qr_png_render(url)
