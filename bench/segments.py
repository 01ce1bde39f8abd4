"""Segments over millions of customers: count and materialize one rule, against Python evaluation.

    python -m bench segments --scale 10000000   # customers (small: 200,000)
    BENCH_SEGMENTS_REUSE=1 python -m bench segments --scale …   # keep the loaded customers if they match

Loads customers with COPY (realistic tag arrays: a few tags each from 300 with skewed popularity,
stores over 4 areas, stages, ~45 % members with spend and RFM), ANALYZE, then times for the rule
"three tag conditions (any/all/none) + a region + a stage + a spend bound":
  - segment_count (HQ viewer): median of 5 runs; also a region manager's scoped count;
  - segment_materialize: one INSERT … SELECT;
  - variants of the same count (work_mem 4 MB = the plain plan, 16 MB, no parallel workers, JIT off,
    no bitmap scans, the region as a tree-walking subquery) so the choice is measured;
  - baseline: the same rule evaluated in Python (segment_matches) over rows streamed from the database
    (iterator with chunking) — over at most BASELINE_CAP rows, extrapolated linearly to the whole table.
"""

from __future__ import annotations

import io
import os
import random
import statistics
from datetime import datetime, timedelta

from bench.harness import result_line, tables_truncate, timed

TAGS = 300
BASELINE_CAP = 1_000_000
MEMBER_SHARE = 0.45
STAGES = [("fan", 50), ("interested", 20), ("lead", 12), ("visited", 8), ("customer", 7), ("referrer", 3)]
CUSTOMER_TABLES = ("customers_segmentsnapshotmember", "customers_segmentsnapshot", "customers_segment",
                   "customers_stagechange", "customers_relationship", "customers_customer", "customers_member")
CUSTOMER_COLUMNS = ("id, external_userid, unionid, name, kind, gender, avatar, corp_name, staff_id, store_id, "
                    "region_id, franchisee_id, channel_id, stage, tag_ids, active, first_added_at, last_touch_at, "
                    "member_id, created_at, updated_at")
MEMBER_COLUMNS = ("id, member_no, mobile_hash, mobile_masked, unionid, name, level, points, lifetime_spend, "
                  "order_count, last_purchase_on, home_store_id, rfm_r, rfm_f, rfm_m, updated_at")


# -- data --------------------------------------------------------------------------------------------
def _org_ensure(*, customers: int) -> list[tuple]:
    from bench.org import ORG_TABLES, _size
    from stores.models import Staff
    from stores.services.demo import org_build

    stores = 4000 if customers >= 2_000_000 else 200
    if Staff.objects.count() < _size(stores).staff:
        tables_truncate(*ORG_TABLES)
        org_build(size=_size(stores))
    return list(Staff.objects.filter(store__isnull=False).values_list("pk", "store_id", "store__region_id",
                                                                      "store__franchisee_id"))


def _tags_and_channels() -> tuple[list[int], list[int]]:
    from customers.models import Channel, Tag, TagGroup

    groups = [TagGroup.objects.get_or_create(wecom_group_id=f"etBENCH{g:02d}", defaults={"name": f"标签组{g}"})[0]
              for g in range(20)]
    Tag.objects.bulk_create([Tag(group=groups[i % 20], name=f"标签{i:03d}", wecom_tag_id=f"etBENCHTAG{i:03d}")
                             for i in range(TAGS)], ignore_conflicts=True)
    for i in range(8):
        Channel.objects.get_or_create(code=f"BC{i:02d}", defaults={"name": f"渠道{i}"})
    tags = list(Tag.objects.filter(wecom_tag_id__startswith="etBENCHTAG").order_by("wecom_tag_id")
                .values_list("pk", flat=True))
    return tags, list(Channel.objects.filter(code__startswith="BC").values_list("pk", flat=True))


def _secondary_indexes(cursor, table: str) -> list[tuple[str, str]]:
    """(name, definition) of the indexes COPY would maintain row by row and that no constraint owns."""
    cursor.execute("""
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.tablename = %s AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
    """, [table])
    return cursor.fetchall()


