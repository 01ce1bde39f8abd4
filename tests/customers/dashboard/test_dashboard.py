"""The add-fan dashboard's figures: the daily build, today live, cumulative, rates, grouping and scope."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from customers.dashboard.selectors import (
    AcquisitionFilters,
    DashboardError,
    acquisition_figures,
    acquisition_leaderboards,
    acquisition_today,
)
from customers.dashboard.services import acquisition_daily_build
from customers.models import AcquisitionDaily, Relationship
from stores.models import Staff
from tests.customers.dashboard.helpers import at, follow
from tests.factories import ChannelFactory, StaffFactory

DAY = date(2026, 3, 1)
NEXT = DAY + timedelta(days=1)
BY_CUSTOMER = Relationship.Status.DELETED_BY_CUSTOMER
BY_STAFF = Relationship.Status.DELETED_BY_STAFF


def figures_of(day, **filters):
    return {(r.staff_id, r.channel_id): (r.adds, r.deleted_by_customer, r.deleted_by_staff)
            for r in AcquisitionDaily.objects.filter(day=day, **filters)}


def by_key(figures):
    return {row.key: row for row in figures.rows}


# -- the daily build ---------------------------------------------------------------------------------

def test_a_relationship_counts_on_its_shanghai_day_not_its_utc_day(org):
    follow(org.guide_a, at(DAY, 23, 59))  # 15:59 UTC, same day either way
    follow(org.guide_a, at(NEXT, 0, 1))  # 16:01 UTC on DAY: a UTC build would count it on DAY
    follow(org.guide_a, at(DAY, 0, 0))  # the first instant of DAY belongs to DAY

    acquisition_daily_build(day=DAY)
    acquisition_daily_build(day=NEXT)

    assert figures_of(DAY) == {(org.guide_a.pk, None): (2, 0, 0)}
    assert figures_of(NEXT) == {(org.guide_a.pk, None): (1, 0, 0)}


def test_a_deletion_counts_on_the_day_it_happened_with_its_kind(org):
    follow(org.guide_a, at(DAY - timedelta(days=5)), ended_at=at(DAY, 9), status=BY_CUSTOMER)
    follow(org.guide_a, at(DAY - timedelta(days=5)), ended_at=at(DAY, 23, 59), status=BY_STAFF)
    follow(org.guide_a, at(DAY - timedelta(days=5)), ended_at=at(NEXT, 0, 1), status=BY_STAFF)
    follow(org.guide_a, at(DAY - timedelta(days=5)), ended_at=at(DAY, 10),
           status=Relationship.Status.TRANSFERRED)  # a transfer is not a deletion

    acquisition_daily_build(day=DAY)

    assert figures_of(DAY) == {(org.guide_a.pk, None): (0, 1, 1)}


def test_added_and_deleted_the_same_day_counts_in_both(org):
    follow(org.guide_a, at(DAY, 10), ended_at=at(DAY, 10, 30), status=BY_CUSTOMER)

    acquisition_daily_build(day=DAY)

    assert figures_of(DAY) == {(org.guide_a.pk, None): (1, 1, 0)}


def test_rows_are_per_staff_and_channel_with_the_staff_members_store(org):
    poster = ChannelFactory(code="POSTER")
    follow(org.guide_a, at(DAY), channel=poster)
    follow(org.guide_a, at(DAY), channel=poster)
    follow(org.guide_a, at(DAY))
    follow(org.guide_b, at(DAY, 8))

    acquisition_daily_build(day=DAY)

    assert figures_of(DAY) == {(org.guide_a.pk, poster.pk): (2, 0, 0), (org.guide_a.pk, None): (1, 0, 0),
                               (org.guide_b.pk, None): (1, 0, 0)}
    row = AcquisitionDaily.objects.get(day=DAY, staff=org.guide_b)
    assert (row.store, row.region, row.franchisee) == (org.store_b, org.south_gz, org.franchisee_two)


def test_rebuilding_a_day_is_idempotent(org):
    follow(org.guide_a, at(DAY), channel=ChannelFactory(code="TABLE"))
    follow(org.guide_a, at(DAY))  # a NULL channel must conflict with itself, not duplicate
    follow(org.guide_b, at(DAY), ended_at=at(DAY, 18))

    assert acquisition_daily_build(day=DAY) == 3
    first = figures_of(DAY)
    assert acquisition_daily_build(day=DAY) == 0  # nothing rewritten
    assert figures_of(DAY) == first
    assert AcquisitionDaily.objects.count() == 3


def test_a_rebuild_replaces_the_days_figures_including_rows_that_became_zero(org):
    gone = follow(org.guide_b, at(DAY))
    kept = follow(org.guide_a, at(DAY))
    acquisition_daily_build(day=DAY)

    gone.delete()  # e.g. the nightly reconciliation found it was never there
    Relationship.objects.filter(pk=kept.pk).update(status=BY_STAFF, ended_at=at(DAY, 20))
    acquisition_daily_build(day=DAY)

    assert figures_of(DAY) == {(org.guide_a.pk, None): (1, 0, 1), (org.guide_b.pk, None): (0, 0, 0)}


def test_a_rebuild_takes_the_store_of_the_staff_member_at_build_time(org):
    follow(org.guide_a, at(DAY))
    acquisition_daily_build(day=DAY)
    Staff.objects.filter(pk=org.guide_a.pk).update(store=org.store_b)

    acquisition_daily_build(day=DAY)

    row = AcquisitionDaily.objects.get(day=DAY, staff=org.guide_a)
    assert (row.store, row.region, row.franchisee) == (org.store_b, org.south_gz, org.franchisee_two)


def test_the_backfill_command_builds_a_range_and_can_run_again(org):
    for offset in range(3):
        follow(org.guide_a, at(DAY + timedelta(days=offset)))

    call_command("build_acquisition_stats", "--from", "2026-03-01", "--to", "2026-03-03")
    call_command("build_acquisition_stats", "--from", "2026-03-01", "--to", "2026-03-03")

    assert sorted(AcquisitionDaily.objects.values_list("day", "adds")) == [
        (DAY, 1), (DAY + timedelta(days=1), 1), (DAY + timedelta(days=2), 1)]


@pytest.mark.parametrize("args, message", [
    (["--from", "2026-03-05", "--to", "2026-03-01"], "开始日期不能晚于结束日期"),
    (["--from", "2026-02-30", "--to", "2026-03-01"], "not a date"),
])
def test_the_backfill_command_refuses_a_bad_range_clearly_and_writes_nothing(org, args, message):
    follow(org.guide_a, at(DAY))
    with pytest.raises(CommandError, match=message):
        call_command("build_acquisition_stats", *args)
    assert not AcquisitionDaily.objects.exists()


def test_beat_builds_yesterday_after_midnight_and_refreshes_today(org):
    from customers.dashboard.tasks import acquisition_today_build_task, acquisition_yesterday_build_task
    from portal.schedules import schedules_declared

    today = timezone.localdate()
    follow(org.guide_a, at(today - timedelta(days=1)))
    follow(org.guide_a, timezone.now())

    acquisition_yesterday_build_task()
    acquisition_today_build_task()

    assert dict(AcquisitionDaily.objects.values_list("day", "adds")) == {today - timedelta(days=1): 1, today: 1}
    declared = {s.name: s for s in schedules_declared()}
    assert declared["customers.acquisition_yesterday"].crontab == "5 0 * * *"
    assert declared["customers.acquisition_today"].every_seconds == 600
    from portal.celery import app

    assert {declared[name].task for name in ("customers.acquisition_yesterday", "customers.acquisition_today")} \
        <= set(app.tasks)


# -- the figures -------------------------------------------------------------------------------------

def test_todays_figures_are_live_without_the_beat_job(org, hq_operator):
    today = timezone.localdate()
    follow(org.guide_a, timezone.now())
    follow(org.guide_a, timezone.now(), ended_at=timezone.now(), status=BY_STAFF)

    figures = acquisition_figures(viewer=hq_operator, date_from=today, date_to=today, group_by="store")

    assert not AcquisitionDaily.objects.exists()
    row = by_key(figures)[org.store_a.pk]
    assert (row.adds, row.deleted_by_customer, row.deleted_by_staff, row.net) == (2, 0, 1, 1)
    today_only = acquisition_today(viewer=hq_operator)
    assert (today_only.adds, today_only.deletions, today_only.net) == (2, 1, 1)


def test_history_is_what_the_daily_build_recorded_and_today_is_added_live(org, hq_operator):
    today = timezone.localdate()
    yesterday = today - timedelta(days=1)
    follow(org.guide_a, at(yesterday))
    follow(org.guide_a, at(yesterday, 13))
    acquisition_daily_build(day=yesterday)
    follow(org.guide_a, at(yesterday, 14))  # arrived after the build: shows after the next build
    follow(org.guide_a, timezone.now())

    figures = acquisition_figures(viewer=hq_operator, date_from=yesterday, date_to=today, group_by="day")

    assert [(row.key, row.adds) for row in figures.rows] == [(yesterday, 2), (today, 1)]
    assert figures.total.adds == 3


def test_cumulative_is_the_relationships_active_at_the_end_of_the_range(org, hq_operator):
    first, last = DAY, DAY + timedelta(days=2)
    follow(org.guide_a, at(DAY - timedelta(days=30)))  # active all along
    follow(org.guide_a, at(DAY - timedelta(days=30)), ended_at=at(DAY - timedelta(days=20)))  # gone before
    follow(org.guide_a, at(DAY, 9))  # added in the range, still there
    follow(org.guide_a, at(DAY, 9), ended_at=at(DAY + timedelta(days=1), 9))  # added then deleted in the range
    follow(org.guide_a, at(DAY, 9), ended_at=at(last + timedelta(days=1), 0, 1))  # deleted after the range
    follow(org.guide_a, at(last + timedelta(days=1), 0, 1))  # added after the range
    follow(org.guide_b, at(DAY - timedelta(days=3)), ended_at=at(DAY, 8), status=Relationship.Status.TRANSFERRED)

    by_store = acquisition_figures(viewer=hq_operator, date_from=first, date_to=last, group_by="store")
    by_day = acquisition_figures(viewer=hq_operator, date_from=first, date_to=last, group_by="day")

    assert by_key(by_store)[org.store_a.pk].cumulative == 3
    assert org.store_b.pk not in by_key(by_store)  # nothing active, nothing added or deleted
    assert [(row.key, row.cumulative) for row in by_day.rows] == [(DAY, 4), (DAY + timedelta(days=1), 3),
                                                                  (last, 3)]
    assert by_day.total.cumulative == by_store.total.cumulative == 3


def test_deletion_rate_is_a_percentage_with_one_decimal_and_zero_without_adds(org, hq_operator):
    for minute in range(3):
        follow(org.guide_a, at(DAY, 9, minute))
    follow(org.guide_a, at(DAY, 10), ended_at=at(DAY, 11))  # 4 adds, 1 deletion
    follow(org.guide_b, at(DAY - timedelta(days=9)), ended_at=at(DAY, 12))  # store_b: deletions, no adds
    acquisition_daily_build(day=DAY)

    rows = by_key(acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=DAY, group_by="store"))

    assert rows[org.store_a.pk].deletion_rate == Decimal("25.0")
    assert rows[org.store_b.pk].deletion_rate == Decimal("0.0")
    assert rows[org.store_b.pk].net == -1


def test_deletion_rate_rounds_to_one_decimal(org, hq_operator):
    for minute in range(3):
        follow(org.guide_a, at(DAY, 9, minute), ended_at=at(DAY, 10) if minute == 0 else None)
    acquisition_daily_build(day=DAY)

    row = acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=DAY, group_by="store").total

    assert row.deletion_rate == Decimal("33.3")


@pytest.mark.parametrize("group_by, key_of, label", [
    ("region", lambda org: org.east_sh.pk, "上海"),
    ("franchisee", lambda org: org.franchisee_one.pk, "一号加盟公司"),
    ("store", lambda org: org.store_a.pk, "上海徐汇店（A001）"),
    ("staff", lambda org: org.guide_a.pk, "李导购（a-guide）"),
    ("channel", lambda org: None, "无渠道"),
    ("day", lambda org: DAY, "2026-03-01"),
])
def test_figures_group_by_every_dimension(org, hq_operator, group_by, key_of, label):
    follow(org.guide_a, at(DAY))
    follow(org.guide_a, at(DAY), ended_at=at(DAY, 15), status=BY_STAFF)
    follow(org.manager_a, at(DAY))
    follow(org.guide_b, at(DAY))
    acquisition_daily_build(day=DAY)

    figures = acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=DAY, group_by=group_by)

    row = by_key(figures)[key_of(org)]
    assert row.label == label
    expected_adds = {"staff": 2, "channel": 4, "day": 4}.get(group_by, 3)
    assert (row.adds, row.deleted_by_staff) == (expected_adds, 1)
    assert figures.total.adds == 4 and sum(r.adds for r in figures.rows) == 4


def test_channel_grouping_names_the_channel(org, hq_operator):
    live = ChannelFactory(code="LIVE", name="直播间")
    follow(org.guide_a, at(DAY), channel=live)
    acquisition_daily_build(day=DAY)

    rows = by_key(acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=DAY, group_by="channel"))

    assert rows[live.pk].label == "直播间（LIVE）" and rows[live.pk].adds == 1


@pytest.fixture
def busy_day(org):
    """Adds in every store of the org on DAY, built; one more in store_a today."""
    guide_a2 = StaffFactory(userid="a2-guide", name="赵导购", store=org.store_a2)
    guide_c = StaffFactory(userid="c-guide", name="钱导购", store=org.store_c)
    for staff in (org.guide_a, org.guide_a, guide_a2, org.guide_b, guide_c):
        follow(staff, at(DAY))
    acquisition_daily_build(day=DAY)
    follow(org.guide_a, timezone.now())
    return org


@pytest.mark.parametrize("persona, stores, adds", [
    ("hq_operator", {"A001", "A002", "B001", "C001"}, 6),
    ("region_manager_east", {"A001", "A002"}, 4),
    ("franchisee_owner", {"A001", "A002"}, 4),
    ("store_manager_of_a", {"A001"}, 3),
])
def test_each_persona_sees_the_figures_of_their_scope_only(busy_day, persona, stores, adds, request):
    viewer = request.getfixturevalue(persona)
    figures = acquisition_figures(viewer=viewer, date_from=DAY, date_to=timezone.localdate(), group_by="store")

    assert {row.label[-5:-1] for row in figures.rows} == stores
    assert figures.total.adds == adds


def test_store_staff_see_only_their_own_figures(busy_day, staff_of_a):
    figures = acquisition_figures(viewer=staff_of_a, date_from=DAY, date_to=timezone.localdate(), group_by="staff")

    assert [(row.key, row.adds) for row in figures.rows] == [(busy_day.guide_a.pk, 3)]


def test_a_filter_outside_the_scope_shows_nothing_of_it(busy_day, store_manager_of_a):
    today = timezone.localdate()
    outside = AcquisitionFilters(store_id=busy_day.store_b.pk)

    figures = acquisition_figures(viewer=store_manager_of_a, date_from=DAY, date_to=today, group_by="store",
                                  filters=outside)

    assert figures.rows == [] and figures.total.adds == 0 and figures.total.cumulative == 0


def test_a_region_filter_includes_its_sub_regions(busy_day, hq_operator):
    figures = acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=timezone.localdate(), group_by="store",
                                  filters=AcquisitionFilters(region_id=busy_day.east.pk))

    assert {row.key for row in figures.rows} == {busy_day.store_a.pk, busy_day.store_a2.pk}


def test_leaderboards_rank_by_net_adds_and_by_deletion_rate_with_enough_adds(busy_day, hq_operator):
    for minute in range(2):
        follow(busy_day.guide_b, at(DAY, 9, minute), ended_at=at(DAY, 10))
    acquisition_daily_build(day=DAY)

    boards = acquisition_leaderboards(viewer=hq_operator, date_from=DAY, date_to=timezone.localdate(), min_adds=2)

    assert [row.key for row in boards.top_stores][:1] == [busy_day.store_a.pk]
    assert boards.top_staff[0].key == busy_day.guide_a.pk
    assert [row.key for row in boards.worst_stores] == [busy_day.store_b.pk, busy_day.store_a.pk]
    assert boards.worst_stores[0].deletion_rate == Decimal("66.7")


@pytest.mark.parametrize("date_from, date_to, message", [
    (DAY, DAY - timedelta(days=1), "开始日期不能晚于结束日期"),
    (DAY - timedelta(days=400), DAY, "日期范围最长"),
])
def test_a_bad_range_is_a_clear_error(org, hq_operator, date_from, date_to, message):
    with pytest.raises(DashboardError, match=message):
        acquisition_figures(viewer=hq_operator, date_from=date_from, date_to=date_to, group_by="store")


def test_an_unknown_grouping_is_a_clear_error(org, hq_operator):
    with pytest.raises(DashboardError, match="未知的分组方式"):
        acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=DAY, group_by="customer")


def test_a_login_without_a_role_sees_nothing_even_with_the_permission(busy_day):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    nobody = UserFactory(username="no_role", is_staff=True)
    nobody.user_permissions.add(Permission.objects.get(codename="view_acquisitiondaily"))

    figures = acquisition_figures(viewer=nobody, date_from=DAY, date_to=timezone.localdate(), group_by="day")

    assert figures.total.adds == 0 and figures.total.cumulative == 0


def test_a_filter_on_a_region_that_does_not_exist_shows_nothing(busy_day, hq_operator):
    figures = acquisition_figures(viewer=hq_operator, date_from=DAY, date_to=timezone.localdate(), group_by="store",
                                  filters=AcquisitionFilters(region_id=987654))

    assert figures.rows == [] and figures.total.cumulative == 0
