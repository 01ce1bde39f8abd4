"""The add-fan dashboard's reads: figures by region/franchisee/store/staff/channel/day in the viewer's
scope, history from AcquisitionDaily and today live, leaderboards, today's totals."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import AcquisitionDaily, Channel, Relationship
from portal.errors import DomainError
from portal.periods import MAX_PERIOD_DAYS, period_clean
from stores.access.scoping import ScopeKind, UserScope, region_ids_with_descendants, user_scope
from stores.models import Franchisee, Region, Staff, Store

if TYPE_CHECKING:
    from portal.models import User

DELETED_BY_CUSTOMER = Relationship.Status.DELETED_BY_CUSTOMER.value
DELETED_BY_STAFF = Relationship.Status.DELETED_BY_STAFF.value
GROUP_BYS = ("region", "franchisee", "store", "staff", "channel", "day")
MAX_RANGE_DAYS = MAX_PERIOD_DAYS


class DashboardError(DomainError):
    pass


def _tz() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def day_bounds(*, first: date, last: date) -> tuple[datetime, datetime]:
    """[start of ``first``, start of the day after ``last``) in Asia/Shanghai, as aware datetimes."""
    start = datetime.combine(first, time.min, tzinfo=_tz())
    end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=_tz())
    return start, end


# -- read side ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AcquisitionFilters:
    """Narrowing inside the viewer's scope (never widening it): a region includes its sub-regions."""

    region_id: int | None = None
    franchisee_id: int | None = None
    store_id: int | None = None


@dataclass
class AcquisitionRow:
    key: Any  # the day (group_by "day"), the group's id or code, None for the total
    label: str
    adds: int = 0
    deleted_by_customer: int = 0
    deleted_by_staff: int = 0
    cumulative: int = 0

    @property
    def deletions(self) -> int:
        return self.deleted_by_customer + self.deleted_by_staff

    @property
    def net(self) -> int:
        return self.adds - self.deletions

    @property
    def deletion_rate(self) -> Decimal:
        """Deletions / adds as a percentage with one decimal; 0 when there were no adds."""
        if not self.adds:
            return Decimal("0.0")
        return (Decimal(self.deletions * 100) / Decimal(self.adds)).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass
class AcquisitionFigures:
    group_by: str
    date_from: date
    date_to: date
    total: AcquisitionRow
    rows: list[AcquisitionRow] = field(default_factory=list)


# How each grouping reads on the daily table and on relationships (through the staff's current store).
_DAILY_KEY = {"region": "region_id", "franchisee": "franchisee_id", "store": "store_id", "staff": "staff_id",
              "channel": "channel_id", "day": "day"}
_LIVE_KEY = {"region": "staff__store__region_id", "franchisee": "staff__store__franchisee_id",
             "store": "staff__store_id", "staff": "staff_id", "channel": "channel_id"}


def relationships_for_scope(*, scope: UserScope) -> QuerySet[Relationship]:
    """Relationships scoped exactly like AcquisitionDaily rows: by the staff member's (current) store."""
    queryset = Relationship.objects.all()
    if scope.is_hq:
        return queryset
    if scope.kind == ScopeKind.NONE:
        return queryset.none()
    if scope.kind == ScopeKind.SELF:
        return queryset.filter(staff_id=scope.staff_id) if scope.staff_id is not None else queryset.none()
    return queryset.filter(staff__store__in=scope.store_ids())


def _filters_q(filters: AcquisitionFilters | None, *, prefix: str) -> Q:
    q = Q()
    if filters is None:
        return q
    if filters.region_id:
        q &= Q(**{f"{prefix}region_id__in": region_ids_with_descendants(region_ids=[filters.region_id])})
    if filters.franchisee_id:
        q &= Q(**{f"{prefix}franchisee_id": filters.franchisee_id})
    if filters.store_id:
        q &= Q(**{f"{prefix}id" if prefix else "store_id": filters.store_id})
    return q


