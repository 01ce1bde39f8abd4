"""Making tasks in tests through the real services."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from campaigns.tasks.models import Task
from campaigns.tasks.services import TargetSpec, campaign_create, task_create, task_dispatch


def task_made(*, by, campaign=None, title: str = "门店陈列检查", target: TargetSpec | None = None,
              hours: int = 48, **kwargs) -> Task:
    campaign = campaign or campaign_create(by=by, name="双十二陈列")
    now = timezone.now()
    return task_create(campaign=campaign, by=by, kind=kwargs.pop("kind", "offline"), title=title,
                       start_at=kwargs.pop("start_at", now - timedelta(minutes=1)),
                       deadline=kwargs.pop("deadline", now + timedelta(hours=hours)),
                       target=target or TargetSpec(), **kwargs)


def task_dispatched(*, by, stores, **kwargs) -> Task:
    task = task_made(by=by, target=TargetSpec(stores=list(stores)), **kwargs)
    task_dispatch(task=task, by=by)
    task.refresh_from_db()
    return task
