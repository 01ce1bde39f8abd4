"""Member tasks: thin, idempotent (the services claim their work), acks_late (portal.tasks defaults)."""

from __future__ import annotations

from customers.models import MemberImport
from portal.tasks import xiaoer_task


@xiaoer_task(time_limit=6 * 3600, soft_time_limit=6 * 3600 - 60)
def member_import_task(*, job_id: int) -> dict:
    from customers.members.imports import member_import_run

    job = MemberImport.objects.filter(pk=job_id).first()
    if job is None:
        return {"status": "missing"}
    job = member_import_run(job=job)
    return {"status": job.status, "rows": job.rows_done, "created": job.rows_created, "updated": job.rows_updated}


@xiaoer_task()
def members_unify_task(*, member_ids: list[int] | None = None) -> dict:
    from customers.members.services import members_unify

    result = members_unify(member_ids=member_ids)
    return {"linked": result.linked, "released": result.released, "conflicts": result.conflicts}


@xiaoer_task()
def rfm_compute_task() -> int:
    from customers.members.services import rfm_compute

    return rfm_compute()


@xiaoer_task()
def member_imports_requeue_task() -> int:
    from customers.members.imports import member_imports_requeue

    return member_imports_requeue()


@xiaoer_task()
def member_import_files_purge_task() -> int:
    from customers.members.imports import member_import_files_purge

    return member_import_files_purge()