def _history(*, viewer: User, date_from: date, date_to: date, group_by: str, filters) -> dict:
    rows = (AcquisitionDaily.objects.for_user(viewer).filter(day__gte=date_from, day__lte=date_to)
            .filter(_filters_q(filters, prefix=""))
            .values(key=F(_DAILY_KEY[group_by]))
            .annotate(adds=Sum("adds"), by_customer=Sum("deleted_by_customer"), by_staff=Sum("deleted_by_staff"))
            .order_by())
    return {row["key"]: (row["adds"], row["by_customer"], row["by_staff"]) for row in rows}


def _live(*, relationships: QuerySet, day: date, group_by: str) -> dict:
    """One day's figures straight from relationships (used for today)."""
    start, end = day_bounds(first=day, last=day)
    added = Q(added_at__gte=start, added_at__lt=end)
    ended = Q(ended_at__gte=start, ended_at__lt=end)
    figures = {
        "adds": Count("pk", filter=added),
        "by_customer": Count("pk", filter=ended & Q(status=DELETED_BY_CUSTOMER)),
        "by_staff": Count("pk", filter=ended & Q(status=DELETED_BY_STAFF)),
    }
    queryset = relationships.filter(added | (ended & Q(status__in=[DELETED_BY_CUSTOMER, DELETED_BY_STAFF])))
    if group_by == "day":
        row = queryset.aggregate(**figures)
        return {day: (row["adds"], row["by_customer"], row["by_staff"])} if row["adds"] or row["by_customer"] \
            or row["by_staff"] else {}
    rows = queryset.values(key=F(_LIVE_KEY[group_by])).annotate(**figures).order_by()
    return {row["key"]: (row["adds"], row["by_customer"], row["by_staff"]) for row in rows}


def _sql(queryset: QuerySet) -> tuple[str, tuple]:
    return queryset.order_by().query.sql_with_params()


def _active_at(*, relationships: QuerySet, at: datetime, column: str) -> tuple[str, list]:
    """SQL of (k, n): relationships active at ``at`` per ``column`` (staff_id or channel_id).

    Active at T = active now − active ones added since T + ended ones that were added before T and ended
    since (a relationship has an end iff it is not active). The first term is an index-only scan of
    (staff, status), the others are short ranges on the added_at / ended_at indexes, so no heap scan
    of every relationship is needed even for HQ, and nothing is joined per relationship.
    """
    active = relationships.filter(status=Relationship.Status.ACTIVE)
    parts = [(1, active), (-1, active.filter(added_at__gte=at)),
             (1, relationships.filter(ended_at__gte=at, added_at__lt=at))]
    sqls: list[str] = []
    params: list[Any] = []
    for sign, queryset in parts:
        sql, part_params = _sql(queryset.values(column).annotate(n=Count("*")))  # count(*): index-only
        sqls.append(f"SELECT p.{column} AS k, {sign} * p.n AS n FROM ({sql}) p")
        params += part_params
    return " UNION ALL ".join(sqls), params


# Per staff (or channel) first, then up to the store / region / franchisee of each staff member.
_ROLLUP = {"staff": "x.k", "store": "s.store_id", "region": "st.region_id", "franchisee": "st.franchisee_id",
           "channel": "x.k"}
CUMULATIVE_SQL = """
SELECT {key}, sum(x.n) FROM ({active}) x
LEFT JOIN stores_staff s ON s.id = x.k LEFT JOIN stores_store st ON st.id = s.store_id
GROUP BY 1
"""


def _cumulative(*, relationships: QuerySet, date_from: date, date_to: date, group_by: str) -> dict:
    """Relationships active at the end of the range (of each day when grouping by day), one grouped query."""
    if group_by == "day":
        return _cumulative_by_day(relationships=relationships, date_from=date_from, date_to=date_to)
    _start, end = day_bounds(first=date_to, last=date_to)
    active_sql, params = _active_at(relationships=relationships, at=end,
                                    column="channel_id" if group_by == "channel" else "staff_id")
    with connection.cursor() as cursor:
        cursor.execute(CUMULATIVE_SQL.format(key=_ROLLUP[group_by], active=active_sql), params)
        return {key: int(n) for key, n in cursor.fetchall() if n}


