"""Segments over millions of customers: count and materialize one rule, against Python evaluation.

    python -m bench segments --scale 10000000   # customers (small: 200,000)
    BENCH_REUSE=1 python -m bench segments --scale …   # keep the loaded customers if they are exactly this scale
                                                       # (BENCH_SEGMENTS_REUSE=1 works too)

The customers come from the scale generator (bench/scale.py: COPY, realistic tag arrays — a few tags
each from 300 with skewed popularity —, stores over 4 areas, stages, ~45 % members with spend and
RFM, their relationships), then for the rule "three tag conditions (any/all/none) + a region + a
stage + a spend bound" it times:
  - segment_count (HQ viewer): median of 5 runs; also a region manager's scoped count;
  - segment_materialize: one INSERT … SELECT (median of 3 snapshots);
  - variants of the same count so the design choice is measured in the same run: the previous design
    (the covering index customer_segment_cover dropped inside a rolled-back transaction: bitmaps from the
    tag GIN, stage and region indexes, with 64 MB / 4 MB work_mem), no parallel workers (what a
    snapshot's INSERT … SELECT gets) with random_page_cost 1.1 / 4, JIT off, the region as a
    tree-walking subquery, the rule without its spend bound (the most that copying the member's spend
    onto the customer row could save), and after 1 % of the customers changed since the last VACUUM
    (their pages lose the visibility-map bit an index-only scan relies on; an UPDATE rolled back, then
    with ANALYZE as autovacuum would run it, then VACUUM restores the table) — BENCH_SEGMENTS_CHURN=0
    skips that one (it rewrites 1 % of the rows: ~1 min at 10 M);
  - baseline: the same rule evaluated in Python (segment_matches) over rows streamed from the database
    (iterator with chunking) — over at most BASELINE_CAP rows, extrapolated linearly to the whole table.
"""

from __future__ import annotations

import os
import statistics

from bench.harness import result_line, timed
from bench.scale import reuse_wanted, scale_ensure

BASELINE_CAP = 1_000_000


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


def _count_with(settings: dict[str, str], rule: dict, viewer, *, drop: tuple[str, ...] = ()) -> float:
    """The count under other settings (the service's unless overridden) and with indexes dropped, inside a
    transaction that is rolled back (so a dropped index comes back); median of 3."""
    from django.db import connection, transaction

    from customers.segments.selectors import STATEMENT_SETTINGS, segment_queryset

    settings = {**STATEMENT_SETTINGS, **settings}

    def run():
        with transaction.atomic(), connection.cursor() as cursor:
            for name in drop:
                cursor.execute(f'DROP INDEX "{name}"')
            for key, value in settings.items():
                cursor.execute("SELECT set_config(%s, %s, true)", [key, value])
            count = segment_queryset(rule=rule, viewer=viewer).order_by().count()
            transaction.set_rollback(True)
            return count

    return _median_seconds(run, runs=3)[0]


def _region_subquery_count(rule: dict, by) -> float:
    """Variant: the region tree walked inside the statement (a recursive subquery) instead of literal ids."""
    from django.db.models.expressions import RawSQL

    from customers.models import Customer
    from customers.segments.rules import segment_rule_normalize, segment_rule_q
    from customers.segments.selectors import segment_statement
    from stores.access.scoping import REGION_DESCENDANTS_SQL

    clean = segment_rule_normalize(rule=rule)
    regions = clean.pop("regions")

    def run():
        with segment_statement():
            return Customer.objects.for_user(by).filter(
                segment_rule_q(rule=clean), region_id__in=RawSQL(REGION_DESCENDANTS_SQL, (regions,))).order_by().count()

    return _median_seconds(run, runs=3)[0]


