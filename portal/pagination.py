"""Counting without COUNT(*) over millions of rows."""

from __future__ import annotations

import json
from typing import Any, cast

from django.core.paginator import Paginator
from django.db import connection
from django.db.models import QuerySet
from django.utils.functional import cached_property

EXACT_COUNT_BELOW = 20_000
COUNT_CAP = 100_000
COUNT_COST_MAX = 10_000  # planner cost units: beyond, an exact count would fetch thousands of heap pages
COUNT_PROBE = 1_000  # an estimate is shown only once this many rows are seen to exist
DEFERRED_JOIN_FROM = 1_000  # rows skipped: from here a page finds its ids first (see _get_page)


def table_row_estimate(*, model) -> int:
    """pg_class.reltuples: the planner's estimate, maintained by ANALYZE/autovacuum (-1 if never)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


def query_plan_estimate(queryset) -> tuple[int, float]:
    """(rows, total cost) the planner expects for fetching a queryset's rows (EXPLAIN: planned, not run)."""
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return int(top["Plan Rows"]), float(top["Total Cost"])


def capped_count(queryset, *, cap: int = COUNT_CAP) -> int:
    """COUNT over at most ``cap`` rows: SELECT count(*) FROM (... LIMIT cap)."""
    return queryset.order_by()[:cap].count()


class EstimatedCountPaginator(Paginator):
    """Unfiltered big tables: pg_class's estimate. Filtered: the exact count when it is cheap — fewer than
    COUNT_CAP rows and an index-only or small plan (a store's customers) —, else the planner's estimate,
    once COUNT_PROBE rows are seen to exist (a wrong big estimate over a few rows gives way to their exact
    count). Counting 40,000 customers named 张伟… fetches a heap page each: 0.45 s at 10 M, the estimate
    1 ms; a region's million customers would only ever be counted up to the cap anyway.

    Deep pages are fetched in two steps: a list joining store and staff at OFFSET 10,000 would join
    every skipped row (≈ 30 ms for page 200, ten times that for page 2,000); the ids alone come from an
    index-only walk, then only the page's rows are joined.
    """

    count_is_estimate = False  # the list then says "约 N" (about N)

    @cached_property
    def count(self) -> int:
        if not hasattr(self.object_list, "query"):
            return len(self.object_list)
        queryset = cast("QuerySet[Any]", self.object_list)  # the changelist's queryset
        if queryset.query.is_empty():  # .none(), e.g. a viewer with no scope: nothing to plan (EXPLAIN would fail)
            return 0
        if not queryset.query.where:
            estimate = table_row_estimate(model=queryset.model)
            if estimate >= EXACT_COUNT_BELOW:
                self.count_is_estimate = True
                return estimate
            return capped_count(queryset)
        rows, cost = query_plan_estimate(queryset)
        if rows < COUNT_CAP and cost <= COUNT_COST_MAX:
            return capped_count(queryset)
        seen = capped_count(queryset, cap=COUNT_PROBE)
        if seen < COUNT_PROBE:
            return seen
        self.count_is_estimate = True
        return max(rows, COUNT_PROBE)

    def _get_page(self, object_list, number, paginator):
        query = getattr(object_list, "query", None)
        if query is not None and query.low_mark >= DEFERRED_JOIN_FROM:
            ids = list(object_list.values_list("pk", flat=True))
            object_list = cast("QuerySet[Any]", self.object_list).filter(pk__in=ids)  # same ordering, same order
        return super()._get_page(object_list, number, paginator)  # type: ignore[misc]  # Django's page hook, not in the stubs