# The count active at the start of the range, then +1 on each day a relationship was added and -1 on each
# day one ended: the running sum is the active count at the end of each day.
CUMULATIVE_BY_DAY_SQL = """
SELECT day, sum(sum(delta)) OVER (ORDER BY day) FROM (
    SELECT %s::date AS day, x.n AS delta FROM ({active}) x
    UNION ALL SELECT (a.added_at AT TIME ZONE %s)::date, 1 FROM ({added}) a
    UNION ALL SELECT (e.ended_at AT TIME ZONE %s)::date, -1 FROM ({ended}) e
) events GROUP BY day ORDER BY day
"""


def _cumulative_by_day(*, relationships: QuerySet, date_from: date, date_to: date) -> dict:
    start, end = day_bounds(first=date_from, last=date_to)
    active_sql, active_params = _active_at(relationships=relationships, at=start, column="staff_id")
    added_sql, added_params = _sql(relationships.filter(added_at__gte=start, added_at__lt=end).values("added_at"))
    ended_sql, ended_params = _sql(relationships.filter(ended_at__gte=start, ended_at__lt=end).values("ended_at"))
    sql = CUMULATIVE_BY_DAY_SQL.format(active=active_sql, added=added_sql, ended=ended_sql)
    before = date_from - timedelta(days=1)
    params = [before, *active_params, settings.TIME_ZONE, *added_params, settings.TIME_ZONE, *ended_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        running = {day: int(total) for day, total in cursor.fetchall()}
    result, current = {}, running.get(before, 0)
    day = date_from
    while day <= date_to:  # carry the count over days without events
        current = running.get(day, current)
        result[day] = current
        day += timedelta(days=1)
    return result


def _labels(group_by: str, keys) -> dict:
    ids = [k for k in keys if k is not None]
    if group_by == "day":
        return {k: k.isoformat() for k in ids}
    if group_by == "region":
        labels = dict(Region.objects.filter(pk__in=ids).values_list("pk", "name"))
    elif group_by == "franchisee":
        labels = dict(Franchisee.objects.filter(pk__in=ids).values_list("pk", "name"))
    elif group_by == "store":
        labels = {s.pk: str(s) for s in Store.objects.filter(pk__in=ids).only("code", "name")}
    elif group_by == "staff":
        labels = {pk: f"{name}（{userid}）" for pk, name, userid in
                  Staff.objects.filter(pk__in=ids).values_list("pk", "name", "userid")}
    else:
        labels = {c.pk: str(c) for c in Channel.objects.filter(pk__in=ids).only("code", "name")}
    none_label = {"franchisee": _("直营"), "channel": _("无渠道"), "region": _("无门店"),
                  "store": _("无门店（总部员工）"), "staff": "—"}[group_by]
    return {**labels, None: none_label}


def acquisition_range_clean(*, date_from: date, date_to: date, today: date | None = None) -> tuple[date, date]:
    """The range the dashboard may show: ordered, not in the future, at most a year (portal.periods)."""
    return period_clean(date_from=date_from, date_to=date_to, today=today, max_days=MAX_RANGE_DAYS,
                        error=DashboardError)


def acquisition_figures(*, viewer: User, date_from: date, date_to: date, group_by: str,
                        filters: AcquisitionFilters | None = None, with_cumulative: bool = True) -> AcquisitionFigures:
    """Figures per group for the viewer's scope: history from the daily table, today live."""
    if group_by not in GROUP_BYS:
        raise DashboardError(_("未知的分组方式：%(group_by)s") % {"group_by": group_by})
    today = timezone.localdate()
    date_from, date_to = acquisition_range_clean(date_from=date_from, date_to=date_to, today=today)
    relationships = relationships_for_scope(scope=user_scope(viewer)).filter(
        _filters_q(filters, prefix="staff__store__"))
    counts: dict = {}
    history_to = min(date_to, today - timedelta(days=1))
    if date_from <= history_to:
        counts = _history(viewer=viewer, date_from=date_from, date_to=history_to, group_by=group_by, filters=filters)
    if date_to >= today:
        for key, figures in _live(relationships=relationships, day=today, group_by=group_by).items():
            counts[key] = tuple(a + b for a, b in zip(counts.get(key, (0, 0, 0)), figures, strict=True))
    cumulative = {}
    if with_cumulative:
        try:
            cumulative = _cumulative(relationships=relationships, date_from=date_from, date_to=date_to,
                                     group_by=group_by)
        except EmptyResultSet:  # no scope, or a filter matching nothing: the composed SQL has no WHERE to run
            cumulative = {}
    return _figures_assemble(group_by=group_by, date_from=date_from, date_to=date_to, counts=counts,
                             cumulative=cumulative)


def _figures_assemble(*, group_by, date_from, date_to, counts: dict, cumulative: dict) -> AcquisitionFigures:
    keys = set(counts) | {k for k, n in cumulative.items() if n}
    if group_by == "day":  # every day of the range, even a quiet one
        keys = {date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)}
    labels = _labels(group_by, keys)
    rows = []
    for key in keys:
        adds, by_customer, by_staff = counts.get(key, (0, 0, 0))
        rows.append(AcquisitionRow(key=key, label=labels.get(key, str(key)), adds=adds,
                                   deleted_by_customer=by_customer, deleted_by_staff=by_staff,
                                   cumulative=cumulative.get(key, 0)))
    if group_by == "day":
        rows.sort(key=lambda r: r.key)
    else:
        rows.sort(key=lambda r: (-r.net, -r.adds, r.label))
    total = AcquisitionRow(key=None, label=_("合计"), adds=sum(r.adds for r in rows),
                           deleted_by_customer=sum(r.deleted_by_customer for r in rows),
                           deleted_by_staff=sum(r.deleted_by_staff for r in rows),
                           cumulative=(rows[-1].cumulative if rows else 0) if group_by == "day"
                           else sum(r.cumulative for r in rows))
    return AcquisitionFigures(group_by=group_by, date_from=date_from, date_to=date_to, rows=rows, total=total)


