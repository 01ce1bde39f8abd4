"""How every task is written: thin, idempotent, acks_late, enqueued after commit.

    @xiaoer_task()
    def store_stats_refresh_task(*, day: str) -> None:
        store_stats_refresh(day=date.fromisoformat(day))   # the service does the work

    enqueue_after_commit(store_stats_refresh_task, day="2026-11-24")
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

TASK_DEFAULTS: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


def xiaoer_task(**options: Any):
    """shared_task with the project's defaults; keyword-only task arguments are expected."""
    return shared_task(**{**TASK_DEFAULTS, **options})


def enqueue_after_commit(task, /, **kwargs: Any) -> None:
    """Send ``task`` only once the surrounding transaction commits (at once outside one).

    robust: a broker outage is logged, never turned into an error for data already committed;
    every enqueuer has a beat job that finds work left undone (e.g. callbacks_requeue_task).
    """
    transaction.on_commit(lambda: task.apply_async(kwargs=kwargs), robust=True)


@xiaoer_task()
def beat_heartbeat_task() -> None:
    from portal.models import BeatHeartbeat

    BeatHeartbeat.objects.update_or_create(name="beat", defaults={"beat_at": timezone.now()})
