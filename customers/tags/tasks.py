"""Tasks of tags: pulling WeCom's corp tags, purging deleted tags, bulk tagging jobs."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.tasks import enqueue_after_commit, xiaoer_task
from portal.wecom.gateway import WeComRateLimited, WeComUnavailable
from portal.wecom.models import SyncRun

TAGGING_STALE_AFTER = timedelta(minutes=10)


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def customers_tagging_task(*, run_id: int) -> str:
    from customers.tags.services import customers_tagging_run

    return customers_tagging_run(run_id=run_id).status


@xiaoer_task()
def customers_tagging_resume_task() -> int:
    """Tagging jobs whose worker died or gave up retrying: continue them (a running one ignores the call)."""
    from customers.tags.services import TAGGING_KIND

    stale = SyncRun.objects.filter(kind=TAGGING_KIND, status=SyncRun.Status.RUNNING,
                                   started_at__lt=timezone.now() - TAGGING_STALE_AFTER)
    ids = list(stale.values_list("pk", flat=True)[:100])
    for run_id in ids:
        enqueue_after_commit(customers_tagging_task, run_id=run_id)
    return len(ids)


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def tags_pull_task() -> dict:
    from customers.tags.services import tags_pull

    pulled = tags_pull()
    return {"groups": pulled.groups, "tags": pulled.tags, "deleted": len(pulled.deleted_tag_ids)}


@xiaoer_task()
def tags_purge_task(*, tag_ids: list[int]) -> int:
    from customers.tags.services import tag_ids_purge

    return tag_ids_purge(tag_ids=tag_ids)
