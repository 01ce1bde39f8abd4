"""Reads of the mobile task page: the viewer's open work, a store's tasks with their progress, one assignment
with everything its page shows, the team's progress on a store task, the store's ranking in its region.

Everything starts from ``Assignment.objects.for_user`` / ``StoreTask.objects.for_user`` (stores/access/scoping.py),
so a login with no role, or whose staff member left, reads nothing; another store's rows are as missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from campaigns.tasks.models import (
    OPEN_STATUSES,
    Assignment,
    AssignmentEvent,
    AssignmentStatus,
    ChecklistItem,
    ChecklistTick,
    EventSource,
    Evidence,
    FollowUp,
    StoreTask,
    TaskKind,
    TaskMaterial,
    TaskStatus,
)
from campaigns.tasks.selectors import assignment_text, deadline_text, followup_customers
from stores.access.scoping import ScopeKind, user_scope
from stores.org.models import Staff, Store

HOME_LIMIT = 30
STORE_TASKS_LIMIT = 20
STORE_TASKS_RECENT_DAYS = 7
FOLLOWUPS_LIMIT = 200
NOT_COUNTED = (AssignmentStatus.EXCUSED, AssignmentStatus.WITHDRAWN)  # left out of done/total


@dataclass(frozen=True)
class PhoneViewer:
    """Whom the viewer acts as on the phone: their own member and store (an active member of an open store),
    a store without a member (a store login), or neither (HQ, region, franchisee logins)."""

    staff: Staff | None
    store: Store | None


def phone_viewer(*, user) -> PhoneViewer:
    scope = user_scope(user)
    if scope.staff_id and scope.store_id:
        staff = (Staff.objects.active().select_related("store")
                 .filter(pk=scope.staff_id, store_id=scope.store_id, store__status=Store.Status.OPEN).first())
        return PhoneViewer(staff=staff, store=staff.store) if staff is not None else PhoneViewer(None, None)
    store = Store.objects.open().filter(pk=scope.store_id).first() if scope.store_id else None
    return PhoneViewer(staff=None, store=store)


def viewer_supervises(user) -> bool:
    """A store manager or someone above (region, franchisee, HQ) sees the team's progress; store staff do not."""
    return user_scope(user).kind in (ScopeKind.STORE, ScopeKind.REGIONS, ScopeKind.FRANCHISEE, ScopeKind.ALL)


