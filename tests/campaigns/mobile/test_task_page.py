"""The task page on the phone: store teams see, confirm, do and finish their tasks; store managers follow,
nudge and excuse; nobody reaches another store's work, whatever id they type."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.tasks.models import Assignment, AssignmentEvent, ChecklistTick, Evidence
from campaigns.tasks.services import (
    ChecklistSpec,
    VariantSpec,
    assignment_done,
    assignments_overdue_mark,
    evidence_add,
)
from portal.models import AuditEvent
from tests.campaigns.tasks.helpers import task_dispatched


def _jpeg(size=(40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, "orange").save(out, format="JPEG")
    return out.getvalue()


def _upload(data: bytes, name: str = "photo.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


@pytest.fixture
def display_task(hq_operator, org):
    """Each staff member of A001 and B001 does it: two checklist items, one needing a photo."""
    return task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff",
                           title="双十二堆头陈列", instructions="{门店名称}请在{截止时间}前完成堆头陈列",
                           checklist=[ChecklistSpec(text="堆头摆放"), ChecklistSpec(text="门头照片", photo="required")])


def mine(task, staff) -> Assignment:
    return Assignment.objects.get(task=task, staff=staff)


def page(client, assignment) -> str:
    response = client.get(reverse("mobile:task", args=[assignment.pk]))
    assert response.status_code == 200
    return response.content.decode()


def post(client, name: str, assignment, data=None, **extra):
    return client.post(reverse(f"mobile:{name}", args=[assignment.pk]), data or {}, follow=True, **extra)


def refused(response) -> bool:
    """404, or (a login that lost its access) sent to sign in again."""
    return response.status_code == 404 or (response.status_code == 302
                                           and reverse("mobile:login") in response["Location"])


def moves(assignment) -> list[tuple[str, str]]:
    return list(AssignmentEvent.objects.filter(assignment=assignment).exclude(source="dispatch")
                .values_list("from_status", "to_status"))


# -- home -------------------------------------------------------------------------------------------------
def test_a_guide_sees_their_open_task_on_the_home_page_with_its_deadline(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    home = client.get(reverse("mobile:home")).content.decode()
    assert "双十二堆头陈列" in home and "截止" in home
    assert reverse("mobile:task", args=[mine(display_task, org.guide_a).pk]) in home
    assert reverse("mobile:task", args=[mine(display_task, org.manager_a).pk]) not in home  # a colleague's


def test_overdue_work_comes_first_and_says_how_late_it_is(client, hq_operator, staff_of_a, org):
    later = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff", title="下周任务", hours=24 * 5)
    late = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff", title="逾期任务", hours=1,
                           start_at=timezone.now() - timedelta(days=3))
    type(late).objects.filter(pk=late.pk).update(deadline=timezone.now() - timedelta(days=2, hours=1))
    assignments_overdue_mark()
    client.force_login(staff_of_a)
    home = client.get(reverse("mobile:home")).content.decode()
    assert home.index("逾期任务") < home.index("下周任务")
    assert "已逾期 2 天" in home
    assert later.title in home


def test_done_work_leaves_the_home_page(client, staff_of_a, display_task, org):
    Assignment.objects.filter(task=display_task, staff=org.guide_a).update(status="done")
    client.force_login(staff_of_a)
    assert "双十二堆头陈列" not in client.get(reverse("mobile:home")).content.decode()


def test_a_store_manager_sees_the_stores_tasks_with_progress(client, store_manager_of_a, display_task, org):
    Assignment.objects.filter(task=display_task, staff=org.guide_a).update(status="done")
    client.force_login(store_manager_of_a)
    home = client.get(reverse("mobile:home")).content.decode()
    assert "门店任务进度" in home and "已完成 1/2" in home  # A001: the guide done, the manager not; B001 apart


def test_a_departed_staff_member_sees_no_task(client, departed_staff_of_a, hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], title="离职前的任务")
    client.force_login(departed_staff_of_a)
    response = client.get(reverse("mobile:home"))
    assert "离职前的任务" not in response.content.decode()
    assert refused(client.get(reverse("mobile:task", args=[Assignment.objects.get(task=task).pk])))


def test_a_login_without_a_role_sees_no_task(client, hq_operator, org):
    from tests.factories import UserFactory

    task_dispatched(by=hq_operator, stores=[org.store_a], title="门店整体任务")
    client.force_login(UserFactory(username="nobody"))
    assert "门店整体任务" not in client.get(reverse("mobile:home")).content.decode()


# -- the task page ----------------------------------------------------------------------------------------
def test_the_task_page_shows_the_stores_text_and_the_checklist(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    text = page(client, mine(display_task, org.guide_a))
    assert "上海徐汇店请在" in text and "堆头摆放" in text and "门头照片" in text
    assert 'accept="image/*"' in text and "capture" in text
    assert 'data-copy="#task-text"' in text


def test_the_page_shows_the_stores_variant_apart_from_the_instructions(client, hq_operator, staff_of_a, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], instructions="统一说明",
                           variants=[VariantSpec(name="上海", text="上海门店专属文案，{员工姓名}加油",
                                                 city=org.store_a.city)])
    client.force_login(staff_of_a)
    text = page(client, Assignment.objects.get(task=task))
    assert "统一说明" in text and "上海门店专属文案，各位同事加油" in text


def test_the_page_links_the_attached_materials_to_the_library(client, hq_operator, staff_of_a, org):
    from tests.materials.helpers import script_published

    material = script_published(by=hq_operator, title="陈列话术", everyone=True)
    task = task_dispatched(by=hq_operator, stores=[org.store_a], materials=[material])
    client.force_login(staff_of_a)
    assert reverse("mobile:material", args=[material.pk]) in page(client, Assignment.objects.get(task=task))


def test_confirming_twice_records_one_event(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    client.force_login(staff_of_a)
    first = post(client, "task_confirm", assignment)
    post(client, "task_confirm", assignment)
    assert "已确认收到" in first.content.decode()
    assert moves(assignment) == [("pending", "confirmed")]


def test_done_is_refused_while_a_required_item_is_not_ticked(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    client.force_login(staff_of_a)
    response = post(client, "task_done", assignment)
    assert "还有检查项没有完成：堆头摆放、门头照片" in response.content.decode()
    assert Assignment.objects.get(pk=assignment.pk).status == "pending"


def test_done_is_refused_while_the_required_photo_is_missing(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    client.force_login(staff_of_a)
    for item in display_task.checklist.all():
        post(client, "task_tick", assignment, {"item": item.pk, "ticked": "1"})
    response = post(client, "task_done", assignment)
    assert "这些检查项需要拍照：门头照片" in response.content.decode()


def test_a_guide_ticks_photographs_and_finishes_once(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    items = {i.text: i for i in display_task.checklist.all()}
    client.force_login(staff_of_a)
    for item in items.values():
        post(client, "task_tick", assignment, {"item": item.pk, "ticked": "1"})
    uploaded = post(client, "task_photo", assignment, {"item": items["门头照片"].pk, "photo": _upload(_jpeg())})
    assert "照片已上传" in uploaded.content.decode()
    finished = post(client, "task_done", assignment)
    post(client, "task_done", assignment)
    assert "任务已完成" in finished.content.decode()
    assert moves(assignment) == [("pending", "done")]
    assert ChecklistTick.objects.filter(assignment=assignment).count() == 2


def test_unticking_removes_the_tick(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    item = display_task.checklist.first()
    client.force_login(staff_of_a)
    post(client, "task_tick", assignment, {"item": item.pk, "ticked": "1"})
    post(client, "task_tick", assignment, {"item": item.pk, "ticked": "0"})
    assert not ChecklistTick.objects.filter(assignment=assignment).exists()


def test_another_tasks_checklist_item_is_refused(client, hq_operator, staff_of_a, display_task, org):
    other = task_dispatched(by=hq_operator, stores=[org.store_a], checklist=[ChecklistSpec(text="别的任务的项")])
    client.force_login(staff_of_a)
    response = post(client, "task_tick", mine(display_task, org.guide_a), {"item": other.checklist.first().pk})
    assert "这个检查项不属于这条任务" in response.content.decode()
    assert not ChecklistTick.objects.exists()


def test_the_page_lists_the_history_of_the_assignment(client, staff_of_a, display_task, org):
    assignment = mine(display_task, org.guide_a)
    client.force_login(staff_of_a)
    text = post(client, "task_confirm", assignment).content.decode()
    assert "已确认 · 李导购" in text


def test_actions_are_post_only_and_need_the_csrf_token(staff_of_a, display_task, org):
    from django.test import Client

    assignment = mine(display_task, org.guide_a)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_of_a)
    assert client.get(reverse("mobile:task_confirm", args=[assignment.pk])).status_code == 405
    assert client.post(reverse("mobile:task_confirm", args=[assignment.pk])).status_code == 403
    assert Assignment.objects.get(pk=assignment.pk).status == "pending"


def test_finished_work_shows_no_action_buttons(client, staff_of_a, hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a], executor="staff")
    assignment = mine(task, org.guide_a)
    assignment_done(assignment=assignment, by=staff_of_a)
    client.force_login(staff_of_a)
    text = page(client, assignment)
    assert 'id="done"' not in text and "这项任务已完成" in text


# -- photos: bad inputs -----------------------------------------------------------------------------------
def test_a_file_that_is_not_a_photo_is_refused_on_the_page_and_nothing_is_stored(client, staff_of_a, display_task,
                                                                                  org):
    client.force_login(staff_of_a)
    response = post(client, "task_photo", mine(display_task, org.guide_a),
                    {"photo": _upload(b"%PDF-1.4 not a photo" * 10, "scan.jpg")})
    assert "这不是照片" in response.content.decode()
    assert not Evidence.objects.exists()


def test_a_photo_over_the_limit_is_refused_on_the_page(client, staff_of_a, display_task, org, settings):
    settings.XIAOER_EVIDENCE_MAX_BYTES = 200
    client.force_login(staff_of_a)
    response = post(client, "task_photo", mine(display_task, org.guide_a), {"photo": _upload(_jpeg((300, 300)))})
    assert "照片过大" in response.content.decode()
    assert not Evidence.objects.exists()


def test_a_decompression_bomb_is_refused_on_the_page(client, staff_of_a, display_task, org, settings):
    from PIL import Image

    settings.XIAOER_MATERIAL_MAX_PIXELS = 1000
    out = io.BytesIO()
    Image.new("RGB", (200, 200), "white").save(out, format="PNG")
    client.force_login(staff_of_a)
    response = post(client, "task_photo", mine(display_task, org.guide_a), {"photo": _upload(out.getvalue())})
    assert "像素过多" in response.content.decode()
    assert not Evidence.objects.exists()


def test_an_iphone_heic_photo_is_accepted_as_jpeg(client, staff_of_a, display_task, org):
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "blue").save(out, format="HEIF")
    client.force_login(staff_of_a)
    response = post(client, "task_photo", mine(display_task, org.guide_a), {"photo": _upload(out.getvalue(), "a.heic")})
    assert "照片已上传" in response.content.decode()
    assert Evidence.objects.get().mime == "image/jpeg"


def test_a_damaged_heic_photo_is_refused_with_a_clear_message(client, staff_of_a, display_task, org):
    broken = b"\x00\x00\x00\x1cftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    client.force_login(staff_of_a)
    response = post(client, "task_photo", mine(display_task, org.guide_a), {"photo": _upload(broken, "a.heic")})
    assert "HEIC 照片已损坏" in response.content.decode()
    assert not Evidence.objects.exists()


def test_posting_without_a_photo_says_so(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    assert "请先拍照" in post(client, "task_photo", mine(display_task, org.guide_a)).content.decode()


# -- photos: who sees them --------------------------------------------------------------------------------
@pytest.fixture
def photo_of_a(display_task, staff_of_a, org):
    return evidence_add(assignment=mine(display_task, org.guide_a), by=staff_of_a, data=_jpeg())


def test_the_photo_is_served_to_its_taker_the_store_manager_and_the_region_manager(
        client, photo_of_a, staff_of_a, store_manager_of_a, region_manager_east, hq_operator):
    url = reverse("mobile:task_evidence", args=[photo_of_a.pk])
    for user in (staff_of_a, store_manager_of_a, region_manager_east, hq_operator):
        client.force_login(user)
        response = client.get(url)
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg", user.username


def test_another_stores_people_get_404_for_the_photo(client, photo_of_a, hq_operator, org):
    from stores.access.services import access_grant
    from tests.factories import UserFactory

    guide_b = UserFactory(username="guide_b")
    access_grant(user=guide_b, role="store_staff", store=org.store_b, staff=org.guide_b)
    client.force_login(guide_b)
    assert client.get(reverse("mobile:task_evidence", args=[photo_of_a.pk])).status_code == 404
    assert client.get(reverse("mobile:task_evidence", args=[photo_of_a.pk + 1000])).status_code == 404


def test_a_departed_staff_member_gets_404_for_the_photo(client, photo_of_a, departed_staff_of_a):
    client.force_login(departed_staff_of_a)
    assert refused(client.get(reverse("mobile:task_evidence", args=[photo_of_a.pk])))


# -- URL guessing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["task", "task_confirm", "task_done", "task_tick", "task_photo", "task_followup",
                                  "task_nudge", "task_excuse"])
def test_another_stores_assignment_answers_404_on_every_route(client, name, store_manager_of_a, display_task, org):
    theirs = mine(display_task, org.guide_b)
    client.force_login(store_manager_of_a)
    url = reverse(f"mobile:{name}", args=[theirs.pk])
    response = client.get(url) if name == "task" else client.post(url, {"reason": "leave"})
    assert response.status_code == 404
    assert Assignment.objects.get(pk=theirs.pk).status == "pending"


def test_a_guide_cannot_open_a_colleagues_assignment(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    colleague = mine(display_task, org.manager_a)
    assert client.get(reverse("mobile:task", args=[colleague.pk])).status_code == 404
    assert client.post(reverse("mobile:task_done", args=[colleague.pk])).status_code == 404


# -- the store manager ------------------------------------------------------------------------------------
def test_the_store_manager_sees_each_staff_members_progress(client, store_manager_of_a, display_task, org):
    Assignment.objects.filter(task=display_task, staff=org.guide_a).update(status="done")
    client.force_login(store_manager_of_a)
    text = page(client, mine(display_task, org.manager_a))
    assert "员工进度" in text and "李导购" in text and "王导购" not in text


def test_staff_do_not_see_the_teams_progress(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    assert "员工进度" not in page(client, mine(display_task, org.guide_a))


def test_the_store_manager_excuses_a_staff_member_for_leave(client, store_manager_of_a, display_task, org):
    own, guide = mine(display_task, org.manager_a), mine(display_task, org.guide_a)
    client.force_login(store_manager_of_a)
    response = post(client, "task_excuse", guide, {"reason": "leave", "back": own.pk})
    assert response.redirect_chain[-1][0] == reverse("mobile:task", args=[own.pk])
    assert "已免除李导购的这项任务" in response.content.decode()
    guide.refresh_from_db()
    assert (guide.status, guide.reason) == ("excused", "请假")


def test_excusing_for_another_reason_needs_it_written(client, store_manager_of_a, display_task, org):
    guide = mine(display_task, org.guide_a)
    client.force_login(store_manager_of_a)
    assert "请写明原因" in post(client, "task_excuse", guide, {"reason": "other"}).content.decode()
    post(client, "task_excuse", guide, {"reason": "other", "note": "外出培训"})
    guide.refresh_from_db()
    assert (guide.status, guide.reason) == ("excused", "其他：外出培训")


def test_an_unknown_excuse_reason_is_refused(client, store_manager_of_a, display_task, org):
    guide = mine(display_task, org.guide_a)
    client.force_login(store_manager_of_a)
    assert "请选择免除的原因" in post(client, "task_excuse", guide, {"reason": "bored"}).content.decode()
    assert Assignment.objects.get(pk=guide.pk).status == "pending"


def test_staff_cannot_excuse_anyone(client, staff_of_a, display_task, org):
    own = mine(display_task, org.guide_a)
    client.force_login(staff_of_a)
    assert "只有店长或上级可以免除任务" in post(client, "task_excuse", own, {"reason": "leave"}).content.decode()
    assert Assignment.objects.get(pk=own.pk).status == "pending"


def test_a_nudge_is_recorded_once_for_a_double_tap_and_queued_to_the_guide_in_wecom(client, store_manager_of_a,
                                                                                  display_task, org):
    guide = mine(display_task, org.guide_a)
    client.force_login(store_manager_of_a)
    first = post(client, "task_nudge", guide).content.decode()
    second = post(client, "task_nudge", guide).content.decode()
    assert "企业微信消息已发出" in first
    assert "刚刚已经催过李导购了" in second
    assert AuditEvent.objects.filter(action="assignment.nudge", target_ids__contains=[guide.pk]).count() == 1


def test_a_registered_notifier_sends_the_nudge(client, store_manager_of_a, display_task, org, monkeypatch):
    import campaigns.tasks.services as services

    sent = []
    monkeypatch.setitem(services.ASSIGNMENT_NUDGERS, "test", lambda **kw: sent.append(kw) or True)
    guide = mine(display_task, org.guide_a)
    client.force_login(store_manager_of_a)
    assert "企业微信消息已发出" in post(client, "task_nudge", guide).content.decode()
    assert sent == [{"assignment_id": guide.pk, "by_id": store_manager_of_a.pk}]


def test_done_work_is_not_nudged(client, store_manager_of_a, display_task, org):
    guide = mine(display_task, org.guide_a)
    Assignment.objects.filter(pk=guide.pk).update(status="done")
    client.force_login(store_manager_of_a)
    assert "无需催办" in post(client, "task_nudge", guide).content.decode()


def test_staff_cannot_nudge(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    own = mine(display_task, org.guide_a)
    assert "只有店长或上级可以催办" in post(client, "task_nudge", own).content.decode()
    assert not AuditEvent.objects.filter(action="assignment.nudge").exists()


# -- ranking ----------------------------------------------------------------------------------------------
def test_the_page_shows_the_stores_ranking_in_its_region_without_naming_other_stores(
        client, hq_operator, staff_of_a, store_manager_of_a, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_a2, org.store_b])  # store-level
    a2 = Assignment.objects.get(task=task, store=org.store_a2)
    Assignment.objects.filter(pk=a2.pk).update(status="done", done_at=timezone.now())
    client.force_login(staff_of_a)
    text = page(client, Assignment.objects.get(task=task, store=org.store_a))
    assert "在本大区 2 家门店中排第 2 名（按时完成率 0%）" in text  # 华东: A001, A002; B001 is in 华南
    assert "杭州西湖店" not in text


def test_overdue_marked_work_still_shows_its_page(client, staff_of_a, display_task, org):
    assignments_overdue_mark(now=display_task.deadline + timedelta(minutes=1))
    client.force_login(staff_of_a)
    assert "已逾期" in page(client, mine(display_task, org.guide_a))


def test_the_task_page_reads_in_english_too(client, staff_of_a, display_task, org):
    client.force_login(staff_of_a)
    url = reverse("mobile:task", args=[mine(display_task, org.guide_a).pk])
    body = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Checklist" in body and "Got it" in body and "(photo required)" in body


# -- follow-up lists --------------------------------------------------------------------------------------
@pytest.fixture
def followup_task(hq_operator, org):
    from customers.models import Segment
    from tests.factories import CustomerFactory

    CustomerFactory(name="陈女士", staff=org.guide_a, store=org.store_a)
    CustomerFactory(name="别人的客户", staff=org.manager_a, store=org.store_a)
    segment = Segment.objects.create(name="徐汇老客", created_by=hq_operator, rule={"stores": [org.store_a.pk]})
    return task_dispatched(by=hq_operator, stores=[org.store_a], kind="follow_up", executor="staff",
                           segment=segment, title="老客回访")


def test_a_guide_sees_only_their_own_customers_and_records_an_outcome(client, staff_of_a, followup_task, org):
    from campaigns.tasks.models import FollowUp
    from customers.models import Customer

    assignment = mine(followup_task, org.guide_a)
    client.force_login(staff_of_a)
    text = page(client, assignment)
    assert "陈女士" in text and "别人的客户" not in text
    customer = Customer.objects.get(name="陈女士")
    response = post(client, "task_followup", assignment, {"customer": customer.pk, "outcome": "visit_booked"})
    assert "已记录跟进结果" in response.content.decode()
    assert FollowUp.objects.get(assignment=assignment).outcome == "visit_booked"


def test_a_colleagues_customer_is_refused_as_a_follow_up(client, staff_of_a, followup_task, org):
    from campaigns.tasks.models import FollowUp
    from customers.models import Customer

    client.force_login(staff_of_a)
    response = post(client, "task_followup", mine(followup_task, org.guide_a),
                    {"customer": Customer.objects.get(name="别人的客户").pk, "outcome": "reached"})
    assert "这位客户不在你的跟进名单里" in response.content.decode()
    assert not FollowUp.objects.exists()


def test_an_unknown_outcome_is_refused(client, staff_of_a, followup_task, org):
    from customers.models import Customer

    client.force_login(staff_of_a)
    response = post(client, "task_followup", mine(followup_task, org.guide_a),
                    {"customer": Customer.objects.get(name="陈女士").pk, "outcome": "married"})
    assert "跟进结果不对" in response.content.decode()
