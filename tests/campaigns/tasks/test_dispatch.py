"""Dispatch: one store task per target store, one assignment per executor, in one idempotent step."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tasks import services
from campaigns.tasks.models import Assignment, AssignmentEvent, StoreTask, Task, TaskMaterial
from campaigns.tasks.services import (
    EmptyTarget,
    TargetSpec,
    TaskRefused,
    VariantSpec,
    task_cancel,
    task_dispatch,
    tasks_redispatch_open,
)
from stores.models import Staff, Store
from tests.campaigns.tasks.helpers import task_dispatched, task_made
from tests.factories import StaffFactory, StoreFactory


def test_dispatch_creates_one_store_task_per_open_store_of_the_region_and_its_sub_regions(hq_operator, org):
    StoreFactory(code="A009", name="上海已关店", region=org.east_sh, status=Store.Status.CLOSED,
                 closed_on=timezone.localdate())
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east]))
    result = task_dispatch(task=task, by=hq_operator)
    stores = set(StoreTask.objects.filter(task=task).values_list("store__code", flat=True))
    assert stores == {"A001", "A002"}
    assert result.stores == 2


def test_a_store_executed_task_gives_each_store_one_assignment_without_staff(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east]))
    result = task_dispatch(task=task, by=hq_operator)
    assert result.assignments == 2
    assert list(Assignment.objects.filter(task=task).values_list("staff", flat=True)) == [None, None]


def test_a_staff_executed_task_reaches_active_staff_of_the_given_positions_only(hq_operator, org):
    StaffFactory(userid="a-left", store=org.store_a, status=Staff.Status.DEPARTED, departed_at=timezone.now())
    StaffFactory(userid="a-service", store=org.store_a, position=Staff.Position.SERVICE)
    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a, org.store_b]), executor="staff",
                     positions=["guide", "store_manager"])
    task_dispatch(task=task, by=hq_operator)
    staff = set(Assignment.objects.filter(task=task).values_list("staff__userid", flat=True))
    assert staff == {"a-manager", "a-guide", "b-guide"}


def test_a_dispatch_records_who_dispatched_and_when(hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff")
    assert task.dispatched_by == hq_operator
    assert Assignment.objects.filter(task=task, created_at__lte=task.dispatched_at).count() == 2


def test_dispatching_twice_creates_nothing_new(hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff")
    again = task_dispatch(task=task, by=hq_operator)
    assert (again.stores, again.assignments) == (0, 0)
    assert Assignment.objects.filter(task=task).count() == 3
    assert not AssignmentEvent.objects.filter(assignment__task=task).exists()


def test_a_store_kind_alone_targets_every_open_store_of_that_kind(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(store_kinds=["direct"]))
    task_dispatch(task=task, by=hq_operator)
    assert list(StoreTask.objects.filter(task=task).values_list("store__code", flat=True)) == ["C001"]


def test_a_store_kind_narrows_a_region(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.south], store_kinds=["franchise"]))
    task_dispatch(task=task, by=hq_operator)
    assert list(StoreTask.objects.filter(task=task).values_list("store__code", flat=True)) == ["B001"]


def test_imported_store_codes_are_targeted(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(store_codes=["B001", "C001"]))
    task_dispatch(task=task, by=hq_operator)
    assert set(StoreTask.objects.filter(task=task).values_list("store__code", flat=True)) == {"B001", "C001"}


def test_an_unknown_store_code_is_refused_by_name(hq_operator, org):
    with pytest.raises(TaskRefused, match="找不到这些门店编码：Z999"):
        task_made(by=hq_operator, target=TargetSpec(store_codes=["B001", "Z999"]))


def test_an_empty_target_is_refused(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(cities=["拉萨"]))
    with pytest.raises(EmptyTarget, match="目标门店为空"):
        task_dispatch(task=task, by=hq_operator)
    task.refresh_from_db()
    assert task.status == Task.Status.DRAFT


def test_a_deadline_in_the_past_is_refused(hq_operator, org):
    now = timezone.now()
    with pytest.raises(TaskRefused, match="截止时间已过"):
        task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]), start_at=now - timedelta(days=2),
                  deadline=now - timedelta(hours=1))


def test_a_deadline_before_the_start_is_refused(hq_operator, org):
    now = timezone.now()
    with pytest.raises(TaskRefused, match="截止时间必须晚于开始时间"):
        task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]), start_at=now + timedelta(days=3),
                  deadline=now + timedelta(days=2))


def test_an_expired_material_cannot_be_attached(hq_operator, org):
    from materials.library.models import Material
    from tests.materials.helpers import script_published

    material = script_published(by=hq_operator, title="过期话术", everyone=True)
    Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(TaskRefused, match="素材“过期话术”已过期"):
        task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]), materials=[material])


def test_a_material_that_expired_after_the_task_was_written_stops_the_dispatch(hq_operator, org):
    from materials.library.models import Material
    from tests.materials.helpers import script_published

    material = script_published(by=hq_operator, title="限时话术", everyone=True)
    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]), materials=[material])
    Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(TaskRefused, match="素材“限时话术”已过期"):
        task_dispatch(task=task, by=hq_operator)
    assert not StoreTask.objects.filter(task=task).exists()


def test_the_dispatch_records_the_version_of_each_attached_material(hq_operator, org):
    from tests.materials.helpers import script_published

    material = script_published(by=hq_operator, title="开业话术", everyone=True)
    task = task_dispatched(by=hq_operator, stores=[org.store_a], materials=[material])
    assert TaskMaterial.objects.get(task=task).version_id == material.current_version_id


def test_copy_variables_are_rendered_per_store(hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], instructions="{门店名称}请在{截止时间}前完成")
    text = StoreTask.objects.get(task=task).text
    assert text.startswith("上海徐汇店请在") and "{截止时间}" not in text


def test_the_staff_name_is_rendered_per_assignment(hq_operator, org):
    from campaigns.tasks.selectors import assignment_text

    task = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff", positions=["guide"],
                           instructions="{员工姓名}，请整理陈列")
    assignment = Assignment.objects.select_related("staff", "store_task").get(task=task)
    assert assignment_text(assignment=assignment) == "李导购，请整理陈列"


@pytest.fixture
def cities(org):
    Store.objects.filter(pk__in=[org.store_a.pk]).update(city="上海")
    Store.objects.filter(pk__in=[org.store_a2.pk]).update(city="杭州")
    Store.objects.filter(pk__in=[org.store_b.pk, org.store_c.pk]).update(city="广州")


def test_a_rainy_day_variant_goes_to_stores_in_rainy_cities_and_the_default_elsewhere(hq_operator, org, cities,
                                                                                     settings):
    settings.XIAOER_WEATHER_SANDBOX_FIXED = {"上海": {"rain": True}, "杭州": {"rain": False},
                                             "广州": {"rain": True}}
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east, org.south]), instructions="晴天陈列",
                     variants=[VariantSpec(name="雨天", text="{门店名称}：门口放雨伞架", weather="rain")])
    result = task_dispatch(task=task, by=hq_operator)
    texts = dict(StoreTask.objects.filter(task=task).values_list("store__code", "text"))
    assert texts == {"A001": "上海徐汇店：门口放雨伞架", "A002": "晴天陈列", "B001": "广州天河店：门口放雨伞架",
                     "C001": "广州越秀店：门口放雨伞架"}
    assert result.forecasts == 3  # once per city, not per store


def test_the_first_matching_variant_wins(hq_operator, org, cities, settings):
    settings.XIAOER_WEATHER_SANDBOX_FIXED = {"广州": {"rain": True, "high_c": 33}}
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.south]), instructions="默认",
                     variants=[VariantSpec(name="华南直营", text="直营版", region=org.south, store_kind="direct"),
                               VariantSpec(name="高温", text="高温版", weather="hot", temperature_c=30),
                               VariantSpec(name="雨天", text="雨天版", weather="rain")])
    task_dispatch(task=task, by=hq_operator)
    texts = dict(StoreTask.objects.filter(task=task).values_list("store__code", "text"))
    assert texts == {"B001": "高温版", "C001": "直营版"}


def test_the_sandbox_forecast_is_the_same_for_the_same_city_and_day():
    from datetime import date

    from campaigns.tasks.weather import weather_forecast

    day = date(2026, 12, 5)
    assert weather_forecast(city="上海", on=day) == weather_forecast(city="上海", on=day)


def test_a_worker_killed_between_the_two_statements_leaves_nothing_half_done(hq_operator, org, monkeypatch):
    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a, org.store_b]))

    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(services, "_assignments_insert", killed)
    with pytest.raises(SystemExit):
        task_dispatch(task=task, by=hq_operator)
    task.refresh_from_db()
    assert not StoreTask.objects.filter(task=task).exists()
    assert task.status == Task.Status.DRAFT


def test_redispatch_gives_the_task_to_a_store_that_opened_and_staff_who_joined(hq_operator, org):
    task = task_made(by=hq_operator, target=TargetSpec(regions=[org.east]), executor="staff")
    task_dispatch(task=task, by=hq_operator)
    opened = StoreFactory(code="A003", name="上海新店", region=org.east_sh)
    StaffFactory(userid="a3-guide", store=opened)
    StaffFactory(userid="a-newcomer", store=org.store_a)
    result = tasks_redispatch_open()
    assert (result.stores, result.assignments) == (1, 2)
    assert Assignment.objects.filter(task=task, staff__userid__in=["a3-guide", "a-newcomer"]).count() == 2


def test_a_dispatch_enqueues_the_notification_after_commit(hq_operator, org, django_capture_on_commit_callbacks,
                                                          monkeypatch):
    sent = []
    monkeypatch.setattr("campaigns.tasks.tasks.notify_task.apply_async", lambda kwargs: sent.append(kwargs))
    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]))
    with django_capture_on_commit_callbacks(execute=True):
        task_dispatch(task=task, by=hq_operator)
    assert sent == [{"task_id": task.pk}]


def test_the_notify_task_calls_the_registered_notifiers(hq_operator, org, monkeypatch):
    from campaigns.tasks.tasks import notify_task

    task = task_dispatched(by=hq_operator, stores=[org.store_a])
    calls = []
    monkeypatch.setattr(services, "TASK_NOTIFIERS", {"test": lambda task_id: calls.append(task_id) or 1})
    assert notify_task(task_id=task.pk) == 1
    assert calls == [task.pk]


def test_cancel_withdraws_open_work_and_keeps_done_work(hq_operator, store_manager_of_a, org):
    from campaigns.tasks.services import assignment_done

    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b])
    done = Assignment.objects.get(task=task, store=org.store_a)
    assignment_done(assignment=done, by=store_manager_of_a)
    result = task_cancel(task=task, by=hq_operator)
    assert (result.withdrawn, result.kept_done) == (1, 1)
    statuses = dict(Assignment.objects.filter(task=task).values_list("store__code", "status"))
    assert statuses == {"A001": "done", "B001": "withdrawn"}


def test_a_cancelled_task_cannot_be_dispatched_again(hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a])
    task_cancel(task=task, by=hq_operator)
    with pytest.raises(TaskRefused, match="任务已取消"):
        task_dispatch(task=task, by=hq_operator)


def test_a_region_manager_cannot_dispatch(hq_operator, region_manager_east, org):
    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]))
    with pytest.raises(TaskRefused, match="没有下发或取消任务的权限"):
        task_dispatch(task=task, by=region_manager_east)