def _churned_counts(rule: dict, viewer, *, share: float = 0.01) -> dict[str, float]:
    """Variants: the count after ``share`` of the customers changed since the last VACUUM, spread evenly
    (1 - (1 - share)^rows_per_page of the pages lose their all-visible bit: at 1 % and ~30 rows a page,
    ~25 %). First with the statistics of the settled table, then after ANALYZE (pg_class.relallvisible
    refreshed, as autovacuum's analyze does after 0.5 % — migration 0005). The UPDATE is rolled back —
    the bits stay cleared all the same — and VACUUM then gives the table back as it was for the next run."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET updated_at = updated_at WHERE id %% %s = 7",
                       [round(1 / share)])
        transaction.set_rollback(True)
    stale = _count_with({}, rule, viewer)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE customers_customer")
    analyzed = _count_with({}, rule, viewer)
    with connection.cursor() as cursor:
        # INDEX_CLEANUP ON: no "few dead items" bypass, so every page is all-visible again for the next run
        cursor.execute("VACUUM (ANALYZE, INDEX_CLEANUP ON) customers_customer")
    label = f"{share * 100:g}pct"
    return {f"after_churn_{label}": stale, f"after_churn_{label}_analyzed": analyzed}


def _explain(rule: dict, viewer) -> str:
    from django.db import connection

    from customers.segments.selectors import segment_queryset, segment_statement

    sql, params = segment_queryset(rule=rule, viewer=viewer).order_by().values("pk").query.sql_with_params()
    with segment_statement(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON) SELECT count(*) FROM ({sql}) s",
                       params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _sizes() -> str:
    """What the design costs on disk: the table, the covering index, the tag GIN."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT string_agg(format('%s=%s', relname, pg_size_pretty(pg_relation_size(oid))), ' ' ORDER BY relname)
            FROM pg_class WHERE relname IN ('customers_customer', 'customer_segment_cover', 'customer_tag_ids')
        """)
        return cursor.fetchone()[0]


def _baseline(rule: dict, *, cap: int) -> tuple[float, int, int]:
    """Python over streamed rows: (seconds, rows read, matches) for the first ``cap`` customers."""
    from customers.models import Customer
    from customers.segments.rules import segment_matches_count
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
    from customers.segments.selectors import segment_count, segment_queryset
    from customers.segments.services import segment_materialize
    from portal.models import User

    with timed() as load:
        data = scale_ensure(customers=scale, reuse=reuse_wanted() or os.environ.get("BENCH_SEGMENTS_REUSE") == "1")
    tags = data.tags
    hq = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench_admin", "", "x")
    region_manager = User.objects.get(username="region_east")
    rule = _rule(tags)
    segment = Segment.objects.create(name="bench", rule=rule, created_by=hq)

    count_s, count = _median_seconds(lambda: segment_count(segment=segment, viewer=hq))
    region_s, region_count = _median_seconds(lambda: segment_count(segment=segment, viewer=region_manager))
    materialize_s, snapshot = _median_seconds(lambda: segment_materialize(segment=segment, by=hq), runs=3)
    assert snapshot.size == count == SegmentSnapshotMember.objects.filter(snapshot=snapshot).count()

    cover = ("customer_segment_cover",)
    no_spend = {key: value for key, value in rule.items() if key != "spend"}
    variants = {
        "previous_bitmap_plan": _count_with({}, rule, hq, drop=cover),
        "previous_bitmap_work_mem_4MB": _count_with({"work_mem": "4MB"}, rule, hq, drop=cover),
        "no_parallel": _count_with({"max_parallel_workers_per_gather": "0"}, rule, hq),
        "no_parallel_random_page_cost_4": _count_with({"max_parallel_workers_per_gather": "0",
                                                       "random_page_cost": "4"}, rule, hq),
        "jit_off": _count_with({"jit": "off"}, rule, hq),
        "region_subquery": _region_subquery_count(rule, hq),
        "without_spend_bound": _count_with({}, no_spend, hq),
    }
    if os.environ.get("BENCH_SEGMENTS_CHURN", "1") != "0":
        variants.update(_churned_counts(rule, hq))
    cap = min(scale, BASELINE_CAP)
    python_s, read, python_matches = _baseline(rule, cap=cap)
    sql_matches = segment_queryset(rule=rule, viewer=hq).filter(pk__lte=cap).count()
    assert python_matches == sql_matches, ("Python and SQL disagree", python_matches, sql_matches)
    baseline = python_s * scale / read
    print(_explain(rule, hq))
    load_text = "reused" if data.reused else data.timings_text()
    print(f"customers={scale} relationships={data.relationships} members={data.members} tags={len(tags)} "
          f"load: {load_text} (total {load.seconds:.1f}s)")
    print(f"rule matches={count} count_median5={count_s * 1000:.0f}ms region_manager_count={region_count} "
          f"in {region_s * 1000:.0f}ms materialize_median3={materialize_s:.2f}s")
    print("count variants (median of 3): " + " ".join(f"{k}={v * 1000:.0f}ms" for k, v in variants.items()))
    print(f"sizes: {_sizes()}")
    print(f"baseline: Python over {read} streamed rows {python_s:.1f}s ({read / python_s:,.0f} rows/s), "
          f"matches={python_matches} (= SQL on the same rows)"
          + (f"; extrapolated to {scale} rows: {baseline:.1f}s" if read < scale else ""))
    return result_line(bench="segments", value=count_s, unit="s", baseline=baseline)
