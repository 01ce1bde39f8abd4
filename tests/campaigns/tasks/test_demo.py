"""The demo's tasks: an HQ operator's campaign for 华东大区 — a display task with a rainy-day copy, dispatched and
partly confirmed and done; a cleaning task one store missed, escalated — so the task dashboard has figures."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from campaigns.tasks.demo import CLEANING_TITLE, DISPLAY_TITLE, tasks_demo_run
from campaigns.tasks.models import Assignment, Campaign, StoreTask, Task
from campaigns.tasks.rollups import RollupFilters, rollup_total
from stores.access.services import role_groups_sync
from stores.demo import OrgSize, org_build

SIZE = OrgSize(areas=2, franchisees=1, stores=6, staff=18, store_manager_users=True)


@pytest.fixture
def demo_tasks(db, settings):
    settings.XIAOER_WEATHER_SANDBOX_FIXED = {"上海": {"rain": True}}
    role_groups_sync()
    org_build(size=SIZE)
    tasks_demo_run()


def _hq():
    return get_user_model().objects.get(username="hq_operator")


def test_the_display_task_reaches_only_east_stores_with_a_rainy_copy_where_it_rains(demo_tasks):
    task = Task.objects.get(title=DISPLAY_TITLE)
    regions = set(StoreTask.objects.filter(task=task).values_list("store__region__parent__name", flat=True))
    assert regions == {"华东大区"}
    assert StoreTask.objects.filter(task=task, store__city="上海", variant__name="雨天版").exists()


def test_the_display_task_is_partly_confirmed_and_done(demo_tasks):
    total = rollup_total(viewer=_hq(), filters=RollupFilters(task_id=Task.objects.get(title=DISPLAY_TITLE).pk))
    assert 0 < total.done < total.confirmed < total.dispatched


def test_one_store_is_overdue_and_escalated_to_the_region_manager(demo_tasks):
    task = Task.objects.get(title=CLEANING_TITLE)
    assert Assignment.objects.filter(task=task, status="overdue").values("store_id").distinct().count() == 1
    client = Client()
    client.force_login(get_user_model().objects.get(username="region_east"))
    panel = next(p for p in client.get(reverse("admin:index")).context["panels"] if p["key"] == "tasks")
    stats = {s["label"]: s["value"] for s in panel["stats"]}
    assert (stats["逾期门店"], stats["待我处理的升级"]) == (1, 1)


def test_the_dashboard_shows_both_tasks(demo_tasks):
    client = Client()
    client.force_login(_hq())
    rows = client.get(reverse("admin:campaigns_task_dashboard")).context["task_rows"]
    assert {r["title"] for r in rows} == {DISPLAY_TITLE, CLEANING_TITLE}


def test_seeding_again_makes_nothing_new(demo_tasks):
    before = Assignment.objects.count()
    assert "未重复创建" in tasks_demo_run()
    assert (Campaign.objects.count(), Assignment.objects.count()) == (1, before)
