"""Material-use test helpers: recording as a page would."""

from __future__ import annotations

from materials.usage.services import material_use_record


def use(material, *, action: str = "view", store=None, staff=None, user=None, version=None) -> None:
    material_use_record(material_id=material.pk, version_id=(version or material.current_version).pk,
                        store_id=store.pk if store else None, staff_id=staff.pk if staff else None,
                        user_id=user.pk if user else None, action=action)
