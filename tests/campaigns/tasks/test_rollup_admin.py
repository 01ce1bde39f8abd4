"""The task's rollup page, the HQ task dashboard, their Excel exports and the 工作台's task panel, by persona."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from campaigns.tasks.models import Assignment, Task
from campaigns.tasks.services import assignment_done, assignments_overdue_mark
from tests.campaigns.tasks.helpers import task_dispatched
from tests.factories import StoreFactory

ROLLUP = "admin:campaigns_task_rollup"


@pytest.fixture
def task(hq_operator, store_manager_of_a, org):
    """Dispatched to A, A2, B and C (the store as a whole); A has finished."""
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_a2, org.store_b, org.store_c],
                           title="双十二门头陈列")
    assignment_done(assignment=Assignment.objects.get(task=task, store=org.store_a), by=store_manager_of_a)
    return task


def _sheets(response) -> dict[str, list[tuple]]:
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    return {sheet.title: [tuple(row) for row in sheet.iter_rows(values_only=True)] for sheet in book.worksheets}


def _page_rows(response, level: str) -> list[list]:
    table = next(t for t in response.context["tables"] if t["level"] == level)
    return [[row["label"], row["note"], *row["cells"]] for row in table["rows"]]


def test_the_rollup_page_shows_completion_by_region_as_stacked_bars(client, hq_operator, task):
    client.force_login(hq_operator)
    response = client.get(reverse(ROLLUP), {"task": task.pk})
    assert response.status_code == 200
    chart = response.context["charts"]["regions"]
    assert chart.stacked and chart.categories == ["华东大区", "杭州", "上海", "华南大区", "广州"]
    on_time = next(s for s in chart.series if s.name == "按时完成")
    assert on_time.values == [1, 0, 1, 0, 0]
    assert 'id="rollup-regions"' in response.content.decode()


def test_the_rollup_page_draws_done_over_time_as_a_line(client, hq_operator, task):
    client.force_login(hq_operator)
    chart = client.get(reverse(ROLLUP), {"task": task.pk}).context["charts"]["over_time"]
    running = next(s for s in chart.series if s.kind == "line")
    assert running.values[-1] == 1


def test_a_region_row_drills_down_to_that_regions_stores(client, hq_operator, task, org):
    client.force_login(hq_operator)
    response = client.get(reverse(ROLLUP), {"task": task.pk})
    east = next(r for r in next(t for t in response.context["tables"] if t["level"] == "region")["rows"]
                if r["label"] == "华东大区")
    narrowed = client.get(east["url"])
    assert [row[0] for row in _page_rows(narrowed, "store")] == ["上海徐汇店", "杭州西湖店"]


def test_a_region_manager_sees_only_their_regions_rows(client, region_manager_east, task):
    client.force_login(region_manager_east)
    response = client.get(reverse(ROLLUP), {"task": task.pk})
    assert [row[0] for row in _page_rows(response, "region")] == ["华东大区", "杭州", "上海"]
    assert [row[0] for row in _page_rows(response, "store")] == ["上海徐汇店", "杭州西湖店"]
    assert "广州" not in response.content.decode()


def test_a_region_manager_asking_for_another_region_gets_no_figures(client, region_manager_east, task, org):
    client.force_login(region_manager_east)
    response = client.get(reverse(ROLLUP), {"task": task.pk, "region": org.south.pk})
    assert response.status_code == 200
    assert response.context.get("figures") is None


def test_a_task_that_never_reached_the_viewer_gets_no_figures(client, hq_operator, store_manager_of_a, org):
    theirs = task_dispatched(by=hq_operator, stores=[org.store_b], title="只给天河店")
    client.force_login(store_manager_of_a)
    response = client.get(reverse(ROLLUP), {"task": theirs.pk})
    assert response.context.get("figures") is None
    assert "只给天河店" not in response.content.decode()


def test_the_rollup_of_a_campaign_adds_up_its_tasks(client, hq_operator, task, org):
    task_dispatched(by=hq_operator, stores=[org.store_b], campaign=task.campaign, title="第二个任务")
    client.force_login(hq_operator)
    response = client.get(reverse(ROLLUP), {"campaign": task.campaign_id})
    assert response.context["figures"]["total"].dispatched == 5


def test_a_rollup_without_task_or_campaign_says_so(client, hq_operator, task):
    client.force_login(hq_operator)
    response = client.get(reverse(ROLLUP))
    assert "请选择一个任务或活动" in response.content.decode()


def test_the_export_has_every_level_on_its_own_sheet(client, hq_operator, task):
    client.force_login(hq_operator)
    response = client.get(reverse("admin:campaigns_task_rollup_export"), {"task": task.pk})
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    assert list(_sheets(response)) == ["汇总", "区域", "加盟商", "城市", "门店", "员工", "门店排行", "区域排行",
                                       "每日完成", "筛选条件"]


def test_the_export_matches_the_page_for_a_region_manager(client, region_manager_east, task):
    client.force_login(region_manager_east)
    page = client.get(reverse(ROLLUP), {"task": task.pk})
    sheets = _sheets(client.get(reverse("admin:campaigns_task_rollup_export"), {"task": task.pk}))
    for level, title in (("region", "区域"), ("franchisee", "加盟商"), ("city", "城市"), ("store", "门店")):
        assert [list(row) for row in sheets[title][1:]] == _page_rows(page, level), level


def test_the_export_of_another_regions_figures_is_refused(client, region_manager_east, task, org):
    client.force_login(region_manager_east)
    response = client.get(reverse("admin:campaigns_task_rollup_export"), {"task": task.pk, "region": org.south.pk})
    assert response.status_code == 302


def test_the_task_page_links_to_its_rollup(client, hq_operator, task):
    client.force_login(hq_operator)
    response = client.get(reverse("admin:campaigns_task_change", args=[task.pk]))
    assert 'id="task-rollup-link"' in response.content.decode()


# -- the HQ dashboard ---------------------------------------------------------------------------------------
def test_the_dashboard_lists_open_tasks_with_their_completion(client, hq_operator, task):
    client.force_login(hq_operator)
    response = client.get(reverse("admin:campaigns_task_dashboard"))
    [row] = response.context["task_rows"]
    assert (row["title"], row["cells"][0], row["cells"][3], row["cells"][8]) == ("双十二门头陈列", 4, 1, "25.0%")


def test_the_dashboard_filters_by_region(client, hq_operator, task, org):
    client.force_login(hq_operator)
    response = client.get(reverse("admin:campaigns_task_dashboard"), {"region": org.south.pk})
    assert response.context["task_rows"][0]["cells"][0] == 2
    assert [r["label"] for r in response.context["region_rows"]] == ["华南大区", "广州"]


def test_the_dashboard_filters_by_campaign(client, hq_operator, task, org):
    other = task_dispatched(by=hq_operator, stores=[org.store_b], title="别的活动的任务")
    client.force_login(hq_operator)
    response = client.get(reverse("admin:campaigns_task_dashboard"), {"campaign": other.campaign_id})
    assert [r["title"] for r in response.context["task_rows"]] == ["别的活动的任务"]


def test_the_dashboard_refuses_a_period_that_ends_before_it_starts(client, hq_operator, task):
    client.force_login(hq_operator)
    today = timezone.localdate()
    response = client.get(reverse("admin:campaigns_task_dashboard"),
                          {"date_from": today.isoformat(), "date_to": (today - timedelta(days=3)).isoformat()})
    assert response.context.get("figures") is None
    assert "结束日期不能早于开始日期" in response.content.decode()


def test_the_dashboard_export_matches_the_page(client, franchisee_owner, task):
    client.force_login(franchisee_owner)
    page = client.get(reverse("admin:campaigns_task_dashboard"))
    sheets = _sheets(client.get(reverse("admin:campaigns_task_dashboard_export")))
    assert list(sheets) == ["任务", "区域", "筛选条件"]
    assert [list(row[3:]) for row in sheets["任务"][1:]] == [r["cells"] for r in page.context["task_rows"]]
    assert [row[0] for row in sheets["区域"][1:]] == [r["label"] for r in page.context["region_rows"]]


def test_hostile_store_names_are_exported_as_text(client, hq_operator, org):
    store = StoreFactory(code="X001", name="=HYPERLINK(\"http://evil\")", region=org.east_sh)
    task = task_dispatched(by=hq_operator, stores=[store])
    client.force_login(hq_operator)
    sheets = _sheets(client.get(reverse("admin:campaigns_task_rollup_export"), {"task": task.pk}))
    assert sheets["门店"][1][0].startswith("'=")


# -- the 工作台 ----------------------------------------------------------------------------------------------
def _panel(client, user):
    client.force_login(user)
    panels = client.get(reverse("admin:index")).context["panels"]
    found = next((p for p in panels if p["key"] == "tasks"), None)
    return None if found is None else {s["label"]: s["value"] for s in found["stats"]}


def test_the_workbench_shows_todays_open_tasks_in_scope(client, hq_operator, store_manager_of_a, task, org):
    task_dispatched(by=hq_operator, stores=[org.store_b], title="只给天河店")
    assert _panel(client, hq_operator)["今日进行中任务"] == 2
    assert _panel(client, store_manager_of_a)["今日进行中任务"] == 0  # A has finished its only task


def _overdue_with_plan(task, hours_ago: int, to: str) -> None:
    Task.objects.filter(pk=task.pk).update(
        deadline=timezone.now() - timedelta(hours=hours_ago), start_at=timezone.now() - timedelta(days=3),
        plan={"escalate_after_hours": [{"after_hours": 2, "to": "store_manager"}, {"after_hours": 24, "to": to}]})
    assignments_overdue_mark()


def test_the_workbench_counts_overdue_stores_in_scope(client, hq_operator, region_manager_east, task):
    _overdue_with_plan(task, hours_ago=3, to="region_manager")
    assert _panel(client, hq_operator)["逾期门店"] == 3
    assert _panel(client, region_manager_east)["逾期门店"] == 1  # A2; A finished


def test_an_escalation_waits_for_the_region_manager_once_the_plan_reaches_them(client, region_manager_east, task):
    _overdue_with_plan(task, hours_ago=3, to="region_manager")
    assert _panel(client, region_manager_east)["待我处理的升级"] == 0
    _overdue_with_plan(task, hours_ago=25, to="region_manager")
    assert _panel(client, region_manager_east)["待我处理的升级"] == 1


def test_an_escalation_to_the_store_manager_waits_for_them_not_the_franchisee(client, store_manager_of_a,
                                                                               franchisee_owner, hq_operator, org):
    late = task_dispatched(by=hq_operator, stores=[org.store_a])
    _overdue_with_plan(late, hours_ago=3, to="franchisee_owner")
    assert _panel(client, store_manager_of_a)["待我处理的升级"] == 1
    assert _panel(client, franchisee_owner)["待我处理的升级"] == 0


def test_store_staff_have_no_task_panel(client, staff_of_a, task):
    client.force_login(staff_of_a)
    response = client.get(reverse("admin:index"))
    assert response.status_code in (200, 302)
    if response.status_code == 200:
        assert all(p["key"] != "tasks" for p in response.context["panels"])
