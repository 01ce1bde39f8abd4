"""Reads of the material library: what a viewer may use now, search, a material's history."""

from __future__ import annotations

from django.db.models import QuerySet

from materials.library.models import Folder, Material, MaterialVersion


def materials_usable(*, viewer, kind: str | None = None, search: str = "", folder: Folder | None = None,
                     tag_id: int | None = None) -> QuerySet[Material]:
    """Materials ``viewer`` may use, attach or send now: in their scope, published, inside the validity window.

    Tasks attach from this, the mobile page lists it, mass sends check against it.
    """
    materials = Material.objects.for_user(viewer).usable().select_related("current_version", "folder")
    if kind:
        materials = materials.filter(kind=kind)
    if folder is not None:
        materials = materials.filter(folder=folder)
    if tag_id:
        materials = materials.filter(tags=tag_id)
    search = search.strip()[:64]
    if search:
        materials = materials.filter(search_text__icontains=search)  # the trigram index on UPPER(search_text)
    return materials


def material_usable_get(*, viewer, pk: int) -> Material:
    """One usable material of the viewer's scope; Material.DoesNotExist otherwise (a view's 404)."""
    return materials_usable(viewer=viewer).get(pk=pk)


def material_versions(*, viewer, material: Material) -> QuerySet[MaterialVersion]:
    return MaterialVersion.objects.for_user(viewer).filter(material=material).select_related("created_by")


def version_usable_get(*, viewer, material_id: int, version_id: int | None = None) -> MaterialVersion:
    """The version to hand out: the current one of a usable material, or a given one of it."""
    material = material_usable_get(viewer=viewer, pk=material_id)
    if version_id is None or version_id == material.current_version_id:
        assert material.current_version is not None  # usable() requires it
        return material.current_version
    return MaterialVersion.objects.get(material=material, pk=version_id)


def material_audience_stores(*, material: Material):
    """The open stores ``material``'s audience reaches (the reverse of the viewer test): a poster job's stores."""
    from django.db.models import Q

    from stores.access.scoping import region_ids_with_descendants
    from stores.org.models import Store

    reach = Q(pk__in=material.audience_stores.values("pk"))
    if material.audience_all:
        reach = Q(pk__isnull=False)
    region_ids = list(material.audience_regions.values_list("pk", flat=True))
    if region_ids:
        reach |= Q(region_id__in=region_ids_with_descendants(region_ids=region_ids))
    reach |= Q(franchisee_id__in=material.audience_franchisees.values("pk"))
    if material.audience_store_kinds:
        reach |= Q(kind__in=material.audience_store_kinds)
    stores = Store.objects.open().filter(reach)
    if material.owner_franchisee_id is not None:
        stores = stores.filter(franchisee_id=material.owner_franchisee_id)
    return stores
