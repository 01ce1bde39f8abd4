"""Tasks of the library: the expiry run (beat)."""

from __future__ import annotations

from portal.tasks import xiaoer_task


@xiaoer_task()
def materials_expiry_task() -> dict:
    from materials.library.services import materials_expiry_run

    result = materials_expiry_run()
    return {"warned": result.warned, "expired": result.expired}
