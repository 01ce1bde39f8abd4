"""Making materials in tests through the real services."""

from __future__ import annotations

from materials.library.models import Material, MaterialKind
from materials.library.services import (
    VersionContent,
    material_audience_set,
    material_create,
    material_publish,
    material_version_add,
)


def script_published(*, by, title: str = "开业话术", text: str = "{客户称呼}您好，{门店名称}开业啦",
                     **audience) -> Material:
    material = material_create(by=by, kind=MaterialKind.SCRIPT, title=title)
    material_version_add(material=material, by=by, content=VersionContent(text=text))
    if audience:
        material_audience_set(material=material, by=by, **audience)
    material_publish(material=material, by=by)
    material.refresh_from_db()
    return material


POSTER_SIZE = (750, 1334)
POSTER_LAYOUT = {"elements": [
    {"type": "text", "field": "store_name", "x": 60, "y": 80, "width": 630, "height": 120, "font_size": 48,
     "min_font_size": 28, "color": "#1a1a1a", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_address", "x": 60, "y": 220, "width": 630, "height": 80, "font_size": 28,
     "min_font_size": 20, "color": "#555555", "max_lines": 2},
    {"type": "text", "field": "store_hours", "x": 60, "y": 310, "width": 630, "height": 40, "font_size": 26},
    {"type": "text", "field": "staff_name", "x": 60, "y": 1180, "width": 360, "height": 60, "font_size": 40,
     "min_font_size": 24, "color": "#c8102e"},
    {"type": "qr", "x": 470, "y": 1070, "size": 240},
]}


def poster_background() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", POSTER_SIZE, (245, 230, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def poster_template_published(*, by, title: str = "门店开业海报", layout: dict | None = None, publish: bool = True,
                              **audience) -> Material:
    """A poster template (a plain background, the store's details, the staff name and a QR box), through the
    library's services, aimed at ``audience`` (material_audience_set's arguments)."""
    material = material_create(by=by, kind=MaterialKind.POSTER_TEMPLATE, title=title)
    material_version_add(material=material, by=by, content=VersionContent(
        data=poster_background(), file_name="background.png", layout=layout or POSTER_LAYOUT))
    if audience:
        material_audience_set(material=material, by=by, **audience)
    if publish:
        material_publish(material=material, by=by)
    material.refresh_from_db()
    return material


def material_published(*, by, kind: str, title: str, content: VersionContent, folder=None, tags=(),
                       expires_at=None, description: str = "", **audience) -> Material:
    """A material of any kind with one version, its audience set (if given) and published."""
    material = material_create(by=by, kind=kind, title=title, folder=folder, tags=tags, expires_at=expires_at,
                               description=description)
    material_version_add(material=material, by=by, content=content)
    if audience:
        material_audience_set(material=material, by=by, **audience)
    material_publish(material=material, by=by)
    material.refresh_from_db()
    return material
