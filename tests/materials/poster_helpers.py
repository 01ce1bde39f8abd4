"""Helpers of the localized-poster tests: each guide's own code, and what a stored poster's QR decodes to."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image

from customers.models import ContactWay
from materials.library.storage import file_read


def payload_of(staff) -> str:
    return f"https://work.weixin.qq.com/ca/cawtest{staff.pk:06d}"


def code_for(staff, *, payload: str | None = None) -> ContactWay:
    """The staff member's own 一人一码, made in WeCom, its QR image already read (the payload kept on the code)."""
    return ContactWay.objects.create(kind=ContactWay.Kind.STAFF, name=f"{staff.name}的员工码", store=staff.store,
                                     staff=staff, state=f"p{staff.pk:08d}", config_id=f"cfg-p{staff.pk}",
                                     qr_code=f"https://wework.test/q/{staff.pk}.png",
                                     qr_payload=payload or payload_of(staff))


def decoded_qr(poster) -> list[str]:
    """What the QR codes on the stored poster image decode to (zxing-cpp)."""
    image = Image.open(io.BytesIO(file_read(name=poster.file)))
    return [code.text for code in zxingcpp.read_barcodes(image.convert("L"))]

