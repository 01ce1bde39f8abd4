"""Rollups: a task's figures by level and persona, drop-outs from the day, the leaderboard, the kept counts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tasks.models import Assignment, TaskStoreCount
from campaigns.tasks.reconcile import task_rollups_reconcile
from campaigns.tasks.rollups import (
    DIRECT,
    LEVELS,
    DashboardFilters,
    RollupCounts,
    RollupError,
    RollupFilters,
    dashboard_regions,
    dashboard_tasks,
    leaderboard,
    rollup_by,
    rollup_levels,
    rollup_over_time,
    rollup_total,
    store_rank,
)
from campaigns.tasks.services import (
    assignment_confirm,
    assignment_done,
    assignment_excuse,
    assignments_mark_notified,
    task_cancel,
)
from stores.models import Staff, Store
from stores.org.services import staff_depart, store_close
from tests.campaigns.tasks.helpers import task_dispatched
from tests.factories import StaffFactory


@pytest.fixture
def every_store_task(hq_operator, org):
    """Each member of the four stores executes: A has a manager and a guide, B a guide, A2 and C nobody yet."""
    StaffFactory(userid="a2-guide", name="赵导购", store=org.store_a2)
    StaffFactory(userid="c-guide", name="钱导购", store=org.store_c)
    return task_dispatched(by=hq_operator, stores=[org.store_a, org.store_a2, org.store_b, org.store_c],
                           executor="staff")


def _of(task, userid: str) -> Assignment:
    return Assignment.objects.get(task=task, staff__userid=userid)


def _by(rows, key):
    return next(r for r in rows if r.key == key)


@pytest.fixture
def progressed(every_store_task, store_manager_of_a, staff_of_a, org):
    """In A the guide is done and the manager has confirmed; B's guide has been notified; nothing else."""
    task = every_store_task
    assignments_mark_notified(assignment_ids=list(Assignment.objects.filter(task=task).values_list("pk", flat=True)))
    assignment_done(assignment=_of(task, "a-guide"), by=staff_of_a)
    assignment_confirm(assignment=_of(task, "a-manager"), by=store_manager_of_a)
    return task


def test_the_task_total_counts_each_step(progressed, hq_operator):
    total = rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk))
    assert total == RollupCounts(dispatched=5, notified=5, confirmed=2, done=1, on_time=1)
    assert (total.done_pct, total.on_time_pct) == (20, 20)


def test_regions_include_their_sub_regions(progressed, hq_operator, org):
    rows = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="region")
    assert [r.label for r in rows] == ["华东大区", "杭州", "上海", "华南大区", "广州"]
    assert (_by(rows, org.east.pk).counts.dispatched, _by(rows, org.east.pk).counts.done) == (3, 1)
    assert _by(rows, org.east_sh.pk).counts.confirmed == 2
    assert _by(rows, org.south.pk).counts.dispatched == 2


def test_the_franchisee_level_puts_direct_stores_together(progressed, hq_operator, org):
    rows = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="franchisee")
    assert {r.label: r.counts.dispatched for r in rows} == {"一号加盟公司": 3, "二号加盟公司": 1, "直营门店": 1}
    assert _by(rows, DIRECT).label == "直营门店"


def test_the_staff_level_names_each_member_with_their_store(progressed, hq_operator):
    rows = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="staff")
    guide = next(r for r in rows if r.label == "李导购")
    assert (guide.note, guide.counts.done) == ("A001 上海徐汇店", 1)


def test_a_drill_down_to_a_region_shows_only_its_stores(progressed, hq_operator, org):
    rows = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk, region_id=org.east.pk),
                     level="store")
    assert [r.note.split(" · ")[0] for r in rows] == ["A001", "A002"]


