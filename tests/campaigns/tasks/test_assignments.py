"""Assignment states: who may do what, each action idempotent and recorded once."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tasks.models import Assignment, AssignmentEvent, ChecklistTick, Evidence, Task
from campaigns.tasks.services import (
    AssignmentNotFound,
    AssignmentRefused,
    ChecklistSpec,
    PhotoRefused,
    TargetSpec,
    TaskRefused,
    assignment_confirm,
    assignment_done,
    assignment_excuse,
    assignment_reject,
    assignment_reopen,
    assignments_mark_notified,
    assignments_overdue_mark,
    campaign_create,
    checklist_tick,
    evidence_add,
    task_plan_validate,
)
from tests.campaigns.tasks.helpers import task_dispatched, task_made


@pytest.fixture
def staff_task(hq_operator, org):
    return task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff")


def mine(task, staff) -> Assignment:
    return Assignment.objects.get(task=task, staff=staff)


def events(assignment) -> list[tuple[str, str]]:
    return list(AssignmentEvent.objects.filter(assignment=assignment).exclude(source="dispatch")
                .values_list("from_status", "to_status"))


def test_confirming_twice_records_one_event(staff_task, staff_of_a, org):
    assignment = mine(staff_task, org.guide_a)
    assignment_confirm(assignment=assignment, by=staff_of_a)
    again = assignment_confirm(assignment=assignment, by=staff_of_a)
    assert again.status == "confirmed"
    assert events(assignment) == [("pending", "confirmed")]


def test_the_event_says_who_and_from_where(staff_task, staff_of_a, org):
    assignment = mine(staff_task, org.guide_a)
    assignment_confirm(assignment=assignment, by=staff_of_a, source="card")
    event = AssignmentEvent.objects.get(assignment=assignment, to_status="confirmed")
    assert (event.by, event.source) == (staff_of_a, "card")


def test_finishing_twice_records_one_event(staff_task, staff_of_a, org):
    assignment = mine(staff_task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    assert events(assignment) == [("pending", "done")]


def test_confirming_done_work_changes_nothing(staff_task, staff_of_a, org):
    assignment = mine(staff_task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    assert assignment_confirm(assignment=assignment, by=staff_of_a).status == "done"


def test_staff_cannot_act_on_a_colleagues_assignment(staff_task, staff_of_a, org):
    with pytest.raises(AssignmentNotFound):
        assignment_confirm(assignment=mine(staff_task, org.manager_a), by=staff_of_a)


def test_staff_of_store_a_cannot_act_on_store_bs_assignment(staff_task, staff_of_a, store_manager_of_a, org):
    theirs = mine(staff_task, org.guide_b)
    for user in (staff_of_a, store_manager_of_a):
        with pytest.raises(AssignmentNotFound, match="找不到这条任务"):
            assignment_done(assignment=theirs, by=user)
    assert Assignment.objects.get(pk=theirs.pk).status == "pending"


def test_the_store_manager_may_finish_a_staff_members_assignment(staff_task, store_manager_of_a, org):
    assert assignment_done(assignment=mine(staff_task, org.guide_a), by=store_manager_of_a).status == "done"


def test_the_store_manager_excuses_with_a_reason(staff_task, store_manager_of_a, org):
    assignment = assignment_excuse(assignment=mine(staff_task, org.guide_a), by=store_manager_of_a, reason="病假")
    assert (assignment.status, assignment.reason) == ("excused", "病假")
    assert events(assignment) == [("pending", "excused")]


def test_an_excuse_needs_a_reason(staff_task, store_manager_of_a, org):
    with pytest.raises(AssignmentRefused, match="请填写免除的原因"):
        assignment_excuse(assignment=mine(staff_task, org.guide_a), by=store_manager_of_a, reason=" ")


def test_staff_cannot_excuse_themselves(staff_task, staff_of_a, org):
    with pytest.raises(AssignmentRefused, match="只有店长或上级可以免除任务"):
        assignment_excuse(assignment=mine(staff_task, org.guide_a), by=staff_of_a, reason="不想做")


def test_the_region_manager_may_excuse_in_their_region_only(staff_task, region_manager_east, org):
    assignment_excuse(assignment=mine(staff_task, org.guide_a), by=region_manager_east, reason="门店装修")
    with pytest.raises(AssignmentNotFound):
        assignment_excuse(assignment=mine(staff_task, org.guide_b), by=region_manager_east, reason="门店装修")


@pytest.fixture
def reviewed_task(hq_operator, org):
    return task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff", positions=["guide"],
                           review_by="store_manager")


def test_the_reviewer_rejects_done_work_with_a_reason_and_reopens_it(reviewed_task, staff_of_a, store_manager_of_a,
                                                                    org):
    assignment = mine(reviewed_task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    assignment_reject(assignment=assignment, by=store_manager_of_a, reason="照片看不清")
    assignment_reject(assignment=assignment, by=store_manager_of_a, reason="照片看不清")
    assignment_reopen(assignment=assignment, by=store_manager_of_a)
    assert events(assignment) == [("pending", "done"), ("done", "rejected"), ("rejected", "reopened")]


def test_staff_cannot_reject(reviewed_task, staff_of_a, org):
    assignment = mine(reviewed_task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    with pytest.raises(AssignmentRefused, match="只有审核人"):
        assignment_reject(assignment=assignment, by=staff_of_a, reason="自己驳回")


def test_a_store_manager_cannot_reject_what_hq_reviews(hq_operator, staff_of_a, store_manager_of_a, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff", positions=["guide"],
                           review_by="hq")
    assignment = mine(task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    with pytest.raises(AssignmentRefused, match="只有审核人"):
        assignment_reject(assignment=assignment, by=store_manager_of_a, reason="不行")
    assert assignment_reject(assignment=assignment, by=hq_operator, reason="陈列不对").status == "rejected"


def test_work_without_review_cannot_be_rejected(staff_task, staff_of_a, hq_operator, org):
    assignment = mine(staff_task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    with pytest.raises(AssignmentRefused, match="此任务无需审核"):
        assignment_reject(assignment=assignment, by=hq_operator, reason="不行")


def test_pending_work_cannot_be_rejected(reviewed_task, store_manager_of_a, org):
    with pytest.raises(AssignmentRefused, match="当前是“待通知”，不能驳回"):
        assignment_reject(assignment=mine(reviewed_task, org.guide_a), by=store_manager_of_a, reason="未做")


def test_marking_notified_changes_pending_ones_only_and_once(staff_task, staff_of_a, org):
    ids = list(Assignment.objects.filter(task=staff_task).values_list("pk", flat=True))
    assignment_confirm(assignment=mine(staff_task, org.guide_a), by=staff_of_a)
    assert assignments_mark_notified(assignment_ids=ids) == 2
    assert assignments_mark_notified(assignment_ids=ids) == 0
    assert mine(staff_task, org.guide_a).status == "confirmed"


def test_open_work_past_the_deadline_becomes_overdue_once(staff_task, staff_of_a, org):
    assignment_done(assignment=mine(staff_task, org.guide_a), by=staff_of_a)
    later = staff_task.deadline + timedelta(minutes=1)
    assert assignments_overdue_mark(now=later) == 2
    assert assignments_overdue_mark(now=later) == 0
    assert mine(staff_task, org.guide_a).status == "done"


def test_overdue_work_can_still_be_finished(staff_task, store_manager_of_a, org):
    assignments_overdue_mark(now=staff_task.deadline + timedelta(minutes=1))
    assert assignment_done(assignment=mine(staff_task, org.guide_a), by=store_manager_of_a).status == "done"


@pytest.fixture
def checklist_task(hq_operator, org):
    return task_dispatched(by=hq_operator, stores=[org.store_a], checklist=[
        ChecklistSpec(text="堆头摆放"), ChecklistSpec(text="门头照片", photo="required"),
        ChecklistSpec(text="试吃台", required=False)])


def test_done_is_refused_until_required_items_are_ticked(checklist_task, store_manager_of_a, org):
    assignment = Assignment.objects.get(task=checklist_task)
    with pytest.raises(AssignmentRefused, match="还有检查项没有完成：堆头摆放、门头照片"):
        assignment_done(assignment=assignment, by=store_manager_of_a)


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), "orange").save(out, format="JPEG")
    return out.getvalue()


def test_done_is_refused_until_the_photo_required_item_has_a_photo(checklist_task, store_manager_of_a, org):
    assignment = Assignment.objects.get(task=checklist_task)
    items = {i.text: i for i in checklist_task.checklist.all()}
    for text in ("堆头摆放", "门头照片"):
        checklist_tick(assignment=assignment, item=items[text], by=store_manager_of_a)
    with pytest.raises(AssignmentRefused, match="这些检查项需要拍照：门头照片"):
        assignment_done(assignment=assignment, by=store_manager_of_a)
    evidence_add(assignment=assignment, item=items["门头照片"], by=store_manager_of_a, data=_jpeg())
    assert assignment_done(assignment=assignment, by=store_manager_of_a).status == "done"


def test_ticking_twice_keeps_one_tick(checklist_task, store_manager_of_a):
    assignment = Assignment.objects.get(task=checklist_task)
    item = checklist_task.checklist.first()
    checklist_tick(assignment=assignment, item=item, by=store_manager_of_a)
    checklist_tick(assignment=assignment, item=item, by=store_manager_of_a)
    assert ChecklistTick.objects.filter(assignment=assignment).count() == 1


def test_a_file_that_is_not_an_image_is_refused_as_a_photo(checklist_task, store_manager_of_a):
    assignment = Assignment.objects.get(task=checklist_task)
    with pytest.raises(PhotoRefused, match="这不是照片"):
        evidence_add(assignment=assignment, by=store_manager_of_a, data=b"%PDF-1.4 not a photo" * 10)


def test_a_photo_over_the_size_limit_is_refused(checklist_task, store_manager_of_a, settings):
    settings.XIAOER_EVIDENCE_MAX_BYTES = 100
    with pytest.raises(PhotoRefused, match="照片过大"):
        evidence_add(assignment=Assignment.objects.get(task=checklist_task), by=store_manager_of_a, data=_jpeg())


def test_a_decompression_bomb_is_refused(checklist_task, store_manager_of_a, settings):
    from PIL import Image

    settings.XIAOER_MATERIAL_MAX_PIXELS = 1000
    out = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(out, format="PNG")
    with pytest.raises(PhotoRefused, match="像素过多"):
        evidence_add(assignment=Assignment.objects.get(task=checklist_task), by=store_manager_of_a,
                     data=out.getvalue())


def test_an_iphone_heic_photo_is_accepted_and_stored_as_jpeg(checklist_task, store_manager_of_a):
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(out, format="HEIF")
    evidence = evidence_add(assignment=Assignment.objects.get(task=checklist_task), by=store_manager_of_a,
                            data=out.getvalue())
    assert (evidence.mime, evidence.converted_from, evidence.width) == ("image/jpeg", "HEIC", 64)


def test_a_damaged_heic_photo_is_refused_with_a_clear_message(checklist_task, store_manager_of_a):
    broken = b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(PhotoRefused, match="HEIC 照片已损坏"):
        evidence_add(assignment=Assignment.objects.get(task=checklist_task), by=store_manager_of_a, data=broken)
    assert not Evidence.objects.exists()


def test_a_franchisee_owner_cannot_target_another_franchisees_store(franchisee_owner, org):
    with pytest.raises(TaskRefused):
        task_made(by=franchisee_owner, target=TargetSpec(stores=[org.store_b]))


def test_a_franchisee_owners_region_target_reaches_only_its_own_stores(franchisee_owner, org):
    from campaigns.tasks.models import StoreTask
    from campaigns.tasks.services import task_dispatch
    from stores.models import Store
    from tests.factories import StoreFactory

    StoreFactory(code="A005", name="上海直营店", region=org.east_sh, kind=Store.Kind.DIRECT)
    task = task_made(by=franchisee_owner, target=TargetSpec(regions=[org.east]))
    task_dispatch(task=task, by=franchisee_owner)
    assert set(StoreTask.objects.filter(task=task).values_list("store__code", flat=True)) == {"A001", "A002"}


def test_a_franchisee_owners_campaign_belongs_to_its_franchisee(franchisee_owner, org):
    assert campaign_create(by=franchisee_owner, name="加盟店周末活动").owner_franchisee == org.franchisee_one


def test_a_franchisee_owner_cannot_write_tasks_into_an_hq_campaign(hq_operator, franchisee_owner, org):
    campaign = campaign_create(by=hq_operator, name="总部活动")
    with pytest.raises(TaskRefused, match="只能在本加盟商自己的活动里创建任务"):
        task_made(by=franchisee_owner, campaign=campaign, target=TargetSpec(stores=[org.store_a]))


def test_a_store_manager_cannot_write_tasks(store_manager_of_a, org):
    with pytest.raises(TaskRefused, match="没有创建活动的权限"):
        campaign_create(by=store_manager_of_a, name="自己的活动")


def test_a_plan_is_normalised():
    plan = task_plan_validate(plan={"remind_before_hours": [2, 24], "escalate_after_hours": [
        {"after_hours": 2, "to": "store_manager"}, {"after_hours": 24, "to": "region_manager"}]})
    assert plan["remind_before_hours"] == [24, 2]


@pytest.mark.parametrize("plan, message", [
    ({"remind_before_hours": [0]}, "1 到 744"),
    ({"remind_before_hours": [3, 3]}, "不能重复"),
    ({"escalate_after_hours": [{"after_hours": 5, "to": "ceo"}]}, "升级给谁"),
    ({"escalate_after_hours": [{"after_hours": 24, "to": "store_manager"},
                               {"after_hours": 2, "to": "region_manager"}]}, "按时间先后"),
    ({"escalate_after_hours": [{"after_hours": 2, "to": "region_manager"},
                               {"after_hours": 24, "to": "store_manager"}]}, "先到店长"),
    ({"sms": True}, "格式不对"),
])
def test_a_bad_plan_is_refused_with_its_reason(plan, message):
    with pytest.raises(TaskRefused, match=message):
        task_plan_validate(plan=plan)


def test_a_recurring_daily_task_gets_tomorrows_instance_from_beat_once(hq_operator, org):
    from campaigns.tasks.services import tasks_beat_run

    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]), recurrence="daily")
    from campaigns.tasks.services import task_dispatch

    task_dispatch(task=task, by=hq_operator)
    tomorrow = task.start_at + timedelta(days=1, minutes=1)
    first = tasks_beat_run(now=tomorrow)
    second = tasks_beat_run(now=tomorrow)
    instance = Task.objects.get(recurrence_parent=task)
    assert (first.instances, second.instances) == (1, 0)
    assert instance.start_at == task.start_at + timedelta(days=1)
    assert instance.status == Task.Status.DISPATCHED  # its start has come: the same beat run dispatched it
    assert instance.store_tasks.count() == 1


def test_beat_dispatches_a_scheduled_task_whose_start_has_come(hq_operator, org):
    from campaigns.tasks.services import task_schedule, tasks_beat_run

    task = task_made(by=hq_operator, target=TargetSpec(stores=[org.store_a]),
                     start_at=timezone.now() + timedelta(hours=1))
    task_schedule(task=task, by=hq_operator)
    assert tasks_beat_run().dispatched == 0
    assert tasks_beat_run(now=timezone.now() + timedelta(hours=2)).dispatched == 1
    task.refresh_from_db()
    assert task.status == Task.Status.DISPATCHED
