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


def task_in(store) -> Task:
    """A task dispatched by HQ to this one store, executed by the store as a whole, with a variant, a checklist
    item and a material (the scoping matrix's row of every task model for the store)."""
    from django.contrib.auth import get_user_model

    from campaigns.tasks.services import ChecklistSpec, VariantSpec
    from tests.materials.helpers import script_published

    hq = get_user_model().objects.filter(username="hq-tasks").first() or \
        get_user_model().objects.create_user(username="hq-tasks", password="pw-for-tests-2026", is_superuser=True)
    material = script_published(by=hq, title=f"任务话术-{store.code}", text=f"{store.code} 的话术", stores=[store])
    task = task_made(by=hq, campaign=campaign_create(by=hq, name=f"活动-{store.code}"), title=f"任务-{store.code}",
                     instructions=f"{store.code} 的陈列", materials=[material], target=TargetSpec(stores=[store]),
                     checklist=[ChecklistSpec(text=f"{store.code} 检查项")],
                     variants=[VariantSpec(name=f"{store.code} 版本", text=f"{store.code} 文案",
                                           store_kind=store.kind)])
    task_dispatch(task=task, by=hq)
    task.refresh_from_db()
    return task


def assignment_part_in(assignment, kind: str):
    """A row hanging off an assignment, written directly (fast): an event, a tick, a photo, a follow-up."""
    from django.utils import timezone

    from campaigns.tasks.models import AssignmentEvent, ChecklistTick, Evidence, FollowUp
    from tests.factories import CustomerFactory, StaffFactory

    now = timezone.now()
    if kind == "event":
        return AssignmentEvent.objects.create(assignment=assignment, from_status="pending", to_status="confirmed",
                                              at=now, source="admin")
    if kind == "tick":
        return ChecklistTick.objects.create(assignment=assignment, item=assignment.task.checklist.first(), at=now)
    if kind == "evidence":
        return Evidence.objects.create(assignment=assignment, file=f"evidence/{assignment.pk}.jpg", mime="image/jpeg",
                                       size=10, sha256="0" * 64, at=now)
    customer = CustomerFactory(staff=StaffFactory(store=assignment.store))
    return FollowUp.objects.create(assignment=assignment, customer=customer, outcome="reached", at=now)
