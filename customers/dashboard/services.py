"""The add-fan dashboard's writes: AcquisitionDaily built set-based per day, and backfills."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from customers.dashboard.selectors import DELETED_BY_CUSTOMER, DELETED_BY_STAFF, DashboardError, day_bounds

# -- build -------------------------------------------------------------------------------------------

# One statement: the day's events grouped by (day, staff, channel), upserted. Rows already in the table
# for those days join the source with zeros, so a rebuild also zeroes figures that have since gone;
# rows whose figures did not change are not rewritten (no dead tuples from the 10-minute refresh).
BUILD_SQL = """
WITH events AS (
    SELECT (r.added_at AT TIME ZONE %(tz)s)::date AS day, r.staff_id, r.channel_id,
           1 AS adds, 0 AS by_customer, 0 AS by_staff
    FROM customers_relationship r
    WHERE r.added_at >= %(start)s AND r.added_at < %(end)s
    UNION ALL
    SELECT (r.ended_at AT TIME ZONE %(tz)s)::date, r.staff_id, r.channel_id,
           0, (r.status = %(by_customer)s)::int, (r.status = %(by_staff)s)::int
    FROM customers_relationship r
    WHERE r.ended_at >= %(start)s AND r.ended_at < %(end)s AND r.status IN (%(by_customer)s, %(by_staff)s)
    UNION ALL
    SELECT a.day, a.staff_id, a.channel_id, 0, 0, 0
    FROM customers_acquisitiondaily a
    WHERE a.day >= %(first)s AND a.day <= %(last)s
)
INSERT INTO customers_acquisitiondaily AS a (day, staff_id, channel_id, store_id, region_id, franchisee_id,
                                             adds, deleted_by_customer, deleted_by_staff)
SELECT e.day, e.staff_id, e.channel_id, st.id, st.region_id, st.franchisee_id,
       sum(e.adds), sum(e.by_customer), sum(e.by_staff)
FROM events e
JOIN stores_staff s ON s.id = e.staff_id
LEFT JOIN stores_store st ON st.id = s.store_id
GROUP BY e.day, e.staff_id, e.channel_id, st.id, st.region_id, st.franchisee_id
ON CONFLICT (day, staff_id, channel_id) DO UPDATE SET
    store_id = EXCLUDED.store_id, region_id = EXCLUDED.region_id, franchisee_id = EXCLUDED.franchisee_id,
    adds = EXCLUDED.adds, deleted_by_customer = EXCLUDED.deleted_by_customer,
    deleted_by_staff = EXCLUDED.deleted_by_staff
WHERE (a.store_id, a.region_id, a.franchisee_id, a.adds, a.deleted_by_customer, a.deleted_by_staff)
      IS DISTINCT FROM (EXCLUDED.store_id, EXCLUDED.region_id, EXCLUDED.franchisee_id, EXCLUDED.adds,
                        EXCLUDED.deleted_by_customer, EXCLUDED.deleted_by_staff)
"""


def acquisition_daily_build_range(*, date_from: date, date_to: date) -> int:
    """(Re)build the daily table for every day of [date_from, date_to] in one statement.

    Idempotent: a second run writes nothing. Returns the number of rows inserted or changed.
    """
    if date_from > date_to:
        raise DashboardError(_("开始日期不能晚于结束日期"))
    start, end = day_bounds(first=date_from, last=date_to)
    params: dict[str, Any] = {"tz": settings.TIME_ZONE, "start": start, "end": end, "first": date_from, "last": date_to,
              "by_customer": DELETED_BY_CUSTOMER, "by_staff": DELETED_BY_STAFF}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(BUILD_SQL, params)
        return cursor.rowcount


def acquisition_daily_build(*, day: date) -> int:
    """(Re)build one day of the daily table (beat: yesterday after midnight, today every 10 minutes)."""
    return acquisition_daily_build_range(date_from=day, date_to=day)


def acquisition_stats_backfill(*, date_from: date, date_to: date, chunk_days: int = 31) -> list[tuple[date, int]]:
    """Rebuild a long range month by month (short transactions). Returns (first day of chunk, rows)."""
    if date_from > date_to:
        raise DashboardError(_("开始日期不能晚于结束日期"))
    done = []
    first = date_from
    while first <= date_to:
        last = min(first + timedelta(days=chunk_days - 1), date_to)
        done.append((first, acquisition_daily_build_range(date_from=first, date_to=last)))
        first = last + timedelta(days=1)
    return done
