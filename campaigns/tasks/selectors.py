"""Reads of the task engine: a task's target stores, its preview, an assignment's text and follow-up list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from campaigns.tasks.models import OPEN_STATUSES, Assignment, Executor, Task
from stores.access.scoping import region_ids_with_descendants
from stores.org.models import Staff, Store

PREVIEW_SAMPLE = 20


def task_target_stores(*, task: Task) -> QuerySet[Store]:
    """The open stores the task's target reaches (unscoped: the dispatch's set). Regions (with sub-regions),
    franchisees, cities and explicit stores are united; store kinds narrow them, or alone select every store of
    those kinds. Nothing chosen reaches nothing. A franchisee's task reaches only that franchisee's stores."""
    parts = Q(pk__in=[])
    chosen = False
    region_ids = list(task.target_regions.values_list("pk", flat=True))
    if region_ids:
        parts |= Q(region_id__in=region_ids_with_descendants(region_ids=region_ids))
        chosen = True
    franchisee_ids = list(task.target_franchisees.values_list("pk", flat=True))
    if franchisee_ids:
        parts |= Q(franchisee_id__in=franchisee_ids)
        chosen = True
    if task.target_cities:
        parts |= Q(city__in=task.target_cities)
        chosen = True
    store_ids = list(task.target_stores.values_list("pk", flat=True))
    if store_ids:
        parts |= Q(pk__in=store_ids)
        chosen = True
    stores = Store.objects.open()
    if chosen:
        stores = stores.filter(parts)
    if task.target_store_kinds:
        stores = stores.filter(kind__in=task.target_store_kinds)
    elif not chosen:
        return stores.none()
    owner = task.campaign.owner_franchisee_id
    if owner is not None:
        stores = stores.filter(franchisee_id=owner)
    return stores


def task_executing_staff(*, task: Task, stores: QuerySet[Store]) -> QuerySet[Staff]:
    staff = Staff.objects.active().filter(store__in=stores.values("pk"))
    if task.executor_positions:
        staff = staff.filter(position__in=task.executor_positions)
    return staff


@dataclass(frozen=True)
class TargetPreview:
    stores: int
    staff: int
    assignments: int
    sample: list[tuple[str, str]]  # (code, name) of up to PREVIEW_SAMPLE stores


def task_target_preview(*, task: Task, viewer) -> TargetPreview:
    """How many stores and executing staff the task reaches, of the viewer's scope, and which (a sample)."""
    stores = task_target_stores(task=task).filter(pk__in=Store.objects.for_user(viewer).values("pk"))
    store_count = stores.count()
    staff_count = task_executing_staff(task=task, stores=stores).count()
    sample = list(stores.order_by("code").values_list("code", "name")[:PREVIEW_SAMPLE])
    assignments = store_count if task.executor == Executor.STORE else staff_count
    return TargetPreview(stores=store_count, staff=staff_count, assignments=assignments, sample=sample)


def deadline_text(task: Task) -> str:
    return timezone.localtime(task.deadline).strftime("%m-%d %H:%M")


def assignment_text(*, assignment: Assignment) -> str:
    """The store task's text with {员工姓名} filled in for this assignment (store-level: 各位同事)."""
    name = assignment.staff.name if assignment.staff_id and assignment.staff else _("各位同事")
    return assignment.store_task.text.replace("{员工姓名}", name)


def assignments_due(*, viewer, on: date) -> QuerySet[Assignment]:
    return (Assignment.objects.for_user(viewer)
            .filter(status__in=OPEN_STATUSES, task__deadline__date__lte=on)
            .select_related("task", "store_task", "store", "staff"))


def followup_customers(*, assignment: Assignment, viewer):
    """The customers of a follow-up assignment: the task's segment's customers whose primary staff is the
    assignment's staff member, as ``viewer`` may see them."""
    from customers.segments.selectors import segment_queryset

    task = assignment.task
    if task.segment is None or assignment.staff_id is None:
        from customers.models import Customer

        return Customer.objects.none()
    return segment_queryset(rule=task.segment.rule, viewer=viewer).filter(staff_id=assignment.staff_id)


# -- notifications, reminders, escalations (campaigns/tasks/notify.py) -------------------------------------------
REMINDER_LOG_SHOWN = 50


@dataclass(frozen=True)
class ReminderLogView:
    counts: list[tuple[str, str, int]]  # (kind label, status label, rows)
    rows: list  # the latest REMINDER_LOG_SHOWN rows other than plain sent notices, newest first


def task_reminder_log(*, task: Task, viewer) -> ReminderLogView:
    """What was sent about a task, as the viewer may see it: counts per kind and state, and the latest
    reminders, escalations and notices that did not go out (skipped, deferred, failed) with their reasons."""
    from django.db.models import Count

    from campaigns.tasks.models import ReminderKind, ReminderLog, ReminderStatus

    logs = ReminderLog.objects.for_user(viewer).filter(task=task)
    counts = [(str(ReminderKind(kind).label), str(ReminderStatus(status).label), n) for kind, status, n in
              logs.order_by().values_list("kind", "status").annotate(n=Count("id")).order_by("kind", "status")]
    rows = list(logs.exclude(kind=ReminderKind.NOTIFY, status=ReminderStatus.SENT)
                .select_related("store", "assignment__staff").order_by("-created_at", "-id")[:REMINDER_LOG_SHOWN])
    return ReminderLogView(counts=counts, rows=rows)