def _timestamps(rng: random.Random, *, days: int, count: int = 50_000) -> list[str]:
    now = datetime.now().astimezone()
    return [(now - timedelta(seconds=rng.random() * days * 86400)).isoformat() for _ in range(count)]


def _customer_lines(rng, *, count: int, staff: list[tuple], tags: list[int], channels: list[int]):
    """Yields (chunk of COPY text, members so far). Tag popularity is skewed like a real tag library."""
    tag_weights = [1 / (rank + 1) ** 0.9 for rank in range(len(tags))]
    cum, total = [], 0.0
    for w in tag_weights:
        total += w
        cum.append(total)
    stage_pool = [s for s, weight in STAGES for _ in range(weight)]
    added_pool, touch_pool = _timestamps(rng, days=3 * 365), _timestamps(rng, days=180)
    now = datetime.now().astimezone().isoformat()
    members = 0
    out = io.StringIO()
    for i in range(1, count + 1):
        staff_id, store_id, region_id, franchisee_id = staff[rng.randrange(len(staff))]
        franchisee = franchisee_id or "\\N"
        tag_ids = sorted(set(rng.choices(tags, cum_weights=cum, k=rng.choice((0, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8)))))
        member_id = "\\N"
        if rng.random() < MEMBER_SHARE:
            members += 1
            member_id = members
        channel = channels[rng.randrange(len(channels))] if rng.random() < 0.7 else "\\N"
        touch = touch_pool[rng.randrange(len(touch_pool))] if rng.random() < 0.6 else "\\N"
        out.write(f"{i}\twmSEGB{i:09d}\t\t客户{i}\t1\t0\t\t\t{staff_id}\t{store_id}\t{region_id}\t"
                  f"{franchisee}\t{channel}\t{stage_pool[rng.randrange(100)]}\t"
                  f"{{{','.join(map(str, tag_ids))}}}\t{'t' if rng.random() < 0.9 else 'f'}\t"
                  f"{added_pool[rng.randrange(len(added_pool))]}\t{touch}\t{member_id}\t{now}\t{now}\n")
        if i % 50_000 == 0:
            yield out.getvalue(), members
            out = io.StringIO()
    yield out.getvalue(), members


def _member_lines(rng, *, count: int, store_ids: list[int]):
    now = datetime.now().astimezone().isoformat()
    out = io.StringIO()
    for i in range(1, count + 1):
        spend = round(rng.lognormvariate(5.0, 1.2), 2)
        level = "钻石" if spend > 3000 else "金卡" if spend > 800 else "银卡" if spend > 200 else "普通"
        out.write(f"{i}\tMB{i:010d}\t\t\t\t\t{level}\t{int(spend)}\t{spend:.2f}\t{rng.randrange(1, 40)}\t\\N\t"
                  f"{store_ids[rng.randrange(len(store_ids))]}\t{rng.randrange(1, 6)}\t{rng.randrange(1, 6)}\t"
                  f"{rng.randrange(1, 6)}\t{now}\n")
        if i % 50_000 == 0:
            yield out.getvalue()
            out = io.StringIO()
    yield out.getvalue()


def _load(*, count: int, staff: list[tuple], tags: list[int], channels: list[int]) -> dict:
    """TRUNCATE + COPY FREEZE in one transaction (rows arrive frozen and all-visible, like a settled table),
    with the secondary indexes dropped and rebuilt afterwards; FK triggers off for the load only."""
    from django.db import connection, transaction

    rng = random.Random(20261124)
    timings = {}
    with connection.cursor() as cursor:
        saved = _secondary_indexes(cursor, "customers_customer") + _secondary_indexes(cursor, "customers_member")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(CUSTOMER_TABLES)} RESTART IDENTITY CASCADE")
        for name, _definition in saved:
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute("SET LOCAL session_replication_role = replica")  # data is valid by construction
        with timed() as copy_customers:
            members = 0
            with cursor.copy(f"COPY customers_customer ({CUSTOMER_COLUMNS}) FROM STDIN WITH (FREEZE)") as copy:
                for chunk, so_far in _customer_lines(rng, count=count, staff=staff, tags=tags, channels=channels):
                    copy.write(chunk)
                    members = so_far
        with timed() as copy_members:
            store_ids = sorted({s[1] for s in staff})
            with cursor.copy(f"COPY customers_member ({MEMBER_COLUMNS}) FROM STDIN WITH (FREEZE)") as copy:
                for chunk in _member_lines(rng, count=members, store_ids=store_ids):
                    copy.write(chunk)
        for table in ("customers_customer", "customers_member"):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with connection.cursor() as cursor, timed() as indexes:
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for _name, definition in saved:
            cursor.execute(definition)
        cursor.execute("RESET maintenance_work_mem")
    with connection.cursor() as cursor, timed() as analyze:
        cursor.execute("ANALYZE")  # the new customers and members, and the organisation built just before
    timings.update(copy_customers=copy_customers.seconds, copy_members=copy_members.seconds,
                   rebuild_indexes=indexes.seconds, analyze=analyze.seconds, members=members)
    return timings