@dataclass
class Leaderboards:
    top_stores: list[AcquisitionRow]
    top_staff: list[AcquisitionRow]
    worst_stores: list[AcquisitionRow]  # highest deletion rate among those with at least ``min_adds`` adds
    worst_staff: list[AcquisitionRow]
    min_adds: int


def acquisition_leaderboards(*, viewer: User, date_from: date, date_to: date, filters: AcquisitionFilters | None = None,
                             min_adds: int = 10, top: int = 10, worst: int = 5,
                             known: AcquisitionFigures | None = None) -> Leaderboards:
    """PK boards: top stores and staff by net adds; the highest deletion rates among those with enough adds.

    ``known``: figures of the same range and filters already computed (the page's table), reused if by store/staff.
    """
    boards = {}
    for group_by in ("store", "staff"):
        if known is not None and known.group_by == group_by:
            rows = known.rows
        else:
            rows = acquisition_figures(viewer=viewer, date_from=date_from, date_to=date_to, group_by=group_by,
                                       filters=filters, with_cumulative=False).rows
        rows = [r for r in rows if r.key is not None]
        boards[f"top_{group_by}"] = [r for r in rows if r.adds or r.deletions][:top]
        eligible = [r for r in rows if r.adds >= min_adds]
        boards[f"worst_{group_by}"] = sorted(eligible, key=lambda r: (-r.deletion_rate, -r.deletions, r.label))[:worst]
    return Leaderboards(top_stores=boards["top_store"], top_staff=boards["top_staff"],
                        worst_stores=boards["worst_store"], worst_staff=boards["worst_staff"], min_adds=min_adds)


def acquisition_today(*, viewer: User) -> AcquisitionRow:
    """Today's adds and deletions in the viewer's scope, live (the 工作台 panel)."""
    today = timezone.localdate()
    figures = _live(relationships=relationships_for_scope(scope=user_scope(viewer)), day=today, group_by="day")
    adds, by_customer, by_staff = figures.get(today, (0, 0, 0))
    return AcquisitionRow(key=today, label=today.isoformat(), adds=adds, deleted_by_customer=by_customer,
                          deleted_by_staff=by_staff)
