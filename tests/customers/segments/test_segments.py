"""Segments: each condition of the rule language selects exactly the customers it says, in one query
on customers_customer, always within the viewer's scope; bad rules get clear Chinese errors;
snapshots freeze the rows of the moment."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Segment, SegmentSnapshot, SegmentSnapshotMember
from customers.segments import services as segments_service
from customers.segments.rules import SegmentRuleError, segment_rule_validate
from customers.segments.selectors import (
    segment_count,
    segment_describe,
    segment_queryset,
    segment_sample,
    segment_statement,
)
from customers.segments.services import (
    segment_materialize,
    segment_snapshot_fill,
    segment_snapshot_take,
    segments_recount,
)
from customers.segments.tasks import segment_snapshot_fill_task
from stores.access.scoping import user_scope
from tests.customers.segments.helpers import at, customer, member, segment, tags
from tests.factories import ChannelFactory, StaffFactory


@pytest.fixture
def world(org):
    vip, mom, black = tags("VIP", "宝妈", "黑名单")
    poster = ChannelFactory(code="PST", name="门店海报")
    guide_a2 = StaffFactory(userid="a2-guide", name="赵导购", store=org.store_a2)
    guide_c = StaffFactory(userid="c-guide", name="钱导购", store=org.store_c)
    return SimpleNamespace(
        vip=vip, mom=mom, black=black, poster=poster,
        alice=customer(org.guide_a, name="Alice", tags=[vip, mom], stage="interested", channel=poster,
                       first_added_at=at(2026, 1, 10, 23, 30), last_touch_at=at(2026, 3, 1),
                       member=member(level="金卡", spend="1200.00", r=5, f=4, m=5)),
        bob=customer(guide_a2, name="Bob", tags=[vip], stage="fan", first_added_at=at(2025, 12, 1)),
        carol=customer(org.guide_b, name="Carol", tags=[mom, black], stage="customer", active=False,
                       first_added_at=at(2026, 2, 15), last_touch_at=at(2026, 2, 20),
                       member=member(level="银卡", spend="80.50", r=2, f=1, m=1)),
        dan=customer(guide_c, name="Dan", stage="lead", last_touch_at=timezone.now() - timedelta(days=3),
                     member=member(level="金卡", spend="300", f=3, m=3)),
    )


def names(rule: dict, viewer) -> set[str]:
    return set(segment_queryset(rule=rule, viewer=viewer).values_list("name", flat=True))


# -- each condition ----------------------------------------------------------------------------------

def test_tags_any_all_and_none(world, hq_operator):
    assert names({"tags": {"any": [world.vip.pk, world.black.pk]}}, hq_operator) == {"Alice", "Bob", "Carol"}
    assert names({"tags": {"all": [world.vip.pk, world.mom.pk]}}, hq_operator) == {"Alice"}
    assert names({"tags": {"none": [world.mom.pk]}}, hq_operator) == {"Bob", "Dan"}
    assert names({"tags": {"any": [world.mom.pk], "none": [world.black.pk]}}, hq_operator) == {"Alice"}


def test_a_region_includes_its_sub_regions(world, hq_operator, org):
    assert names({"regions": [org.east.pk]}, hq_operator) == {"Alice", "Bob"}
    assert names({"regions": [org.east_sh.pk]}, hq_operator) == {"Alice"}
    assert names({"regions": [org.east_hz.pk, org.south.pk]}, hq_operator) == {"Bob", "Carol", "Dan"}


def test_franchisee_store_staff_and_channel(world, hq_operator, org):
    assert names({"franchisees": [org.franchisee_one.pk]}, hq_operator) == {"Alice", "Bob"}
    assert names({"stores": [org.store_b.pk, org.store_c.pk]}, hq_operator) == {"Carol", "Dan"}
    assert names({"staff": [org.guide_a.pk]}, hq_operator) == {"Alice"}
    assert names({"channels": [world.poster.pk]}, hq_operator) == {"Alice"}
    # organisation conditions are ANDed with each other
    assert names({"regions": [org.south.pk], "franchisees": [org.franchisee_one.pk]}, hq_operator) == set()


def test_stages_and_friendship(world, hq_operator):
    assert names({"stages": ["fan", "lead"]}, hq_operator) == {"Bob", "Dan"}
    assert names({"active": False}, hq_operator) == {"Carol"}
    assert names({"active": True}, hq_operator) == {"Alice", "Bob", "Dan"}


def test_first_added_days_are_shanghai_days_and_inclusive(world, hq_operator):
    # Alice was added at 23:30 on 10 January in Shanghai (15:30 UTC): she belongs to the 10th.
    assert names({"first_added": {"from": "2026-01-10", "to": "2026-01-10"}}, hq_operator) == {"Alice"}
    assert names({"first_added": {"from": "2026-01-11"}}, hq_operator) == {"Carol"}
    # Dan has no first-add date: any bound leaves him out
    assert names({"first_added": {"to": "2026-12-31"}}, hq_operator) == {"Alice", "Bob", "Carol"}


def test_last_touch_before_includes_the_never_touched_and_after_does_not(world, hq_operator):
    assert names({"last_touch": {"before": "2026-02-21"}}, hq_operator) == {"Bob", "Carol"}
    assert names({"last_touch": {"after": "2026-02-21"}}, hq_operator) == {"Alice", "Dan"}
    assert names({"last_touch": {"after": "2026-02-20", "before": "2026-03-01"}}, hq_operator) == {"Carol"}


def test_relative_days_count_back_from_today(world, hq_operator):
    # "not touched in the last 7 days" and "touched in the last 7 days"
    assert names({"last_touch": {"before": 7}}, hq_operator) == {"Alice", "Bob", "Carol"}
    assert names({"last_touch": {"after": 7}}, hq_operator) == {"Dan"}


def test_member_level_spend_and_rfm_match_members_only(world, hq_operator):
    assert names({"member": True}, hq_operator) == {"Alice", "Carol", "Dan"}
    assert names({"member": False}, hq_operator) == {"Bob"}
    assert names({"member_levels": ["金卡"]}, hq_operator) == {"Alice", "Dan"}
    assert names({"spend": {"min": "80.50", "max": "300"}}, hq_operator) == {"Carol", "Dan"}
    assert names({"spend": {"max": 100}}, hq_operator) == {"Carol"}  # Bob has no member record
    assert names({"rfm": {"r": {"min": 2}}}, hq_operator) == {"Alice", "Carol"}  # Dan has no R score yet
    assert names({"rfm": {"f": {"min": 3}, "m": {"max": 3}}}, hq_operator) == {"Dan"}


def test_the_rule_is_one_query_on_customers_using_the_tag_array(world, hq_operator, org):
    rule = {"tags": {"any": [world.vip.pk], "all": [world.mom.pk], "none": [world.black.pk]},
            "regions": [org.east.pk], "stages": ["interested"], "spend": {"min": "100"},
            "member_levels": ["金卡"], "rfm": {"r": {"min": 1}}}
    user_scope(hq_operator)  # the viewer's scope is read once per request, before
    with CaptureQueriesContext(connection) as queries:
        assert segment_queryset(rule=rule, viewer=hq_operator).count() == 1
    on_customers = [q["sql"] for q in queries if "customers_customer" in q["sql"]]
    assert len(queries) == 2 and len(on_customers) == 1  # the other one reads the region tree
    sql = on_customers[0]
    assert "&&" in sql and "@>" in sql and "NOT (" in sql
    assert "customers_relationship" not in sql
    assert sql.count("JOIN") == 1 and 'JOIN "customers_member"' in sql
    east = sorted([org.east.pk, org.east_sh.pk, org.east_hz.pk])
    assert f'"customers_customer"."region_id" IN ({", ".join(map(str, east))})' in sql


COVER_COLUMNS_SQL = """
SELECT array_agg(a.attname::text ORDER BY k.n)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE c.relname = 'customer_segment_cover'
"""


@pytest.mark.parametrize("viewer", ["hq_operator", "region_manager_east", "franchisee_owner", "store_manager_of_a"])
def test_a_stage_and_region_rule_reads_only_columns_of_the_covering_index(world, org, viewer, request):
    # The 10 M-customer goal (bench/segments.py) rests on this: everything the compiled rule reads on
    # customers — tags, stage, region, activity, the member link, a store-scoped viewer's stores, the id a
    # snapshot stores — is in customer_segment_cover, so PostgreSQL can answer from the index alone.
    by = request.getfixturevalue(viewer)
    rule = {"tags": {"any": [world.vip.pk], "all": [world.mom.pk], "none": [world.black.pk]},
            "regions": [org.east.pk], "stages": ["interested", "lead"], "active": True, "spend": {"min": "100"}}
    sql, _params = segment_queryset(rule=rule, viewer=by).order_by().values("pk").query.sql_with_params()
    read = set(re.findall(r'"customers_customer"\."(\w+)"', sql))
    with connection.cursor() as cursor:
        cursor.execute(COVER_COLUMNS_SQL)
        columns = cursor.fetchone()[0]
    assert columns[:2] == ["stage", "region_id"]  # the key: the rule's stages × regions are ranges of it
    assert {"tag_ids", "stage", "region_id", "active", "member_id", "id"} <= read
    assert read <= set(columns), read - set(columns)


def test_the_statement_settings_hold_for_the_segment_statement_only(world, hq_operator):
    def current():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('work_mem'), current_setting('random_page_cost')")
            return cursor.fetchone()

    before = current()
    assert before != ("64MB", "1.1")
    with transaction.atomic():  # even inside a caller's transaction (local settings outlive savepoints)
        with segment_statement():
            assert current() == ("64MB", "1.1")
        assert current() == before
        with pytest.raises(RuntimeError), segment_statement():
            raise RuntimeError("a failed count")
        assert current() == before


# -- validation --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "message"), [
    ({}, "规则为空"),
    ({"stages": []}, "阶段条件为空"),
    ({"tags": {"any": []}}, "标签含任一条件为空"),
    ({"tags": {}}, "标签条件为空"),
    ({"stages": ["vip"]}, "未知的阶段：vip"),
    ({"colour": "red"}, "未知的条件：colour"),
    ({"first_added": {"from": "2026-03-01", "to": "2026-02-01"}}, "首次添加的日期范围颠倒"),
    ({"first_added": {"from": "2026-02-30"}}, "首次添加的日期无效"),
    ({"last_touch": {"after": 5, "before": 10}}, "最近触达的范围颠倒"),
    ({"spend": {"min": "500", "max": "100"}}, "累计消费的范围颠倒"),
    ({"spend": {"min": "-1"}}, "累计消费金额无效"),
    ({"rfm": {"r": {"min": 4, "max": 2}}}, "RFM 的 R 分值范围颠倒"),
    ({"member": False, "member_levels": ["金卡"]}, "条件矛盾"),
    ({"stores": ["A001"]}, "门店条件只能包含正整数编号"),
    ({"active": "yes"}, "好友状态条件应为“是”或“否”"),
])
def test_a_bad_rule_is_refused_with_a_clear_chinese_error(rule, message, db):
    with pytest.raises(SegmentRuleError) as error:
        segment_rule_validate(rule=rule)
    assert message in str(error.value)


def test_unknown_and_deleted_tags_and_missing_stores_are_named(world, org):
    world.black.deleted = True
    world.black.save()
    with pytest.raises(SegmentRuleError) as error:
        segment_rule_validate(rule={"tags": {"any": [world.vip.pk, 999999], "none": [world.black.pk]},
                                    "stores": [org.store_a.pk, 888888]})
    assert error.value.messages == [f"标签不存在或已删除：#{world.black.pk}、#999999", "门店不存在：#888888"]


def test_a_tag_both_wanted_and_excluded_is_a_contradiction(world):
    with pytest.raises(SegmentRuleError, match="同一标签不能既要求含有又要求不含"):
        segment_rule_validate(rule={"tags": {"any": [world.vip.pk], "none": [world.vip.pk]}})


def test_a_valid_rule_comes_back_normalised(world, org):
    clean = segment_rule_validate(rule={"stores": [org.store_b.pk, org.store_a.pk, org.store_a.pk],
                                        "spend": {"min": 100}, "stages": ["lead", "fan"]})
    assert clean == {"stores": sorted([org.store_a.pk, org.store_b.pk]), "spend": {"min": "100.00"},
                     "stages": ["fan", "lead"]}


# -- the description ---------------------------------------------------------------------------------

def test_the_description_reads_like_the_sql(world, org, hq_operator):
    rule = {"tags": {"any": [world.vip.pk, world.mom.pk], "none": [world.black.pk]}, "regions": [org.east.pk],
            "stages": ["interested"], "last_touch": {"before": 30}, "spend": {"min": "100"}}
    assert segment_describe(rule=rule, viewer=hq_operator) == (
        "标签含任一：VIP、宝妈；且标签不含：黑名单；且区域：华东大区（含下级）；且阶段：意向；"
        "且最近触达：早于 30 天前 或从未触达；且累计消费：≥ 100.00 元")


def test_the_description_of_a_broken_rule_says_so(hq_operator):
    assert segment_describe(rule={"stages": []}, viewer=hq_operator).startswith("规则无效：")


# -- scope -------------------------------------------------------------------------------------------

def test_each_viewer_counts_only_their_own_scope(world, hq_operator, region_manager_east, franchisee_owner,
                                                  store_manager_of_a, staff_of_a):
    everyone = segment({"tags": {"any": [world.vip.pk, world.mom.pk]}})
    assert segment_count(segment=everyone, viewer=hq_operator) == 3
    assert segment_count(segment=everyone, viewer=region_manager_east) == 2  # Alice, Bob
    assert segment_count(segment=everyone, viewer=franchisee_owner) == 2
    assert segment_count(segment=everyone, viewer=store_manager_of_a) == 1  # Alice
    assert segment_count(segment=everyone, viewer=staff_of_a) == 1  # Alice is guide_a's own customer


def test_only_a_brand_wide_count_is_stored_on_the_segment(world, hq_operator, region_manager_east):
    seg = segment({"tags": {"any": [world.vip.pk]}})
    segment_count(segment=seg, viewer=region_manager_east)
    seg.refresh_from_db()
    assert seg.last_count is None
    segment_count(segment=seg, viewer=hq_operator)
    seg.refresh_from_db()
    assert seg.last_count == 2 and seg.last_counted_at is not None


def test_the_sample_is_small_and_scoped(world, region_manager_east, org):
    for _ in range(25):
        customer(org.guide_b, tags=[world.vip])
    seg = segment({"tags": {"any": [world.vip.pk]}})
    assert {c.name for c in segment_sample(segment=seg, viewer=region_manager_east)} == {"Alice", "Bob"}
    assert len(segment_sample(segment=seg, viewer=region_manager_east, n=1)) == 1
    assert len(segment_sample(rule=seg.rule, viewer=region_manager_east, n=20)) == 2


def test_the_nightly_recount_refreshes_every_valid_segment(world):
    good = segment({"tags": {"any": [world.mom.pk]}})
    broken = segment({"stages": []})
    assert segments_recount() == 1
    good.refresh_from_db()
    broken.refresh_from_db()
    assert good.last_count == 2 and broken.last_count is None


# -- snapshots ---------------------------------------------------------------------------------------

def members_of(snapshot) -> set[int]:
    return set(SegmentSnapshotMember.objects.filter(snapshot=snapshot).values_list("customer_id", flat=True))


def test_materialize_freezes_exactly_the_matching_customers(world, hq_operator):
    seg = segment({"tags": {"any": [world.mom.pk]}, "stages": ["interested", "customer"]})
    with CaptureQueriesContext(connection) as queries:
        snapshot = segment_materialize(segment=seg, by=hq_operator)
    inserts = [q["sql"] for q in queries if "INSERT INTO customers_segmentsnapshotmember" in q["sql"]]
    assert len(inserts) == 1 and "SELECT" in inserts[0]
    assert members_of(snapshot) == {world.alice.pk, world.carol.pk}
    assert (snapshot.size, snapshot.status, snapshot.rule) == (2, SegmentSnapshot.Status.DONE, seg.rule)
    assert snapshot.created_by == hq_operator and snapshot.finished_at is not None


def test_a_snapshot_does_not_change_when_customers_or_the_segment_do(world, hq_operator, org):
    seg = segment({"tags": {"any": [world.mom.pk]}})
    snapshot = segment_materialize(segment=seg, by=hq_operator)
    world.alice.tag_ids = []
    world.alice.save()
    customer(org.guide_a, tags=[world.mom])
    seg.rule = {"stages": ["fan"]}
    seg.save()
    snapshot.refresh_from_db()
    assert members_of(snapshot) == {world.alice.pk, world.carol.pk}
    assert snapshot.size == 2 and snapshot.rule == {"tags": {"any": [world.mom.pk]}}
    # filling it again (a task delivered twice) changes nothing either
    assert segment_snapshot_fill(snapshot_id=snapshot.pk).size == 2
    assert members_of(snapshot) == {world.alice.pk, world.carol.pk}


def test_a_region_managers_snapshot_holds_only_their_region(world, region_manager_east):
    seg = segment({"tags": {"any": [world.vip.pk, world.mom.pk]}})
    snapshot = segment_materialize(segment=seg, by=region_manager_east)
    assert members_of(snapshot) == {world.alice.pk, world.bob.pk}


def test_a_big_segment_is_materialized_by_a_task_after_commit(world, hq_operator, monkeypatch,
                                                               django_capture_on_commit_callbacks):
    monkeypatch.setattr(segments_service, "SNAPSHOT_SYNC_MAX", 1)
    seg = segment({"tags": {"any": [world.vip.pk, world.mom.pk]}})
    sent = []
    monkeypatch.setattr(segment_snapshot_fill_task, "apply_async", lambda kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        snapshot = segment_snapshot_take(segment=seg, by=hq_operator)
    assert snapshot.status == SegmentSnapshot.Status.QUEUED and members_of(snapshot) == set()
    assert sent == [{"snapshot_id": snapshot.pk}]
    assert segment_snapshot_fill_task(snapshot_id=snapshot.pk) == 3
    assert segment_snapshot_fill_task(snapshot_id=snapshot.pk) == 3  # idempotent
    snapshot.refresh_from_db()
    assert snapshot.status == SegmentSnapshot.Status.DONE and len(members_of(snapshot)) == 3


def test_a_small_segment_is_materialized_at_once(world, hq_operator):
    snapshot = segment_snapshot_take(segment=segment({"stages": ["lead"]}), by=hq_operator)
    assert snapshot.status == SegmentSnapshot.Status.DONE and members_of(snapshot) == {world.dan.pk}


def test_a_snapshot_whose_author_is_gone_fails_visibly(world, hq_operator, monkeypatch):
    monkeypatch.setattr(segments_service, "SNAPSHOT_SYNC_MAX", 0)
    snapshot = segment_snapshot_take(segment=segment({"stages": ["lead"]}), by=hq_operator)
    SegmentSnapshot.objects.filter(pk=snapshot.pk).update(created_by=None)
    with pytest.raises(SegmentRuleError):
        segment_snapshot_fill(snapshot_id=snapshot.pk)
    snapshot.refresh_from_db()
    assert snapshot.status == SegmentSnapshot.Status.FAILED and "创建人已不存在" in snapshot.error
    assert members_of(snapshot) == set()


def test_a_broken_rule_makes_no_snapshot(world, hq_operator):
    seg = segment({"stages": []})
    with pytest.raises(SegmentRuleError):
        segment_materialize(segment=seg, by=hq_operator)
    assert not SegmentSnapshot.objects.exists()
    assert Segment.objects.get(pk=seg.pk).rule == {"stages": []}  # nothing lost either
