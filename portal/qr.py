"""QR codes as PNG images: the one QR module of the app, on the maintained ``qrcode`` library.

qrcode draws and writes the PNG itself, through its pure-Python backend (``PyPNGImage``, on pypng): a
1-bit greyscale image, no Pillow needed. The WeCom sandbox, which imports nothing of ours, calls the same
library the same way for its contact-way images (``wecom_sandbox.contacts.qr_png``).
"""

from __future__ import annotations

import io
import logging

import qrcode
import requests
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


def qr_png_fetch_or_render(url: str) -> bytes:
    """The code's QR image from WeCom; if it cannot be fetched in time, the same URL drawn as a QR here."""
    try:
        response = requests.get(url, timeout=QR_FETCH_TIMEOUT)
        if response.status_code == 200 and response.content.startswith(b"\x89PNG"):
            return response.content
    except requests.RequestException:
        logger.warning("QR image %s could not be fetched; drawing it", url)
    return qr_png_render(url)
