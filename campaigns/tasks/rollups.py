"""Rollups of the task engine (reads): how a task or a campaign stands, by level, in the viewer's scope.

Figures (``RollupCounts``) of a set of assignments:

* 已下发 dispatched — not withdrawn; 已通知 notified, 已确认 confirmed — reached that step (done implies both);
* 已完成 done — done now (a rejected one is not); 按时完成 on time — done by the task's deadline;
* 已逾期 overdue — not finished and the deadline has passed (marked overdue by beat or not yet);
* 已免除 excused, 已驳回 rejected; completion and on-time rates are over dispatched minus excused.

Staff who left and stores that closed drop out from the day they left or closed (``RollupFilters.on``, today by
default): their assignments count up to the day before and not from that day.

Levels: region (each region with its sub-regions' stores), franchisee (direct stores together), city, store,
staff. Each level is ONE grouped query over the task's assignments, scoped by ``Assignment.objects.for_user``; the
region level groups by the store's region and adds the regions up the tree in Python (regions, not rows).

The HQ dashboard (``dashboard_tasks``) reads ``TaskStoreCount`` — one narrow row per task and store, kept by
triggers in the same transaction as every assignment change (migration 0003_rollups) — because summing every
assignment of 200 open tasks (2.6 M rows) live takes seconds; the departed staff's contribution is subtracted live
(few rows, by the staff index) and closed stores are left out by the join, so it says the same as the live rollup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import BooleanField, Count, F, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.tasks.models import (
    OPEN_STATUSES,
    Assignment,
    AssignmentStatus,
    Campaign,
    Task,
    TaskStatus,
    TaskStoreCount,
)
from portal.errors import DomainError
from stores.access.scoping import HQ_SCOPE, ScopeKind, UserScope, region_ids_with_descendants, user_scope
from stores.org.models import Region, Store

LEVELS = ("region", "franchisee", "city", "store", "staff")
LEVEL_LABELS = {"region": gettext_lazy("区域"), "franchisee": gettext_lazy("加盟商"), "city": gettext_lazy("城市"),
                "store": gettext_lazy("门店"), "staff": gettext_lazy("员工")}
COUNT_LABELS = {"dispatched": gettext_lazy("已下发"), "notified": gettext_lazy("已通知"),
                "confirmed": gettext_lazy("已确认"), "done": gettext_lazy("已完成"),
                "on_time": gettext_lazy("按时完成"), "overdue": gettext_lazy("已逾期"),
                "excused": gettext_lazy("已免除"), "rejected": gettext_lazy("已驳回")}
OVER_TIME_MAX_DAYS = 92
DIRECT = 0  # the franchisee level's key for direct stores


class RollupError(DomainError):
    """A rollup asked of something the viewer cannot see, or with filters that do not fit."""


def _pct(part: int, whole: int) -> Decimal | None:
    if whole <= 0:
        return None
    return (Decimal(part) * 100 / whole).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class RollupCounts:
    dispatched: int = 0
    notified: int = 0
    confirmed: int = 0
    done: int = 0
    on_time: int = 0
    overdue: int = 0
    excused: int = 0
    rejected: int = 0

    @classmethod
    def from_row(cls, row: dict) -> RollupCounts:
        return cls(**{f.name: int(row.get(f.name) or 0) for f in fields(cls)})

    def __add__(self, other: RollupCounts) -> RollupCounts:
        return RollupCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: RollupCounts) -> RollupCounts:
        return RollupCounts(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})

    @property
    def expected(self) -> int:
        """What should be done: dispatched minus excused."""
        return self.dispatched - self.excused

    @property
    def done_pct(self) -> Decimal | None:
        return _pct(self.done, self.expected)

    @property
    def on_time_pct(self) -> Decimal | None:
        return _pct(self.on_time, self.expected)

    def cells(self) -> list[Any]:
        """The table's figures, in COUNT_LABELS order, then the completion and on-time rates (``—`` if none)."""
        rates = ["—" if p is None else f"{p}%" for p in (self.done_pct, self.on_time_pct)]
        return [getattr(self, name) for name in COUNT_LABELS] + rates