def test_a_region_manager_sees_only_their_regions_rows(progressed, region_manager_east):
    filters = RollupFilters(task_id=progressed.pk)
    assert [r.label for r in rollup_by(viewer=region_manager_east, filters=filters, level="region")] == \
        ["华东大区", "杭州", "上海"]
    assert rollup_total(viewer=region_manager_east, filters=filters).dispatched == 3
    assert {r.label for r in rollup_by(viewer=region_manager_east, filters=filters, level="staff")} == \
        {"张店长", "李导购", "赵导购"}


def test_a_franchisee_owner_sees_only_their_stores(progressed, franchisee_owner):
    rows = rollup_by(viewer=franchisee_owner, filters=RollupFilters(task_id=progressed.pk), level="store")
    assert [r.label for r in rows] == ["上海徐汇店", "杭州西湖店"]


def test_a_store_manager_sees_only_their_store(progressed, store_manager_of_a):
    filters = RollupFilters(task_id=progressed.pk)
    assert [r.label for r in rollup_by(viewer=store_manager_of_a, filters=filters, level="store")] == ["上海徐汇店"]
    assert rollup_total(viewer=store_manager_of_a, filters=filters).dispatched == 2


def test_a_closed_store_drops_out_from_the_day_it_closed(progressed, hq_operator, org):
    today = timezone.localdate()
    store_close(stores=Store.objects.filter(pk=org.store_b.pk), on=today)
    assert rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk)).dispatched == 4
    yesterday = RollupFilters(task_id=progressed.pk, on=today - timedelta(days=1))
    assert rollup_total(viewer=hq_operator, filters=yesterday).dispatched == 5


def test_a_departed_member_drops_out_from_the_day_they_left(progressed, hq_operator):
    staff_depart(staff=Staff.objects.filter(userid="a-guide"))
    today = timezone.localdate()
    total = rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk))
    assert (total.dispatched, total.done) == (4, 0)
    before = rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk,
                                                                     on=today - timedelta(days=1)))
    assert (before.dispatched, before.done) == (5, 1)


def test_excused_work_is_not_expected(progressed, store_manager_of_a, hq_operator):
    assignment_excuse(assignment=_of(progressed, "a-manager"), by=store_manager_of_a, reason="病假")
    total = rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk))
    assert (total.excused, total.expected, total.done_pct) == (1, 4, 25)


def test_work_left_after_the_deadline_counts_as_overdue(progressed, hq_operator):
    type(progressed).objects.filter(pk=progressed.pk).update(deadline=timezone.now() - timedelta(minutes=1))
    assert rollup_total(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk)).overdue == 4


def test_the_leaderboard_ranks_stores_by_on_time_completion(progressed, hq_operator, store_manager_of_a, org):
    rows = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="store")
    board = leaderboard(rows)
    assert [(r.rank, r.row.label) for r in board][:2] == [(1, "上海徐汇店"), (2, "广州天河店")]
    assert {r.rank for r in board[1:]} == {2}  # nothing done elsewhere: they share the second place
    assert store_rank(task=progressed, store_id=org.store_a.pk).rank == 1


def test_done_over_time_runs_up_day_by_day(progressed, hq_operator):
    today = timezone.localdate()
    days = rollup_over_time(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk),
                            first=today - timedelta(days=2))
    assert [(d.done, d.cumulative) for d in days] == [(0, 0), (0, 0), (1, 1)]


def test_a_rollup_of_nothing_is_refused(hq_operator):
    with pytest.raises(RollupError, match="请选择一个任务或活动"):
        rollup_total(viewer=hq_operator, filters=RollupFilters())


def test_a_rollup_needs_a_known_level(progressed, hq_operator):
    with pytest.raises(RollupError, match="没有这个统计层级"):
        rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="planet")


# -- the kept counts and the dashboard ----------------------------------------------------------------------
def _kept(task) -> dict[int, tuple]:
    return {c.store_id: (c.dispatched, c.notified, c.confirmed, c.done, c.on_time, c.open, c.excused, c.rejected)
            for c in TaskStoreCount.objects.filter(task=task)}


