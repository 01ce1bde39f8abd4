"""Reads of material usage, all in the viewer's scope: top and unused materials, use per region (rolled up the
region tree) and per store, use over time, and one material's own summary. They read the daily rollup
(``MaterialUseDaily``), never the events, except a material's per-version figures."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from materials.library.models import Material, audience_reaches_q
from materials.library.selectors import materials_usable
from materials.usage.models import MaterialUse, MaterialUseDaily, UseAction
from portal.errors import DomainError
from portal.periods import MAX_PERIOD_DAYS, period_clean
from stores.access.scoping import ScopeKind, region_ids_with_descendants, user_scope
from stores.org.models import Region, Store

if TYPE_CHECKING:
    from portal.models import User

ACTIONS: tuple[str, ...] = tuple(UseAction.values)
MAX_RANGE_DAYS = MAX_PERIOD_DAYS
SUMMARY_DAYS = 30


class UsageError(DomainError):
    pass


@dataclass(frozen=True)
class UsageFilters:
    """The period, and narrowing inside the viewer's scope (never widening it): a region includes its sub-regions."""

    date_from: date
    date_to: date
    region_id: int | None = None
    store_id: int | None = None
    kind: str | None = None


@dataclass
class UsageCounts:
    view: int = 0
    download: int = 0
    copy: int = 0
    share: int = 0
    send: int = 0

    @property
    def total(self) -> int:
        return self.view + self.download + self.copy + self.share + self.send

    def of(self, action: str | None) -> int:
        return self.total if action is None else int(getattr(self, action))

    def cells(self) -> list[int]:
        return [*(int(getattr(self, a)) for a in ACTIONS), self.total]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> UsageCounts:
        return cls(**{a: int(row.get(a) or 0) for a in ACTIONS})


@dataclass
class UsageRow:
    key: Any  # a material, store or region id, or a day
    label: str
    counts: UsageCounts = field(default_factory=UsageCounts)
    note: str = ""  # a material's kind, a region's parent


def usage_range_clean(*, date_from: date, date_to: date, today: date | None = None) -> tuple[date, date]:
    """The period the analytics may show: ordered, not in the future, at most a year (portal.periods)."""
    return period_clean(date_from=date_from, date_to=date_to, today=today, max_days=MAX_RANGE_DAYS, error=UsageError)


def _sums() -> dict[str, Sum]:
    return {action: Sum("count", filter=Q(action=action)) for action in ACTIONS}


def _store_q(filters: UsageFilters, *, prefix: str = "store__") -> Q:
    q = Q()
    if filters.region_id:
        q &= Q(**{f"{prefix}region_id__in": region_ids_with_descendants(region_ids=[filters.region_id])})
    if filters.store_id:
        q &= Q(**{f"{prefix}id" if prefix else "pk": filters.store_id})
    return q


def usage_daily(*, viewer: User, filters: UsageFilters) -> QuerySet[MaterialUseDaily]:
    """The daily rows of the viewer's scope in the period, narrowed by region (with sub-regions), store, kind."""
    rows = (MaterialUseDaily.objects.for_user(viewer)
            .filter(day__gte=filters.date_from, day__lte=filters.date_to).filter(_store_q(filters)))
    if filters.kind:
        rows = rows.filter(material__kind=filters.kind)
    return rows


def materials_top(*, viewer: User, filters: UsageFilters, action: str | None = None,
                  limit: int = 20) -> list[UsageRow]:
    """The most used materials of the period, by one action or by all uses."""
    if action is not None and action not in ACTIONS:
        raise UsageError(_("未知的使用动作：%(action)s") % {"action": action})
    rows = (usage_daily(viewer=viewer, filters=filters).values("material_id")
            .annotate(**_sums(), total=Sum("count")).order_by())
    rows = rows.filter(**{f"{action}__gt": 0}) if action else rows  # HAVING: the materials used that way
    ranked = rows.order_by(F(action or "total").desc(nulls_last=True), "material_id")[:limit]
    found = list(ranked)
    titles = {m.pk: m for m in Material.objects.filter(pk__in=[r["material_id"] for r in found])
              .only("title", "kind")}
    return [UsageRow(key=r["material_id"], label=titles[r["material_id"]].title,
                     note=str(titles[r["material_id"]].get_kind_display()),
                     counts=UsageCounts.from_row(r)) for r in found if r["material_id"] in titles]


def materials_unused(*, viewer: User, filters: UsageFilters) -> QuerySet[Material]:
    """Materials usable now in the viewer's scope (reaching the chosen region or store) with no use in the period
    there: one NOT EXISTS over the daily rollup, no per-material loop."""
    materials = materials_usable(viewer=viewer, kind=filters.kind or None)
    if filters.region_id or filters.store_id:
        stores = Store.objects.for_user(viewer).filter(_store_q(filters, prefix=""))
        materials = materials.filter(audience_reaches_q(stores=stores))
    used = usage_daily(viewer=viewer, filters=filters).filter(material_id=OuterRef("pk"))
    return materials.filter(~Exists(used)).order_by("-updated_at", "-pk")