def count_columns() -> list[str]:
    return [str(label) for label in COUNT_LABELS.values()] + [_("完成率"), _("按时完成率")]


@dataclass(frozen=True)
class RollupRow:
    level: str
    key: Any  # region / franchisee / store / staff id, the city's name; DIRECT for direct stores
    label: str
    note: str = ""  # the parent region, the store's code and region, the staff member's store
    counts: RollupCounts = field(default_factory=RollupCounts)


@dataclass(frozen=True)
class RollupFilters:
    """What is rolled up: one task or one campaign, narrowed by a drill-down (region with sub-regions,
    franchisee — DIRECT for direct stores —, city, store), as of a day."""

    task_id: int | None = None
    campaign_id: int | None = None
    region_id: int | None = None
    franchisee_id: int | None = None
    city: str | None = None
    store_id: int | None = None
    on: date | None = None

    def day(self) -> date:
        return self.on or timezone.localdate()


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def still_counted_q(*, on: date, prefix: str = "") -> Q:
    """Rows whose store had not closed and whose staff member had not left by ``on`` (store-level work has no
    staff). ``prefix`` reaches the store and staff from another model."""
    end = _day_start(on + timedelta(days=1))
    store_open = (Q(**{f"{prefix}store__status": Store.Status.OPEN})
                  | Q(**{f"{prefix}store__closed_on__gt": on}))
    staff_here = (Q(**{f"{prefix}staff__isnull": True}) | Q(**{f"{prefix}staff__departed_at__isnull": True})
                  | Q(**{f"{prefix}staff__departed_at__gte": end}))
    return store_open & staff_here


def _drill_down_q(filters: RollupFilters, *, prefix: str = "") -> Q:
    q = Q()
    if filters.region_id:
        q &= Q(**{f"{prefix}store__region_id__in": region_ids_with_descendants(region_ids=[filters.region_id])})
    if filters.franchisee_id is not None:
        q &= (Q(**{f"{prefix}store__franchisee__isnull": True}) if filters.franchisee_id == DIRECT
              else Q(**{f"{prefix}store__franchisee_id": filters.franchisee_id}))
    if filters.city:
        q &= Q(**{f"{prefix}store__city": filters.city})
    if filters.store_id:
        q &= Q(**{f"{prefix}store_id": filters.store_id})
    return q


def scope_of(viewer) -> UserScope:
    """A user's scope (or a scope given as such: HQ's, to rank a store among all stores)."""
    return viewer if isinstance(viewer, UserScope) else user_scope(viewer)


def rollup_assignments(*, viewer, filters: RollupFilters) -> QuerySet[Assignment]:
    """The assignments a rollup counts: of the task or campaign, in the viewer's scope, narrowed by the
    drill-down, without withdrawn work, closed stores and departed staff (as of the day)."""
    if filters.task_id is None and filters.campaign_id is None:
        raise RollupError(_("请选择一个任务或活动"))
    rows = Assignment.objects.for_scope(scope_of(viewer)).exclude(status=AssignmentStatus.WITHDRAWN)
    if filters.task_id is not None:
        rows = rows.filter(task_id=filters.task_id)
    if filters.campaign_id is not None:
        rows = rows.filter(task__campaign_id=filters.campaign_id)
    return rows.filter(still_counted_q(on=filters.day()) & _drill_down_q(filters))


def _aggregates(*, now: datetime) -> dict[str, Any]:
    """The same definition as the triggers' (migration 0003_rollups), as COUNT(*) FILTER (…)."""
    reached = Q(confirmed_at__isnull=False) | Q(done_at__isnull=False)
    return {
        "dispatched": Count("pk"),
        "notified": Count("pk", filter=Q(notified_at__isnull=False) | reached),
        "confirmed": Count("pk", filter=reached),
        "done": Count("pk", filter=Q(status=AssignmentStatus.DONE)),
        "on_time": Count("pk", filter=Q(status=AssignmentStatus.DONE, done_at__lte=F("task__deadline"))),
        "overdue": Count("pk", filter=Q(status__in=OPEN_STATUSES, task__deadline__lt=now)),
        "excused": Count("pk", filter=Q(status=AssignmentStatus.EXCUSED)),
        "rejected": Count("pk", filter=Q(status=AssignmentStatus.REJECTED)),
    }