def _loaded(count: int) -> bool:
    from customers.models import Customer

    last = Customer.objects.filter(pk=count).values_list("external_userid", flat=True).first()
    return last == f"wmSEGB{count:09d}" and not Customer.objects.filter(pk=count + 1).exists()


# -- the rule and its measurements -------------------------------------------------------------------
def _rule(tags: list[int]) -> dict:
    """Popular-ish tags (ranked by popularity), one of four areas, two stages, a spend floor."""
    from stores.models import Region

    east = Region.objects.get(code="EAST")
    return {"tags": {"any": [tags[3], tags[8], tags[15]], "all": [tags[1]], "none": [tags[5]]},
            "regions": [east.pk], "stages": ["interested", "lead"], "spend": {"min": "100"}}


def _median_seconds(fn, runs: int = 5) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(runs):
        with timed() as t:
            result = fn()
        samples.append(t.seconds)
    return statistics.median(samples), result


def _count_with(settings: dict[str, str], rule: dict, by) -> float:
    """The count under session settings (SET LOCAL inside a transaction; work_mem as the service sets it
    unless given), median of 3."""
    from django.db import connection, transaction

    from customers.services.segments import QUERY_WORK_MEM, segment_queryset

    settings = {"work_mem": f"'{QUERY_WORK_MEM}'", **settings}

    def run():
        with transaction.atomic(), connection.cursor() as cursor:
            for key, value in settings.items():
                cursor.execute(f"SET LOCAL {key} = {value}")
            return segment_queryset(rule=rule, by=by).order_by().count()

    return _median_seconds(run, runs=3)[0]


def _region_subquery_count(rule: dict, by) -> float:
    """Variant: the region tree walked inside the statement (a recursive subquery) instead of literal ids."""
    from django.db.models.expressions import RawSQL

    from customers.models import Customer
    from customers.services.segments import roomy_bitmaps, segment_rule_normalize, segment_rule_q
    from stores.scoping import REGION_DESCENDANTS_SQL

    clean = segment_rule_normalize(rule=rule)
    regions = clean.pop("regions")
    def run():
        with roomy_bitmaps():
            return Customer.objects.for_user(by).filter(
                segment_rule_q(rule=clean), region_id__in=RawSQL(REGION_DESCENDANTS_SQL, (regions,))).order_by().count()

    return _median_seconds(run, runs=3)[0]


