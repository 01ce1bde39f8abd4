"""Tasks of posters: the bulk rendering job, and resuming jobs whose worker died."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.tasks import enqueue_after_commit, xiaoer_task
from portal.wecom.models import SyncRun

POSTERS_STALE_AFTER = timedelta(minutes=10)


@xiaoer_task()
def posters_job_task(*, run_id: int) -> str:
    from materials.posters.services import posters_job_run

    return posters_job_run(run_id=run_id).status


@xiaoer_task()
def posters_job_resume_task() -> int:
    """Poster jobs still running long after they started (a worker died): continue them from their cursor
    (a job another worker is running ignores the call)."""
    from materials.posters.services import POSTER_JOB_KIND

    stale = SyncRun.objects.filter(kind=POSTER_JOB_KIND, status=SyncRun.Status.RUNNING,
                                   started_at__lt=timezone.now() - POSTERS_STALE_AFTER)
    ids = list(stale.values_list("pk", flat=True)[:100])
    for run_id in ids:
        enqueue_after_commit(posters_job_task, run_id=run_id)
    return len(ids)