def rollup_total(*, viewer, filters: RollupFilters) -> RollupCounts:
    row = rollup_assignments(viewer=viewer, filters=filters).aggregate(**_aggregates(now=timezone.now()))
    return RollupCounts.from_row(row)


GROUPS: dict[str, tuple[str, ...]] = {
    "franchisee": ("store__franchisee_id", "store__franchisee__name"),
    "city": ("store__city",),
    "store": ("store_id", "store__code", "store__name", "store__region__name"),
    "staff": ("staff_id", "staff__name", "staff__userid", "store__code", "store__name"),
}


def rollup_by(*, viewer, filters: RollupFilters, level: str) -> list[RollupRow]:
    """One row per region / franchisee / city / store / staff member with work in the rollup, in a stable order
    (code or name). One grouped query."""
    if level not in LEVELS:
        raise RollupError(_("没有这个统计层级"))
    if level == "region":
        return _by_region(viewer=viewer, filters=filters)
    rows = rollup_assignments(viewer=viewer, filters=filters)
    if level == "staff":
        rows = rows.filter(staff__isnull=False)
    grouped = rows.values(*GROUPS[level]).annotate(**_aggregates(now=timezone.now())).order_by()
    result = [_row(level, item) for item in grouped]
    result.sort(key=lambda r: (r.note, r.label) if level in ("store", "staff") else (r.label, r.note))
    return result


LEVEL_KEYS = ("store_id", "store__code", "store__name", "store__region_id", "store__region__name",
              "store__franchisee_id", "store__franchisee__name", "store__city")


def rollup_levels(*, viewer, filters: RollupFilters) -> dict[str, list[RollupRow]]:
    """Every level at once, as ``rollup_by`` gives each: two grouped queries (by store, by staff member); the
    region, franchisee and city levels are the store rows added up (stores, not assignments)."""
    now = timezone.now()
    per_store = list(rollup_assignments(viewer=viewer, filters=filters).values(*LEVEL_KEYS)
                     .annotate(**_aggregates(now=now)).order_by())
    sums: dict[str, dict[Any, tuple[dict, RollupCounts]]] = {"franchisee": {}, "city": {}}
    per_leaf: dict[int, RollupCounts] = {}
    for item in per_store:
        counts = RollupCounts.from_row(item)
        per_leaf[item["store__region_id"]] = per_leaf.get(item["store__region_id"], RollupCounts()) + counts
        for level, key in (("franchisee", item["store__franchisee_id"]), ("city", item["store__city"])):
            known = sums[level].get(key)
            sums[level][key] = (item, counts if known is None else known[1] + counts)
    result = {"region": regions_rolled_up(viewer=viewer, per_leaf=per_leaf, within=filters.region_id)}
    for level in ("franchisee", "city"):
        rows = [_row(level, {**item, **{f.name: getattr(counts, f.name) for f in fields(counts)}})
                for item, counts in sums[level].values()]
        result[level] = sorted(rows, key=lambda r: (r.label, r.note))
    result["store"] = sorted((_row("store", item) for item in per_store), key=lambda r: (r.note, r.label))
    result["staff"] = rollup_by(viewer=viewer, filters=filters, level="staff")
    return {level: result[level] for level in LEVELS}


def _row(level: str, item: dict) -> RollupRow:
    counts = RollupCounts.from_row(item)
    if level == "franchisee":
        key = item["store__franchisee_id"] or DIRECT
        return RollupRow(level, key, item["store__franchisee__name"] or _("直营门店"), "—", counts)
    if level == "city":
        return RollupRow(level, item["store__city"], item["store__city"] or _("未填城市"), "—", counts)
    if level == "store":
        return RollupRow(level, item["store_id"], item["store__name"],
                         f"{item['store__code']} · {item['store__region__name']}", counts)
    return RollupRow(level, item["staff_id"], item["staff__name"], f"{item['store__code']} {item['store__name']}",
                     counts)