def deadline_label(deadline: datetime, *, now: datetime) -> str:
    """"今天 18:00 截止", "明天 18:00 截止", "12-25 18:00 截止"; past it "已逾期 3 小时" / "已逾期 2 天"."""
    if deadline <= now:
        hours = int((now - deadline).total_seconds() // 3600)
        if hours < 24:
            n = max(hours, 1)
            return ngettext("已逾期 %(n)d 小时", "已逾期 %(n)d 小时", n) % {"n": n}
        days = hours // 24
        return ngettext("已逾期 %(n)d 天", "已逾期 %(n)d 天", days) % {"n": days}
    local = timezone.localtime(deadline)
    days = (local.date() - timezone.localtime(now).date()).days
    time = local.strftime("%H:%M")
    if days == 0:
        return _("今天 %(time)s 截止") % {"time": time}
    if days == 1:
        return _("明天 %(time)s 截止") % {"time": time}
    return _("%(date)s 截止") % {"date": local.strftime("%m-%d %H:%M")}


def _mine(user) -> Q | None:
    """The viewer's own work: their assignments and their store's store-level ones (None: they have no store)."""
    scope = user_scope(user)
    if scope.kind not in (ScopeKind.STORE, ScopeKind.SELF) or not scope.store_id:
        return None
    own = Q(staff__isnull=True, store_id=scope.store_id)
    if scope.staff_id:
        own |= Q(staff_id=scope.staff_id)
    return own


def my_open_assignments(*, viewer, now: datetime | None = None) -> list[Assignment]:
    """The viewer's open assignments, today's and overdue first (by deadline), each with ``deadline_label``,
    ``due_today`` and ``late``. Nothing for a viewer without a store of their own (HQ, a region, no role, departed)."""
    own = _mine(viewer)
    if own is None:
        return []
    now = now or timezone.now()
    end_of_today = timezone.localtime(now).replace(hour=23, minute=59, second=59, microsecond=999999)
    rows = list(Assignment.objects.for_user(viewer).filter(own, status__in=OPEN_STATUSES,
                                                            task__status=TaskStatus.DISPATCHED,
                                                            store_task__withdrawn_at__isnull=True)
                .select_related("task", "store_task").only("pk", "status", "staff_id", "store_id", "task__deadline",
                                                           "task__kind", "store_task__title")
                .order_by("task__deadline", "pk")[:HOME_LIMIT])
    for row in rows:
        row.deadline_label = deadline_label(row.task.deadline, now=now)  # type: ignore[attr-defined]
        row.due_today = row.task.deadline <= end_of_today  # type: ignore[attr-defined]
        row.late = row.task.deadline <= now  # type: ignore[attr-defined]
    return rows


@dataclass(frozen=True)
class StoreTaskProgress:
    store_task: StoreTask
    done: int
    total: int
    link_assignment_id: int | None  # where the store task opens: the viewer's own assignment, or the first one
    deadline_label: str


def store_tasks_progress(*, viewer, now: datetime | None = None) -> list[StoreTaskProgress]:
    """A store manager's store tasks (open, or due within the past week) with done/total (excused and withdrawn
    work not counted). Empty for anyone who is not a store manager."""
    scope = user_scope(viewer)
    if scope.kind != ScopeKind.STORE or not scope.store_id:
        return []
    now = now or timezone.now()
    counted = ~Q(assignments__status__in=NOT_COUNTED)
    store_tasks = list(
        StoreTask.objects.for_user(viewer)
        .filter(store_id=scope.store_id, withdrawn_at__isnull=True, task__status=TaskStatus.DISPATCHED,
                task__deadline__gte=now - timedelta(days=STORE_TASKS_RECENT_DAYS))
        .select_related("task").only("pk", "title", "task__deadline")
        .annotate(done=Count("assignments", filter=counted & Q(assignments__status=AssignmentStatus.DONE)),
                  total=Count("assignments", filter=counted))
        .order_by("task__deadline", "pk")[:STORE_TASKS_LIMIT])
    links: dict[int, int] = {}
    if store_tasks:
        for store_task_id, pk, staff_id in (Assignment.objects.filter(store_task__in=[s.pk for s in store_tasks])
                                            .order_by("store_task_id", "staff_id", "pk")
                                            .values_list("store_task_id", "pk", "staff_id")):
            if store_task_id not in links or staff_id == scope.staff_id:
                links[store_task_id] = pk
    return [StoreTaskProgress(store_task=s, done=s.done, total=s.total,
                              link_assignment_id=links.get(s.pk),
                              deadline_label=deadline_label(s.task.deadline, now=now)) for s in store_tasks]


def assignment_for_page(*, viewer, pk: int) -> Assignment | None:
    """One assignment as the viewer may see it (None: not theirs, another store's, or missing)."""
    return (Assignment.objects.for_user(viewer).select_related("task", "store_task", "store", "staff")
            .filter(pk=pk).first())


@dataclass(frozen=True)
class ChecklistRow:
    item: ChecklistItem
    ticked: bool
    photos: list[Evidence]


@dataclass(frozen=True)
class FollowUpRow:
    customer_id: int
    name: str
    outcome: str
    outcome_label: str


@dataclass(frozen=True)
class TeamRow:
    assignment: Assignment
    name: str
    may_act: bool  # open work: the manager may nudge or excuse it


@dataclass(frozen=True)
class Ranking:
    rank: int
    stores: int
    on_time_percent: int


@dataclass(frozen=True)
class EventRow:
    at: datetime
    to_label: str
    by_name: str
    reason: str
    source_label: str


@dataclass
class TaskPage:
    assignment: Assignment
    text: str
    instructions: str  # shown apart only when the store got a variant (otherwise ``text`` is the instructions)
    deadline_label: str
    checklist: list[ChecklistRow]
    loose_photos: list[Evidence]  # photos for the task, not for a checklist item
    materials: list
    followups: list[FollowUpRow]
    events: list[EventRow]
    team: list[TeamRow]
    ranking: Ranking | None
    is_open: bool
    may_work: bool
    supervises: bool


def _fill(text: str, assignment: Assignment) -> str:
    name = assignment.staff.name if assignment.staff_id and assignment.staff else _("各位同事")
    return (text.replace("{门店名称}", assignment.store.name).replace("{员工姓名}", name)
            .replace("{截止时间}", deadline_text(assignment.task)))


def task_page(*, viewer, assignment: Assignment, now: datetime | None = None) -> TaskPage:
    """Everything the task page shows for ``assignment`` (already read through the viewer's scope)."""
    from materials.library.selectors import materials_usable

    now = now or timezone.now()
    task = assignment.task
    scope = user_scope(viewer)
    items = list(ChecklistItem.objects.filter(task_id=task.pk).order_by("order", "pk"))
    ticked = set(ChecklistTick.objects.filter(assignment=assignment).values_list("item_id", flat=True))
    # ``assignment`` was read through the viewer's scope: its photos, and the other work of its store task (the
    # same store), are in that scope too (AssignmentPartQuerySet's rule), so they are read without re-scoping.
    photos = list(Evidence.objects.filter(assignment=assignment).order_by("at", "pk"))
    by_item: dict[int | None, list[Evidence]] = {}
    for photo in photos:
        by_item.setdefault(photo.item_id, []).append(photo)
    material_ids = list(TaskMaterial.objects.filter(task_id=task.pk).values_list("material_id", flat=True))
    materials = list(materials_usable(viewer=viewer).filter(pk__in=material_ids).order_by("title")) \
        if material_ids else []
    followups: list[FollowUpRow] = []
    if task.kind == TaskKind.FOLLOW_UP and assignment.staff_id:
        outcomes = {f.customer_id: f for f in FollowUp.objects.filter(assignment=assignment)}
        for customer in followup_customers(assignment=assignment, viewer=viewer).order_by("pk")[:FOLLOWUPS_LIMIT]:
            done = outcomes.get(customer.pk)
            followups.append(FollowUpRow(customer_id=customer.pk, name=customer.name,
                                         outcome=done.outcome if done else "",
                                         outcome_label=done.get_outcome_display() if done else ""))
    supervises = viewer_supervises(viewer)
    team: list[TeamRow] = []
    if supervises and task.executor == "staff":
        for row in (Assignment.objects.filter(store_task_id=assignment.store_task_id)
                    .select_related("staff").order_by("staff__name", "pk")):
            team.append(TeamRow(assignment=row, name=row.staff.name if row.staff else _("门店整体"),
                                may_act=row.status in OPEN_STATUSES))
    own_work = scope.kind == ScopeKind.SELF and (assignment.staff_id in (None, scope.staff_id))
    store_work = scope.kind == ScopeKind.STORE and assignment.store_id == scope.store_id
    variant_text = assignment.store_task.variant_id is not None
    return TaskPage(
        assignment=assignment, text=assignment_text(assignment=assignment),
        instructions=_fill(task.instructions, assignment) if variant_text else "",
        deadline_label=deadline_label(task.deadline, now=now),
        checklist=[ChecklistRow(item=i, ticked=i.pk in ticked, photos=by_item.get(i.pk, [])) for i in items],
        loose_photos=by_item.get(None, []), materials=materials, followups=followups,
        events=_events(assignment),
        team=team, ranking=store_ranking(assignment=assignment), is_open=assignment.status in OPEN_STATUSES,
        may_work=own_work or store_work or viewer.is_superuser, supervises=supervises)


def _events(assignment: Assignment) -> list[EventRow]:
    from stores.access.models import Access

    events = list(AssignmentEvent.objects.filter(assignment=assignment).order_by("at", "pk"))
    user_ids = {e.by_id for e in events if e.by_id}
    names = dict(Access.objects.filter(user_id__in=user_ids, staff__isnull=False)
                 .values_list("user_id", "staff__name")) if user_ids else {}
    labels = dict(AssignmentStatus.choices)
    sources = dict(EventSource.choices)
    return [EventRow(at=e.at, to_label=str(labels.get(e.to_status, e.to_status)),
                     by_name=names.get(e.by_id, "") if e.by_id else "", reason=e.reason,
                     source_label=str(sources.get(e.source, e.source))) for e in events]


RANKING_SQL = """
WITH RECURSIVE tree(id) AS (
    SELECT %(top)s::bigint
    UNION SELECT r.id FROM stores_region r JOIN tree t ON r.parent_id = t.id
), per_store AS (
    SELECT a.store_id,
           count(*) FILTER (WHERE a.status = 'done' AND a.done_at <= t.deadline)::float
               / NULLIF(count(*), 0) AS on_time
    FROM campaigns_assignment a
    JOIN campaigns_task t ON t.id = a.task_id
    JOIN stores_store s ON s.id = a.store_id AND s.region_id IN (SELECT id FROM tree)
    WHERE a.task_id = %(task_id)s AND NOT a.status = ANY(%(not_counted)s)
    GROUP BY a.store_id
)
SELECT store_id, rank() OVER (ORDER BY on_time DESC NULLS LAST), count(*) OVER (), on_time FROM per_store
"""
TOP_REGION_SQL = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM stores_region WHERE id = %s
    UNION ALL SELECT r.id, r.parent_id, up.depth + 1 FROM stores_region r JOIN up ON r.id = up.parent_id
    WHERE up.depth < 20
)
SELECT id FROM up WHERE parent_id IS NULL ORDER BY depth DESC LIMIT 1
"""
RANKING_CACHE_SECONDS = 60  # the phone's ranking may be a minute old; the dashboards' rollups are live
TOP_REGION_CACHE_SECONDS = 3600


def _top_region_id(region_id: int) -> int:
    key = f"mobile:top-region:{region_id}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    with connection.cursor() as cursor:
        cursor.execute(TOP_REGION_SQL, [region_id])
        row = cursor.fetchone()
    top = row[0] if row else region_id
    cache.set(key, top, TOP_REGION_CACHE_SECONDS)
    return top


def _region_ranking(*, task_id: int, top_region_id: int) -> dict[int, tuple[int, int, float]]:
    """store id → (rank, stores ranked, on-time share) for every store of the region on the task (cached)."""
    key = f"mobile:ranking:{task_id}:{top_region_id}"
    table = cache.get(key)
    if table is None:
        with connection.cursor() as cursor:
            cursor.execute(RANKING_SQL, {"task_id": task_id, "top": top_region_id,
                                         "not_counted": list(NOT_COUNTED)})
            table = {store_id: (rank, stores, on_time or 0.0) for store_id, rank, stores, on_time in cursor.fetchall()}
        cache.set(key, table, RANKING_CACHE_SECONDS)
    return table


def store_ranking(*, assignment: Assignment) -> Ranking | None:
    """The assignment's store among the stores of its region (the top-level one: 华东大区) on this task, by the
    share of its work done on time (excused work not counted); at most RANKING_CACHE_SECONDS old. Figures
    only: no other store is named."""
    region_id = assignment.store.region_id
    if region_id is None:
        return None
    row = _region_ranking(task_id=assignment.task_id, top_region_id=_top_region_id(region_id)).get(
        assignment.store_id)
    if row is None:
        return None
    rank, stores, on_time = row
    return Ranking(rank=rank, stores=stores, on_time_percent=round(on_time * 100))


def evidence_for_viewer(*, viewer, pk: int) -> Evidence | None:
    """A photo as the viewer may see it: the store's own people (by the assignment's scope) and its managers up
    the line; None otherwise."""
    return Evidence.objects.for_user(viewer).filter(pk=pk).first()


def team_assignment(*, viewer, pk: int) -> QuerySet[Assignment]:
    return Assignment.objects.for_user(viewer).filter(pk=pk)
