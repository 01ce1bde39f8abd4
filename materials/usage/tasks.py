"""Beat job of material usage: thin, idempotent (a replayed batch counts nothing twice)."""

from __future__ import annotations

from portal.tasks import xiaoer_task


@xiaoer_task(max_retries=0)  # the next beat run, 10 s later, is the retry
def material_uses_flush_task() -> int:
    from materials.usage.services import material_uses_flush

    return material_uses_flush()