def _by_region(*, viewer, filters: RollupFilters) -> list[RollupRow]:
    """Each region of the viewer's scope with work in the rollup, counting its sub-regions' stores."""
    per_leaf = {item["store__region_id"]: RollupCounts.from_row(item) for item in
                rollup_assignments(viewer=viewer, filters=filters).values("store__region_id")
                .annotate(**_aggregates(now=timezone.now())).order_by()}
    return regions_rolled_up(viewer=viewer, per_leaf=per_leaf, within=filters.region_id)


def regions_rolled_up(*, viewer, per_leaf: dict[int, RollupCounts], within: int | None = None) -> list[RollupRow]:
    """Add the figures of each region's stores up the region tree; the viewer's regions with any work, in code
    order (a parent before its children)."""
    if not per_leaf:
        return []
    regions = {r.pk: r for r in Region.objects.only("pk", "code", "name", "parent_id")}
    totals: dict[int, RollupCounts] = {}
    for leaf_id, counts in per_leaf.items():
        seen: set[int] = set()
        region_id: int | None = leaf_id
        while region_id is not None and region_id in regions and region_id not in seen:
            seen.add(region_id)
            totals[region_id] = totals.get(region_id, RollupCounts()) + counts
            region_id = regions[region_id].parent_id
    visible = set(Region.objects.for_scope(scope_of(viewer)).values_list("pk", flat=True))
    if within:
        visible &= region_ids_with_descendants(region_ids=[within])
    shown = sorted((regions[pk] for pk in totals if pk in visible), key=lambda r: r.code)
    return [RollupRow("region", r.pk, r.name, regions[r.parent_id].name if r.parent_id in regions else "—",
                      totals[r.pk]) for r in shown]


@dataclass(frozen=True)
class DayRow:
    day: date
    done: int
    cumulative: int


def rollup_over_time(*, viewer, filters: RollupFilters, first: date) -> list[DayRow]:
    """Work finished per day from ``first`` to the rollup's day (at most OVER_TIME_MAX_DAYS days, the latest),
    and the running total. One grouped query."""
    last = filters.day()
    first = max(first, last - timedelta(days=OVER_TIME_MAX_DAYS - 1))
    rows = rollup_assignments(viewer=viewer, filters=filters).filter(status=AssignmentStatus.DONE)
    per_day = {item["day"]: item["n"] for item in
               rows.annotate(day=TruncDate("done_at", tzinfo=timezone.get_current_timezone()))
               .values("day").annotate(n=Count("pk")).order_by()}
    before = sum(n for day, n in per_day.items() if day < first)
    result, running = [], before
    for i in range((last - first).days + 1):
        day = first + timedelta(days=i)
        running += per_day.get(day, 0)
        result.append(DayRow(day=day, done=per_day.get(day, 0), cumulative=running))
    return result


@dataclass(frozen=True)
class Ranked:
    rank: int
    row: RollupRow


def leaderboard(rows: Iterable[RollupRow], *, top: int | None = None) -> list[Ranked]:
    """Rows ranked by on-time completion (then completion, then more work done, then name); rows with nothing
    expected of them are left out. Equal figures share a rank."""
    eligible = [r for r in rows if r.counts.expected > 0]
    eligible.sort(key=lambda r: (-(r.counts.on_time_pct or 0), -(r.counts.done_pct or 0), -r.counts.done, r.label))
    ranked: list[Ranked] = []
    for index, row in enumerate(eligible):
        same = ranked and _standing(ranked[-1].row) == _standing(row)
        ranked.append(Ranked(rank=ranked[-1].rank if same else index + 1, row=row))
    return ranked[:top] if top else ranked


def _standing(row: RollupRow) -> tuple:
    return (row.counts.on_time_pct, row.counts.done_pct, row.counts.done)


def store_rank(*, task: Task, store_id: int) -> Ranked | None:
    """Where a store stands among every store the task reached (HQ's view): the mobile page's 排名."""
    board = leaderboard(rollup_by(viewer=HQ_SCOPE, filters=RollupFilters(task_id=task.pk), level="store"))
    return next((r for r in board if r.row.key == store_id), None)


# -- the HQ dashboard: every open task at once --------------------------------------------------------------
@dataclass(frozen=True)
class DashboardFilters:
    date_from: date
    date_to: date
    campaign_id: int | None = None
    region_id: int | None = None


