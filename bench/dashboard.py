"""The add-fan dashboard's daily build over many relationships (COPY-loaded).

    python -m bench dashboard --scale 1000000   # relationships (small: 100,000)

Measures, in one run: the set-based build of one day (one INSERT … SELECT … ON CONFLICT) against the
naive per-staff Python loop (a query per staff member and an update_or_create per row), checks both
give the same rows, and times the idempotent 10-minute refresh, a 30-day backfill and the dashboard's
HQ read (history + today live + cumulative).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta

from bench.harness import result_line, tables_truncate, timed

CUSTOMER_TABLES = ("customers_acquisitiondaily", "customers_relationship", "customers_customer")
SPAN_DAYS = 30  # relationships are added over the last 30 days and today
DELETED_SHARE = 0.15


def _org_ensure(*, relationships: int):
    from bench.org import ORG_TABLES, _size
    from stores.demo import org_build
    from stores.models import Staff

    stores = 4000 if relationships >= 1_000_000 else 200
    if Staff.objects.count() < _size(stores).staff:
        tables_truncate(*ORG_TABLES)
        org_build(size=_size(stores))
    return list(Staff.objects.select_related("store").values_list("pk", "store_id", "store__region_id",
                                                                   "store__franchisee_id"))


def _channels(count: int = 8) -> list[int]:
    from customers.models import Channel

    for i in range(count):
        Channel.objects.get_or_create(code=f"BC{i:02d}", defaults={"name": f"渠道{i}"})
    return list(Channel.objects.filter(code__startswith="BC").values_list("pk", flat=True))


def _load(*, count: int, staff: list[tuple], channels: list[int], today) -> None:
    """COPY ``count`` customers and one relationship each, added over SPAN_DAYS, some since deleted."""
    from django.db import connection

    from customers.dashboard.selectors import day_bounds

    rng = random.Random(20261124)
    start, _end = day_bounds(first=today - timedelta(days=SPAN_DAYS), last=today)
    now = datetime.now(tz=start.tzinfo)
    span = (now - start).total_seconds()
    tables_truncate(*CUSTOMER_TABLES)
    rows = []
    # In time order, like relationships arriving day after day (the heap is then clustered by added_at).
    for i, offset in enumerate(sorted(rng.random() * span for _ in range(count)), start=1):
        staff_id, store_id, region_id, franchisee_id = staff[rng.randrange(len(staff))]
        added = start + timedelta(seconds=offset)
        channel = channels[rng.randrange(len(channels))] if rng.random() < 0.7 else None
        ended = status = None
        if rng.random() < DELETED_SHARE:
            ended = added + (now - added) * rng.random()
            status = "deleted_by_customer" if rng.random() < 0.8 else "deleted_by_staff"
        rows.append((i, staff_id, store_id, region_id, franchisee_id, channel, added, ended, status))
    with connection.cursor() as cursor:
        with cursor.copy("COPY customers_customer (id, external_userid, unionid, name, kind, gender, avatar, "
                         "corp_name, staff_id, store_id, region_id, franchisee_id, channel_id, stage, tag_ids, "
                         "active, first_added_at, created_at, updated_at) FROM STDIN") as copy:
            for i, staff_id, store_id, region_id, franchisee_id, channel, added, ended, _s in rows:
                copy.write_row((i, f"wmBENCH{i:09d}", "", f"客户{i}", 1, 0, "", "", staff_id, store_id, region_id,
                                franchisee_id, channel, "fan", "{}", ended is None, added, now, now))
        with cursor.copy("COPY customers_relationship (customer_id, staff_id, store_id, added_at, add_way, state, "
                         "channel_id, campaign_ref, remark, description, remark_mobiles, tag_ids, status, ended_at) "
                         "FROM STDIN") as copy:
            for i, staff_id, store_id, _r, _f, channel, added, ended, status in rows:
                copy.write_row((i, staff_id, store_id, added, 0, "", channel, "", "", "", "{}", "{}",
                                status or "active", ended))
        cursor.execute("SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [count])
        cursor.execute("ANALYZE customers_customer, customers_relationship")


def _build_per_staff(day) -> None:
    """The naive way: for each staff member, read their day and upsert a row per channel."""
    from customers.dashboard.selectors import day_bounds
    from customers.models import AcquisitionDaily, Relationship
    from stores.models import Staff

    start, end = day_bounds(first=day, last=day)
    for member in Staff.objects.select_related("store").iterator():
        figures = defaultdict(lambda: [0, 0, 0])
        for channel_id in Relationship.objects.filter(staff=member, added_at__gte=start, added_at__lt=end) \
                .values_list("channel_id", flat=True):
            figures[channel_id][0] += 1
        for channel_id, status in Relationship.objects.filter(
                staff=member, ended_at__gte=start, ended_at__lt=end,
                status__in=["deleted_by_customer", "deleted_by_staff"]).values_list("channel_id", "status"):
            figures[channel_id][1 if status == "deleted_by_customer" else 2] += 1
        store = member.store
        for channel_id, (adds, by_customer, by_staff) in figures.items():
            AcquisitionDaily.objects.update_or_create(
                day=day, staff=member, channel_id=channel_id,
                defaults={"store": store, "region_id": store.region_id if store else None,
                          "franchisee_id": store.franchisee_id if store else None, "adds": adds,
                          "deleted_by_customer": by_customer, "deleted_by_staff": by_staff})


def _daily_rows(day) -> set[tuple]:
    from customers.models import AcquisitionDaily

    return set(AcquisitionDaily.objects.filter(day=day).exclude(adds=0, deleted_by_customer=0, deleted_by_staff=0)
               .values_list("staff_id", "channel_id", "store_id", "adds", "deleted_by_customer",
                            "deleted_by_staff"))


def _dashboard_read_seconds(today) -> tuple[float, float]:
    """The HQ dashboard's figures (grouped by store, with the daily chart) and a store manager's."""
    from customers.dashboard.selectors import acquisition_figures
    from portal.models import User

    hq = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench_admin", "", "x")
    manager = User.objects.get(username="manager_s0001")
    seconds = []
    for user in (hq, manager):
        with timed() as read:
            acquisition_figures(viewer=user, date_from=today - timedelta(days=7), date_to=today, group_by="store")
            acquisition_figures(viewer=user, date_from=today - timedelta(days=7), date_to=today, group_by="day",
                                with_cumulative=False)
        seconds.append(read.seconds)
    return seconds[0], seconds[1]


def bench_dashboard(*, scale: int) -> str:
    from django.utils import timezone

    from customers.dashboard.services import acquisition_daily_build, acquisition_daily_build_range

    today = timezone.localdate()
    day = today - timedelta(days=1)
    staff = _org_ensure(relationships=scale)
    with timed() as load:
        _load(count=scale, staff=staff, channels=_channels(), today=today)
    tables_truncate("customers_acquisitiondaily")
    with timed() as set_based:
        written = acquisition_daily_build(day=day)
    with timed() as refresh:
        rewritten = acquisition_daily_build(day=day)
    expected = _daily_rows(day)
    tables_truncate("customers_acquisitiondaily")
    with timed() as per_staff:
        _build_per_staff(day)
    assert _daily_rows(day) == expected, "the per-staff loop and the set-based build disagree"
    tables_truncate("customers_acquisitiondaily")
    with timed() as backfill:
        acquisition_daily_build_range(date_from=today - timedelta(days=SPAN_DAYS), date_to=day)
    hq_read, manager_read = _dashboard_read_seconds(today)
    print(f"relationships={scale} staff={len(staff)} copy_load={load.seconds:.1f}s day_rows={written} "
          f"set_based={set_based.seconds:.3f}s per_staff_loop={per_staff.seconds:.2f}s "
          f"refresh_unchanged={refresh.seconds:.3f}s (rows rewritten={rewritten}) "
          f"backfill_{SPAN_DAYS}_days={backfill.seconds:.2f}s dashboard_read_hq={hq_read:.3f}s "
          f"dashboard_read_store_manager={manager_read:.3f}s")
    return result_line(bench="dashboard", value=set_based.seconds, unit="s", baseline=per_staff.seconds)