def test_the_kept_counts_follow_every_change_and_match_a_recount(progressed, hq_operator, store_manager_of_a, org):
    assignment_excuse(assignment=_of(progressed, "b-guide"), by=hq_operator, reason="门店装修")
    kept = _kept(progressed)
    assert kept[org.store_a.pk] == (2, 2, 2, 1, 1, 1, 0, 0)
    assert kept[org.store_b.pk] == (1, 1, 0, 0, 0, 0, 1, 0)
    TaskStoreCount.objects.filter(task=progressed).update(done=0)  # a drift the nightly job must find
    result = task_rollups_reconcile(task_ids=[progressed.pk])
    assert (result.repaired, _kept(progressed)) == (1, kept)
    assert task_rollups_reconcile(task_ids=[progressed.pk]).repaired == 0


def test_cancelling_withdraws_open_work_from_the_kept_counts(progressed, hq_operator, org):
    task_cancel(task=progressed, by=hq_operator)
    assert _kept(progressed)[org.store_a.pk][0] == 1  # the done one is kept
    assert _kept(progressed)[org.store_b.pk][0] == 0


def test_a_later_deadline_recounts_on_time(progressed, hq_operator, org):
    Assignment.objects.filter(task=progressed, status="done").update(done_at=progressed.deadline + timedelta(hours=1))
    assert _kept(progressed)[org.store_a.pk][4] == 0
    type(progressed).objects.filter(pk=progressed.pk).update(deadline=progressed.deadline + timedelta(hours=2))
    assert _kept(progressed)[org.store_a.pk][4] == 1


def _period() -> DashboardFilters:
    today = timezone.localdate()
    return DashboardFilters(date_from=today - timedelta(days=7), date_to=today)


def test_the_dashboard_says_what_the_live_rollup_says(progressed, hq_operator, region_manager_east):
    staff_depart(staff=Staff.objects.filter(userid="c-guide"))
    for viewer in (hq_operator, region_manager_east):
        [line] = dashboard_tasks(viewer=viewer, filters=_period())
        assert line.counts == rollup_total(viewer=viewer, filters=RollupFilters(task_id=progressed.pk))


def test_the_dashboard_regions_match_the_task_regions(progressed, hq_operator, org):
    store_close(stores=Store.objects.filter(pk=org.store_a2.pk))
    live = rollup_by(viewer=hq_operator, filters=RollupFilters(task_id=progressed.pk), level="region")
    assert dashboard_regions(viewer=hq_operator, filters=_period()) == live


def test_the_dashboard_leaves_out_tasks_outside_the_period(progressed, hq_operator):
    today = timezone.localdate()
    later = DashboardFilters(date_from=today + timedelta(days=10), date_to=today + timedelta(days=20))
    assert dashboard_tasks(viewer=hq_operator, filters=later) == []


def test_the_dashboard_refuses_a_period_ending_before_it_starts(hq_operator):
    today = timezone.localdate()
    with pytest.raises(RollupError, match="结束日期不能早于开始日期"):
        dashboard_tasks(viewer=hq_operator, filters=DashboardFilters(date_from=today, date_to=today - timedelta(1)))


def test_a_store_manager_sees_only_their_store_on_the_dashboard(progressed, store_manager_of_a):
    [line] = dashboard_tasks(viewer=store_manager_of_a, filters=_period())
    assert line.counts.dispatched == 2


@pytest.mark.parametrize("viewer", ["hq_operator", "region_manager_east", "franchisee_owner"])
def test_every_level_at_once_says_what_each_level_says(progressed, viewer, request, org):
    user = request.getfixturevalue(viewer)
    for filters in (RollupFilters(task_id=progressed.pk), RollupFilters(task_id=progressed.pk, region_id=org.east.pk)):
        levels = rollup_levels(viewer=user, filters=filters)
        assert levels == {level: rollup_by(viewer=user, filters=filters, level=level) for level in LEVELS}