@dataclass(frozen=True)
class TaskLine:
    task_id: int
    title: str
    campaign: str
    deadline: datetime
    counts: RollupCounts


def dashboard_task_ids(*, viewer, filters: DashboardFilters) -> QuerySet[Task]:
    """Dispatched tasks the viewer sees whose time (start to deadline) overlaps the period."""
    if filters.date_to < filters.date_from:
        raise RollupError(_("结束日期不能早于开始日期"))
    tasks = Task.objects.for_user(viewer).filter(
        status=TaskStatus.DISPATCHED, start_at__lt=_day_start(filters.date_to + timedelta(days=1)),
        deadline__gte=_day_start(filters.date_from))
    if filters.campaign_id:
        tasks = tasks.filter(campaign_id=filters.campaign_id)
    return tasks


def _counted_stores(*, viewer, filters: DashboardFilters, on: date) -> QuerySet[Store]:
    stores = Store.objects.for_user(viewer).filter(Q(status=Store.Status.OPEN) | Q(closed_on__gt=on))
    if filters.region_id:
        stores = stores.filter(region_id__in=region_ids_with_descendants(region_ids=[filters.region_id]))
    return stores


def _dashboard_counts(*, viewer, filters: DashboardFilters, now: datetime) -> dict[tuple[int, int], RollupCounts]:
    """Figures per (task, store region) of the dashboard's tasks, in one pass over the kept counts of the counted
    stores, minus the work of staff who have left (live: only members who left after the earliest of these tasks
    started can have work in them, a short list, read through the assignment's staff index)."""
    on = timezone.localdate(now)
    tasks = dashboard_task_ids(viewer=viewer, filters=filters)
    stores = _counted_stores(viewer=viewer, filters=filters, on=on)
    group = ("task_id", "store__region_id")
    kept = (TaskStoreCount.objects.filter(task__in=tasks.values("pk"), store__in=stores.values("pk"))
            .values(*group).annotate(dispatched=Sum("dispatched"), notified=Sum("notified"),
                                     confirmed=Sum("confirmed"), done=Sum("done"), on_time=Sum("on_time"),
                                     excused=Sum("excused"), rejected=Sum("rejected"),
                                     overdue=Sum("open", filter=Q(task__deadline__lt=now)))
            .order_by())
    result = {(item["task_id"], item["store__region_id"]): RollupCounts.from_row(item) for item in kept}
    first_start = tasks.order_by("start_at").values_list("start_at", flat=True).first()
    if first_start is None:
        return result
    from stores.org.models import Staff

    left = list(Staff.objects.filter(departed_at__gte=first_start - timedelta(days=1),
                                     departed_at__lt=_day_start(on + timedelta(days=1))).values_list("pk", flat=True))
    if left:
        departed = (Assignment.objects.exclude(status=AssignmentStatus.WITHDRAWN)
                    .filter(staff_id__in=left, task__in=tasks.values("pk"), store__in=stores.values("pk"))
                    .values(*group).annotate(**_aggregates(now=now)).order_by())
        for item in departed:
            key = (item["task_id"], item["store__region_id"])
            result[key] = result.get(key, RollupCounts()) - RollupCounts.from_row(item)
    return result


def _summed(counts: dict[tuple[int, int], RollupCounts], index: int) -> dict[int, RollupCounts]:
    result: dict[int, RollupCounts] = {}
    for key, value in counts.items():
        result[key[index]] = result.get(key[index], RollupCounts()) + value
    return result


@dataclass(frozen=True)
class Dashboard:
    tasks: list[TaskLine]
    regions: list[RollupRow]


def dashboard(*, viewer, filters: DashboardFilters) -> Dashboard:
    """Each dispatched task of the period with its figures in the viewer's scope (and region), the most urgent
    deadline first (tasks with no work in the scope left out), and the same work per region (with sub-regions)."""
    now = timezone.now()
    counts = _dashboard_counts(viewer=viewer, filters=filters, now=now)
    per_task = _summed(counts, 0)
    tasks = (dashboard_task_ids(viewer=viewer, filters=filters).filter(pk__in=list(per_task))
             .select_related("campaign").only("pk", "title", "deadline", "campaign__name").order_by("deadline", "pk"))
    lines = [TaskLine(task_id=t.pk, title=t.title, campaign=t.campaign.name, deadline=t.deadline,
                      counts=per_task[t.pk]) for t in tasks if per_task[t.pk].dispatched > 0]
    regions = regions_rolled_up(viewer=viewer, per_leaf=_summed(counts, 1), within=filters.region_id)
    return Dashboard(tasks=lines, regions=regions)