def _explain(rule: dict, by) -> str:
    from django.db import connection

    from customers.services.segments import roomy_bitmaps, segment_queryset

    sql, params = segment_queryset(rule=rule, by=by).order_by().values("pk").query.sql_with_params()
    with roomy_bitmaps(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT count(*) FROM ({sql}) s",
                       params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _baseline(rule: dict, *, cap: int) -> tuple[float, int, int]:
    """Python over streamed rows: (seconds, rows read, matches) for the first ``cap`` customers."""
    from customers.models import Customer
    from customers.services.segments import segment_matches_count
    from stores.models import Region

    parents = dict(Region.objects.values_list("pk", "parent_id"))
    lineage = {}
    for region_id in parents:
        chain, node = [], region_id
        while node:
            chain.append(node)
            node = parents[node]
        lineage[region_id] = chain
    fields = ("tag_ids", "region_id", "store_id", "staff_id", "franchisee_id", "channel_id", "stage", "active",
              "first_added_at", "last_touch_at", "member_id", "member__level", "member__lifetime_spend",
              "member__rfm_r", "member__rfm_f", "member__rfm_m")
    read = 0

    def rows():
        nonlocal read
        for values in Customer.objects.filter(pk__lte=cap).order_by().values(*fields).iterator(chunk_size=20_000):
            read += 1
            values["region_lineage"] = lineage.get(values["region_id"], ())
            values["member"] = None if values["member_id"] is None else {
                "level": values["member__level"], "lifetime_spend": values["member__lifetime_spend"],
                "rfm_r": values["member__rfm_r"], "rfm_f": values["member__rfm_f"], "rfm_m": values["member__rfm_m"]}
            yield values

    with timed() as t:
        matches = segment_matches_count(rule, rows())
    return t.seconds, read, matches


def bench_segments(*, scale: int) -> str:
    from customers.models import Segment, SegmentSnapshotMember
    from customers.services.segments import segment_count, segment_materialize, segment_queryset
    from portal.models import User

    staff = _org_ensure(customers=scale)
    tags, channels = _tags_and_channels()
    reuse = os.environ.get("BENCH_SEGMENTS_REUSE") == "1" and _loaded(scale)
    with timed() as load:
        loaded = {} if reuse else _load(count=scale, staff=staff, tags=tags, channels=channels)
    hq = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench_admin", "", "x")
    region_manager = User.objects.get(username="region_east")
    rule = _rule(tags)
    segment = Segment.objects.create(name="bench", rule=rule, created_by=hq)

    count_s, count = _median_seconds(lambda: segment_count(segment=segment, by=hq))
    region_s, region_count = _median_seconds(lambda: segment_count(segment=segment, by=region_manager))
    with timed() as materialize:
        snapshot = segment_materialize(segment=segment, by=hq)
    assert snapshot.size == count == SegmentSnapshotMember.objects.filter(snapshot=snapshot).count()

    variants = {
        "plain_work_mem_4MB": _count_with({"work_mem": "'4MB'"}, rule, hq),
        "work_mem_16MB": _count_with({"work_mem": "'16MB'"}, rule, hq),
        "no_parallel": _count_with({"max_parallel_workers_per_gather": "0"}, rule, hq),
        "jit_off": _count_with({"jit": "off"}, rule, hq),
        "no_bitmapscan": _count_with({"enable_bitmapscan": "off"}, rule, hq),
        "region_subquery": _region_subquery_count(rule, hq),
    }
    cap = min(scale, BASELINE_CAP)
    python_s, read, python_matches = _baseline(rule, cap=cap)
    sql_matches = segment_queryset(rule=rule, by=hq).filter(pk__lte=cap).count()
    assert python_matches == sql_matches, ("Python and SQL disagree", python_matches, sql_matches)
    baseline = python_s * scale / read
    print(_explain(rule, hq))
    load_text = "reused" if reuse else " ".join(
        f"{k}={v:.1f}s" if isinstance(v, float) else f"{k}={v}" for k, v in loaded.items())
    print(f"customers={scale} members={loaded.get('members', '?')} tags={len(tags)} load: {load_text} "
          f"(total {load.seconds:.1f}s)")
    print(f"rule matches={count} count_median5={count_s * 1000:.0f}ms region_manager_count={region_count} "
          f"in {region_s * 1000:.0f}ms materialize={materialize.seconds:.2f}s")
    print("count variants (median of 3): " + " ".join(f"{k}={v * 1000:.0f}ms" for k, v in variants.items()))
    print(f"baseline: Python over {read} streamed rows {python_s:.1f}s ({read / python_s:,.0f} rows/s), "
          f"matches={python_matches} (= SQL on the same rows)"
          + (f"; extrapolated to {scale} rows: {baseline:.1f}s" if read < scale else ""))
    return result_line(bench="segments", value=count_s, unit="s", baseline=baseline)
