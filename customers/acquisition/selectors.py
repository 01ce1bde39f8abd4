"""Reads for acquisition: the members each store's codes should carry."""

from __future__ import annotations

from django.db import connection

# The members a store code rotates among: the store's active staff, least-loaded first, at most 100.
WAY_MEMBERS_MAX = 100  # WeCom: at most 100 members per contact way

STORE_MEMBERS_SQL = """
SELECT store_id, id, userid FROM (
    SELECT s.store_id, s.id, s.userid,
           row_number() OVER (PARTITION BY s.store_id ORDER BY s.customer_count, s.id) AS n
    FROM stores_staff s
    WHERE s.store_id = ANY(%(store_ids)s) AND s.status = 'active' AND s.position <> 'hq'
) ranked WHERE n <= %(limit)s ORDER BY store_id, n
"""


def store_members(*, store_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """{store_id: [(staff_id, userid), ...]} for many stores in one query."""
    found: dict[int, list[tuple[int, str]]] = {store_id: [] for store_id in store_ids}
    if not store_ids:
        return found
    with connection.cursor() as cursor:
        cursor.execute(STORE_MEMBERS_SQL, {"store_ids": list(store_ids), "limit": WAY_MEMBERS_MAX})
        for store_id, staff_id, userid in cursor.fetchall():
            found[store_id].append((staff_id, userid))
    return found
