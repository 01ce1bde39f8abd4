"""Counting without COUNT(*) over millions of rows."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

EXACT_COUNT_BELOW = 20_000
COUNT_CAP = 100_000


def table_row_estimate(*, model) -> int:
    """pg_class.reltuples: the planner's estimate, maintained by ANALYZE/autovacuum (-1 if never)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


def capped_count(queryset, *, cap: int = COUNT_CAP) -> int:
    """COUNT over at most ``cap`` rows: SELECT count(*) FROM (... LIMIT cap)."""
    return queryset.order_by()[:cap].count()


class EstimatedCountPaginator(Paginator):
    """Unfiltered big tables: the estimate. Filtered: an exact count capped at COUNT_CAP."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return len(queryset)
        if not queryset.query.where:
            estimate = table_row_estimate(model=queryset.model)
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
        return capped_count(queryset)
