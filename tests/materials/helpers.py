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