def dashboard_tasks(*, viewer, filters: DashboardFilters) -> list[TaskLine]:
    return dashboard(viewer=viewer, filters=filters).tasks


def dashboard_regions(*, viewer, filters: DashboardFilters) -> list[RollupRow]:
    return dashboard(viewer=viewer, filters=filters).regions


# -- the 工作台 ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Workbench:
    open_today: int  # dispatched tasks with open work in scope, their deadline today or later, started
    due_today: int  # of those, due by the end of today
    overdue_stores: int  # stores in scope with work past its deadline
    escalations: int  # overdue work whose task's plan has escalated it to the viewer's role by now


ESCALATION_TARGETS = {"store_manager": ScopeKind.STORE, "region_manager": ScopeKind.REGIONS,
                      "franchisee_owner": ScopeKind.FRANCHISEE}


def workbench(*, viewer) -> Workbench:
    """The 工作台's task figures, live, in the viewer's scope (four small queries on the assignment indexes)."""
    now = timezone.now()
    today = timezone.localdate(now)
    tomorrow = _day_start(today + timedelta(days=1))
    open_work = (Assignment.objects.for_user(viewer).filter(status__in=OPEN_STATUSES)
                 .filter(still_counted_q(on=today)).filter(task__status=TaskStatus.DISPATCHED))
    current = open_work.filter(task__start_at__lte=now, task__deadline__gte=now)
    open_today = current.values("task_id").distinct().count()
    due_today = current.filter(task__deadline__lt=tomorrow).values("task_id").distinct().count()
    late = open_work.filter(task__deadline__lt=now)
    overdue_stores = late.values("store_id").distinct().count()
    return Workbench(open_today=open_today, due_today=due_today, overdue_stores=overdue_stores,
                     escalations=_escalations_waiting(viewer=viewer, late=late, now=now))


ESCALATED_SQL = """EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(campaigns_task.plan -> 'escalate_after_hours',
    '[]'::jsonb)) step WHERE step ->> 'to' = ANY(%s)
    AND campaigns_task.deadline + make_interval(hours => (step ->> 'after_hours')::int) <= %s)"""


def _escalations_waiting(*, viewer, late: QuerySet[Assignment], now: datetime) -> int:
    """Stores whose late work the task's plan has, by now, escalated to someone of the viewer's role (HQ: to
    anyone). Read from the plan, so it holds whether or not the message has gone out yet."""
    scope = user_scope(viewer)
    if scope.is_hq:
        targets = list(ESCALATION_TARGETS)
    else:
        targets = [to for to, kind in ESCALATION_TARGETS.items() if kind == scope.kind]
    if not targets:
        return 0
    escalated = RawSQL(ESCALATED_SQL, (targets, now), output_field=BooleanField())  # fixed SQL, bound values
    return late.filter(escalated).values("store_id").distinct().count()


def campaign_first_day(*, campaign: Campaign) -> date:
    first = Task.objects.filter(campaign=campaign).order_by("start_at").values_list("start_at", flat=True).first()
    return timezone.localdate(first) if first else (campaign.starts_on or timezone.localdate())


__all__ = [
    "COUNT_LABELS", "DIRECT", "Dashboard", "DashboardFilters", "DayRow", "LEVELS", "LEVEL_LABELS", "Ranked",
    "RollupCounts", "RollupError", "RollupFilters", "RollupRow", "TaskLine", "Workbench", "campaign_first_day",
    "count_columns", "dashboard", "dashboard_regions", "dashboard_task_ids", "dashboard_tasks", "leaderboard",
    "regions_rolled_up", "rollup_assignments", "rollup_by", "rollup_levels", "rollup_over_time", "rollup_total",
    "still_counted_q",
    "store_rank", "workbench",
]