def usage_by_store(*, viewer: User, filters: UsageFilters, limit: int | None = None) -> list[UsageRow]:
    """Uses per store (uses outside any store, e.g. by HQ, as one row), most used first."""
    rows = list(usage_daily(viewer=viewer, filters=filters).values("store_id").annotate(**_sums()).order_by())
    stores = {s.pk: str(s) for s in Store.objects.filter(pk__in=[r["store_id"] for r in rows if r["store_id"]])
              .only("code", "name")}
    result = [UsageRow(key=r["store_id"], label=stores.get(r["store_id"], _("无门店（总部）")),
                       counts=UsageCounts.from_row(r)) for r in rows]
    result.sort(key=lambda r: (-r.counts.total, r.label))
    return result[:limit] if limit else result


REGION_ROLLUP_SQL = """
WITH RECURSIVE tree(ancestor_id, region_id) AS (
    SELECT id, id FROM stores_region WHERE id = ANY(%s)
    UNION
    SELECT t.ancestor_id, r.id FROM stores_region r JOIN tree t ON r.parent_id = t.region_id
)
SELECT t.ancestor_id, {sums}
FROM tree t JOIN stores_store s ON s.region_id = t.region_id JOIN ({per_store}) p ON p.store_id = s.id
GROUP BY t.ancestor_id
"""


def usage_by_region(*, viewer: User, filters: UsageFilters) -> list[UsageRow]:
    """Uses per region of the viewer's scope, each including its sub-regions' stores (one recursive query)."""
    scope = user_scope(viewer)
    if scope.kind == ScopeKind.NONE:
        return []
    regions = Region.objects.for_user(viewer)
    if filters.region_id:
        regions = regions.filter(pk__in=region_ids_with_descendants(region_ids=[filters.region_id]))
    listed = list(regions.select_related("parent").order_by("code"))
    if not listed:
        return []
    per_store = usage_daily(viewer=viewer, filters=filters).values("store_id").annotate(**_sums()).order_by()
    try:
        per_store_sql, per_store_params = per_store.query.sql_with_params()
    except EmptyResultSet:  # a filter that can match nothing: every region is 0
        return [UsageRow(key=r.pk, label=r.name, note=r.parent.name if r.parent else "—") for r in listed]
    sums = ", ".join(f"sum(p.{action})" for action in ACTIONS)
    with connection.cursor() as cursor:
        cursor.execute(REGION_ROLLUP_SQL.format(sums=sums, per_store=per_store_sql),
                       [[r.pk for r in listed], *per_store_params])
        figures = {row[0]: UsageCounts(*(int(v or 0) for v in row[1:])) for row in cursor.fetchall()}
    rows = [UsageRow(key=r.pk, label=r.name, note=r.parent.name if r.parent else "—",
                     counts=figures.get(r.pk, UsageCounts())) for r in listed]
    rows.sort(key=lambda r: (-r.counts.total, r.label))
    return rows


def usage_over_time(*, viewer: User, filters: UsageFilters, material_id: int | None = None) -> list[UsageRow]:
    """Uses per day, every day of the period (a quiet day is 0), of one material or of all."""
    rows = usage_daily(viewer=viewer, filters=filters)
    if material_id is not None:
        rows = rows.filter(material_id=material_id)
    per_day = {r["day"]: UsageCounts.from_row(r) for r in rows.values("day").annotate(**_sums()).order_by()}
    days = (filters.date_to - filters.date_from).days + 1
    return [UsageRow(key=day, label=day.isoformat(), counts=per_day.get(day, UsageCounts()))
            for day in (filters.date_from + timedelta(days=i) for i in range(days))]


@dataclass
class MaterialUsageSummary:
    since: date
    counts: UsageCounts
    stores: list[UsageRow]  # the 10 stores that used it most
    versions: list[UsageRow]  # uses per version (number), newest first
    days: list[UsageRow]


def material_usage_summary(*, viewer: User, material: Material, since: date | None = None) -> MaterialUsageSummary:
    """Where and how one material was used in the viewer's scope: per action, the top 10 stores, per version and
    per day, since ``since`` (default: the last 30 days and today)."""
    today = timezone.localdate()
    since = since or today - timedelta(days=SUMMARY_DAYS)
    filters = UsageFilters(date_from=since, date_to=today)
    daily = usage_daily(viewer=viewer, filters=filters).filter(material=material)
    counts = UsageCounts.from_row(daily.aggregate(**_sums()))
    rows = list(daily.values("store_id").annotate(**_sums(), total=Sum("count"))
                .order_by("-total", "store_id")[:10])
    stores = {s.pk: str(s) for s in Store.objects.filter(pk__in=[r["store_id"] for r in rows if r["store_id"]])
              .only("code", "name")}
    top_stores = [UsageRow(key=r["store_id"], label=stores.get(r["store_id"], _("无门店（总部）")),
                           counts=UsageCounts.from_row(r)) for r in rows]
    from_at = datetime.combine(since, time.min, tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))
    per_version = (MaterialUse.objects.for_user(viewer).filter(material=material, at__gte=from_at)
                   .values("version__number")
                   .annotate(**{a: Count("pk", filter=Q(action=a)) for a in ACTIONS})
                   .order_by("-version__number"))
    versions = [UsageRow(key=r["version__number"], label=_("第 %(n)d 版") % {"n": r["version__number"]},
                         counts=UsageCounts.from_row(r)) for r in per_version]
    days = usage_over_time(viewer=viewer, filters=filters, material_id=material.pk)
    return MaterialUsageSummary(since=since, counts=counts, stores=top_stores, versions=versions, days=days)
