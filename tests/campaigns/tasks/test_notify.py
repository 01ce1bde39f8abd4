"""Task notifications over WeCom, against the sandbox over real HTTP: the 收到 card after dispatch, its click,
WeCom's faults and limits, reminders before the deadline and escalation after it — each step once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tasks import notify
from campaigns.tasks.models import Assignment, AssignmentEvent, ReminderLog
from campaigns.tasks.notify import notices_send, reminders_run
from campaigns.tasks.services import task_cancel, task_notify
from portal.wecom import app_messages
from portal.wecom.app_messages import CardClick
from portal.wecom.gateway import _redis
from stores.access.services import access_grant
from stores.models import Role, Staff
from tests.campaigns.tasks.helpers import task_dispatched
from tests.conftest import eventually
from tests.factories import StaffFactory, UserFactory

PLAN = {"remind_before_hours": [24, 2],
        "escalate_after_hours": [{"after_hours": 2, "to": "store_manager"},
                                 {"after_hours": 24, "to": "region_manager"}]}


@pytest.fixture(autouse=True)
def _fresh_budget():
    redis = _redis()
    for key in redis.scan_iter("xiaoer:wecom:appmsg:*"):
        redis.delete(key)


@pytest.fixture
def corp(sandbox, org):
    """The sandbox's address book holds the org's members."""
    sandbox.do("addressbook/load", members=[{"userid": s.userid, "name": s.name, "department": [1]}
                                            for s in Staff.objects.all()])
    return sandbox


def cards(sandbox, userid: str | None = None) -> list[dict]:
    query = {"userid": userid} if userid else {}
    return [m for m in sandbox.get("app_messages", **query)["app_messages"] if m["msgtype"] == "template_card"]


def deliveries(sandbox) -> list[str]:
    return sorted(u for m in cards(sandbox) for u in m["touser"])


def staff_task(by, org, **kwargs):
    return task_dispatched(by=by, stores=[org.store_a, org.store_b], executor="staff", **kwargs)


def click(assignment_card: dict, userid: str, code: str = "rc") -> CardClick:
    return CardClick(userid=userid, task_id=assignment_card["task_id"], key="confirm", response_code=code,
                     card_type="button_interaction", created_at=None, selected={})


# -- the notice after dispatch -----------------------------------------------------------------------------------
def test_each_executing_member_gets_one_card_with_a_confirm_button(corp, hq_operator, org):
    task = staff_task(hq_operator, org)
    assert task_notify(task_id=task.pk) == 3
    assert deliveries(corp) == ["a-guide", "a-manager", "b-guide"]
    [card] = cards(corp)
    body = card["template_card"]
    assert body["main_title"]["title"] == f"新任务：{task.title}"
    assert [b["text"] for b in body["button_list"]] == ["收到"]
    assert body["card_action"]["url"].endswith(f"/m/tasks/open/{task.pk}/")


def test_notified_members_assignments_move_to_notified(corp, hq_operator, org):
    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    assert set(Assignment.objects.filter(task=task).values_list("status", flat=True)) == {"notified"}


def test_a_store_executed_task_notifies_the_store_manager_only(corp, hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a])
    task_notify(task_id=task.pk)
    assert deliveries(corp) == ["a-manager"]


def test_a_store_without_a_manager_is_skipped_and_says_why(corp, hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_b])
    task_notify(task_id=task.pk)
    row = ReminderLog.objects.get(task=task)
    assert (row.status, row.detail) == ("skipped", "门店没有在职店长")
    assert deliveries(corp) == []


def test_a_member_without_a_wecom_account_is_skipped_and_shown_as_such(corp, hq_operator, org):
    StaffFactory(userid="", name="无账号", store=org.store_b)
    task = task_dispatched(by=hq_operator, stores=[org.store_b], executor="staff")
    task_notify(task_id=task.pk)
    row = ReminderLog.objects.get(task=task, assignment__staff__name="无账号")
    assert (row.status, row.detail) == ("skipped", "员工没有企业微信账号")
    assert Assignment.objects.get(pk=row.assignment_id).status == "pending"


def test_notifying_again_notifies_nobody_twice(corp, hq_operator, org):
    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    assert task_notify(task_id=task.pk) == 0
    assert deliveries(corp) == ["a-guide", "a-manager", "b-guide"]


def test_a_member_who_joins_later_is_notified_once_and_the_others_not_again(corp, hq_operator, org):
    from campaigns.tasks.services import tasks_redispatch_open

    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    StaffFactory(userid="a-new", name="新同事", store=org.store_a)
    corp.do("addressbook/load", members=[{"userid": "a-new", "name": "新同事", "department": [1]}])
    tasks_redispatch_open()
    task_notify(task_id=task.pk)
    assert deliveries(corp) == ["a-guide", "a-manager", "a-new", "b-guide"]


# -- WeCom's faults and limits -----------------------------------------------------------------------------------
@pytest.fixture
def crowd(corp, org):
    """1,500 more guides in store B (two batches of recipients)."""
    members = [StaffFactory.build(userid=f"crowd{n:04d}", name=f"导购{n}", store=org.store_b) for n in range(1500)]
    Staff.objects.bulk_create(members)
    corp.do("addressbook/load", members=[{"userid": m.userid, "name": m.name, "department": [1]} for m in members])
    return members


def test_1503_members_are_notified_in_two_calls(crowd, hq_operator, org):
    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    sends = [c for c in crowd_calls(org) if c["errcode"] == 0]
    assert [len(c["body"]["touser"].split("|")) for c in sends] == [1000, 503]
    assert len({c["body"]["template_card"]["task_id"] for c in sends}) == 2  # WeCom refuses a task_id twice


def crowd_calls(org) -> list[dict]:
    from django.conf import settings

    from wecom_sandbox.control import SandboxControl

    return SandboxControl(settings.XIAOER_SANDBOX_URL).get("calls", endpoint="message/send", limit=100)["calls"]


def test_a_wecom_error_mid_batch_loses_nobody_and_the_retry_notifies_nobody_twice(crowd, hq_operator, org,
                                                                                   settings):
    settings.WECOM_MAX_ATTEMPTS = 1
    corp = notify_sandbox()
    task = staff_task(hq_operator, org)
    corp.do("faults", endpoint="message/send", errcode=-1, times=1)  # one batch of two fails
    task_notify(task_id=task.pk)
    failed = ReminderLog.objects.filter(task=task, status="failed").count()
    assert failed in (503, 1000) and Assignment.objects.filter(task=task, status="pending").count() == failed
    reminders_run(now=timezone.now() + timedelta(minutes=5))  # the beat job, after the failed rows' backoff
    assert not ReminderLog.objects.filter(task=task).exclude(status="sent").exists()
    everyone = sorted(Staff.objects.filter(store__in=[org.store_a, org.store_b]).values_list("userid", flat=True))
    assert deliveries(corp) == everyone  # each exactly once
    assert set(Assignment.objects.filter(task=task).values_list("status", flat=True)) == {"notified"}


def notify_sandbox():
    from django.conf import settings

    from wecom_sandbox.control import SandboxControl

    return SandboxControl(settings.XIAOER_SANDBOX_URL)


def test_a_member_over_the_per_minute_limit_is_deferred_and_a_later_run_sends(corp, hq_operator, org,
                                                                              monkeypatch):
    notice = app_messages.app_message_text(content="今日例会")
    for n in range(30):
        app_messages.app_message_send(userids=["a-guide"], message=notice, purpose="test", key=f"busy-{n}")
    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    row = ReminderLog.objects.get(task=task, assignment__staff=org.guide_a)
    assert row.status == "deferred" and row.retry_at is not None
    assert Assignment.objects.get(pk=row.assignment_id).status == "pending"
    assert len(cards(corp, "a-guide")) == 0 and corp.get("app_messages")["dropped"] == []
    later = app_messages._now() + 62  # a minute later, for the portal's budget and for WeCom
    monkeypatch.setattr(app_messages, "_now", lambda: later)
    corp.do("clock/advance", seconds=62)
    reminders_run(now=row.retry_at + timedelta(seconds=1))
    row.refresh_from_db()
    assert row.status == "sent" and len(cards(corp, "a-guide")) == 1


# -- the card's 收到 ------------------------------------------------------------------------------------------------
@pytest.fixture
def notified(corp, hq_operator, org, staff_of_a):
    task = staff_task(hq_operator, org)
    task_notify(task_id=task.pk)
    return task


def test_tapping_confirm_confirms_the_members_assignment_from_the_card(notified, corp, org, staff_of_a,
                                                                       django_capture_on_commit_callbacks):
    [card] = cards(corp, "a-guide")
    with django_capture_on_commit_callbacks():
        assert notify.card_clicked(click(card, "a-guide")) == "confirmed"
    event = AssignmentEvent.objects.get(assignment__task=notified, assignment__staff=org.guide_a,
                                        to_status="confirmed")
    assert (event.source, event.by) == ("card", staff_of_a)


def test_a_member_without_a_login_can_still_confirm_from_the_card(notified, corp, org,
                                                                  django_capture_on_commit_callbacks):
    [card] = cards(corp, "b-guide")
    with django_capture_on_commit_callbacks():
        notify.card_clicked(click(card, "b-guide"))
    event = AssignmentEvent.objects.get(assignment__staff=org.guide_b, to_status="confirmed")
    assert (event.source, event.by) == ("card", None)


def test_a_second_click_records_nothing_more(notified, corp, org, django_capture_on_commit_callbacks):
    [card] = cards(corp, "a-guide")
    with django_capture_on_commit_callbacks():
        notify.card_clicked(click(card, "a-guide"))
        notify.card_clicked(click(card, "a-guide", code="rc2"))
    assert AssignmentEvent.objects.filter(assignment__staff=org.guide_a, to_status="confirmed").count() == 1


def test_a_click_for_a_cancelled_task_changes_nothing(notified, corp, org, hq_operator,
                                                      django_capture_on_commit_callbacks):
    task_cancel(task=notified, by=hq_operator)
    [card] = cards(corp, "a-guide")
    with django_capture_on_commit_callbacks():
        assert notify.card_clicked(click(card, "a-guide")) == "withdrawn"
    assert not AssignmentEvent.objects.filter(to_status="confirmed").exists()


def test_a_click_on_done_work_leaves_it_done(notified, corp, org, staff_of_a, django_capture_on_commit_callbacks):
    from campaigns.tasks.services import assignment_done

    assignment_done(assignment=Assignment.objects.get(task=notified, staff=org.guide_a), by=staff_of_a)
    [card] = cards(corp, "a-guide")
    with django_capture_on_commit_callbacks():
        assert notify.card_clicked(click(card, "a-guide")) == "done"


def test_a_click_by_someone_with_no_assignment_of_the_task_changes_nothing(notified, corp, org,
                                                                          django_capture_on_commit_callbacks):
    StaffFactory(userid="c-guide", store=org.store_c)
    [card] = cards(corp, "a-guide")
    with django_capture_on_commit_callbacks():
        assert notify.card_clicked(click(card, "c-guide")) == ""
    assert not AssignmentEvent.objects.filter(to_status="confirmed").exists()


def test_a_second_card_update_is_logged_not_an_error(corp, notified, caplog):
    [card] = cards(corp, "a-guide")
    answer = corp.do("app_messages/click", userid="a-guide", task_id=card["task_id"], key="confirm")
    assert notify.card_update(response_code=answer["response_code"], userid="a-guide", label="已确认")
    assert not notify.card_update(response_code=answer["response_code"], userid="a-guide", label="已确认")
    assert "not updated" in caplog.text
    [updated] = cards(corp, "a-guide")
    assert updated["cards"]["a-guide"]["button"] == {"replace_name": "已确认"}


@pytest.mark.integration
def test_end_to_end_dispatch_card_click_callback_confirm_and_card_update(wecom_live, org, hq_operator,
                                                                        staff_of_a):
    wecom_live.do("addressbook/load", members=[{"userid": s.userid, "name": s.name, "department": [1]}
                                               for s in Staff.objects.all()])
    wecom_live.do("config", callback_duplicate=2)  # WeCom delivers the click twice
    task = staff_task(hq_operator, org)  # dispatch → (after commit) the notify task on the worker
    eventually(lambda: deliveries(wecom_live) == ["a-guide", "a-manager", "b-guide"])
    [card] = cards(wecom_live, "a-guide")
    wecom_live.do("app_messages/click", userid="a-guide", task_id=card["task_id"], key="confirm")
    wecom_live.drain()
    assignment = Assignment.objects.get(task=task, staff=org.guide_a)
    eventually(lambda: Assignment.objects.get(pk=assignment.pk).status == "confirmed")
    eventually(lambda: cards(wecom_live, "a-guide")[0]["cards"].get("a-guide"))
    assert cards(wecom_live, "a-guide")[0]["cards"]["a-guide"]["button"] == {"replace_name": "已确认"}
    assert AssignmentEvent.objects.filter(assignment=assignment, to_status="confirmed", source="card").count() == 1


# -- reminders and escalation ------------------------------------------------------------------------------------
@pytest.fixture
def planned(corp, hq_operator, org):
    """Store A's two staff (store B's guide has done the task), deadline in 48 h, the plan above."""
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff", plan=PLAN)
    task_notify(task_id=task.pk)
    Assignment.objects.filter(task=task, staff=org.guide_b).update(status="done")
    return task


def remind_cards(sandbox, userid: str) -> list[str]:
    return [m["template_card"]["main_title"]["title"] for m in cards(sandbox, userid)
            if m["template_card"]["main_title"]["title"].startswith("任务提醒")]


def test_nobody_is_reminded_before_the_first_offset(planned, corp):
    reminders_run(now=planned.deadline - timedelta(hours=25))
    assert not ReminderLog.objects.filter(kind="remind").exists()


def test_those_not_done_are_reminded_24_hours_before_the_deadline(planned, corp):
    reminders_run(now=planned.deadline - timedelta(hours=23))
    assert set(ReminderLog.objects.filter(kind="remind", status="sent").values_list("step", flat=True)) == {
        "remind-24h"}
    assert (len(remind_cards(corp, "a-guide")), len(remind_cards(corp, "b-guide"))) == (1, 0)


def test_a_reminder_step_is_never_sent_twice(planned, corp):
    reminders_run(now=planned.deadline - timedelta(hours=23))
    reminders_run(now=planned.deadline - timedelta(hours=22))
    assert len(remind_cards(corp, "a-guide")) == 1
    assert ReminderLog.objects.filter(kind="remind", assignment__staff__userid="a-guide").count() == 1


def test_the_second_offset_reminds_again_once(planned, corp):
    reminders_run(now=planned.deadline - timedelta(hours=23))
    reminders_run(now=planned.deadline - timedelta(hours=1))
    reminders_run(now=planned.deadline - timedelta(minutes=30))
    assert len(remind_cards(corp, "a-guide")) == 2


def test_a_missed_window_is_not_sent_late_with_the_next(planned, corp):
    reminders_run(now=planned.deadline - timedelta(hours=1))  # beat was down for a day
    assert set(ReminderLog.objects.filter(kind="remind").values_list("step", flat=True)) == {"remind-2h"}
    assert len(remind_cards(corp, "a-guide")) == 1


def test_a_confirmed_member_is_still_reminded_until_done(planned, corp, org, staff_of_a):
    from campaigns.tasks.services import assignment_confirm

    assignment_confirm(assignment=Assignment.objects.get(task=planned, staff=org.guide_a), by=staff_of_a)
    reminders_run(now=planned.deadline - timedelta(hours=23))
    assert len(remind_cards(corp, "a-guide")) == 1


@pytest.fixture
def region_manager_with_wecom(org):
    member = StaffFactory(userid="east-rm", name="华东区经", store=None, position=Staff.Position.HQ)
    user = UserFactory(username="east_rm")
    access_grant(user=user, role=Role.REGION_MANAGER, regions=[org.east], staff=member)
    return member


def escalations(sandbox, userid: str) -> list[str]:
    return [m["textcard"]["title"] for m in sandbox.get("app_messages", userid=userid)["app_messages"]
            if m["msgtype"] == "textcard"]


def test_after_the_deadline_work_is_overdue_and_the_store_manager_is_told(planned, corp,
                                                                        region_manager_with_wecom):
    corp.do("addressbook/load", members=[{"userid": "east-rm", "name": "华东区经", "department": [1]}])
    reminders_run(now=planned.deadline + timedelta(hours=3))
    assert set(Assignment.objects.filter(task=planned, store__code="A001").values_list("status", flat=True)) == {
        "overdue"}
    assert escalations(corp, "a-manager") == [f"任务逾期：{planned.title}"]
    assert escalations(corp, "east-rm") == []


def test_a_day_after_the_deadline_the_region_manager_is_told(planned, corp, region_manager_with_wecom):
    corp.do("addressbook/load", members=[{"userid": "east-rm", "name": "华东区经", "department": [1]}])
    reminders_run(now=planned.deadline + timedelta(hours=3))
    reminders_run(now=planned.deadline + timedelta(hours=25))
    reminders_run(now=planned.deadline + timedelta(hours=26))
    assert escalations(corp, "a-manager") == [f"任务逾期：{planned.title}"]
    assert escalations(corp, "east-rm") == [f"门店任务逾期：{planned.title}"]
    rows = ReminderLog.objects.filter(task=planned, kind="escalate").values_list("store__code", "step", "status")
    assert sorted(rows) == [("A001", "escalate-24h", "sent"), ("A001", "escalate-2h", "sent")]


def test_a_store_whose_work_is_done_is_not_escalated(planned, corp):
    reminders_run(now=planned.deadline + timedelta(hours=3))
    assert not ReminderLog.objects.filter(task=planned, kind="escalate", store__code="B001").exists()


def test_a_region_manager_without_a_wecom_account_is_shown_as_skipped(planned, corp, region_manager_east):
    reminders_run(now=planned.deadline + timedelta(hours=25))
    row = ReminderLog.objects.get(task=planned, step="escalate-24h")
    assert (row.status, row.detail) == ("skipped", "没有绑定企业微信账号的区域经理")


def test_a_cancelled_task_reminds_nobody(planned, corp, hq_operator):
    task_cancel(task=planned, by=hq_operator)
    reminders_run(now=planned.deadline - timedelta(hours=1))
    assert remind_cards(corp, "a-guide") == []


def test_the_reminder_log_is_shown_on_the_tasks_admin_page(planned, corp, client, hq_operator):
    reminders_run(now=planned.deadline - timedelta(hours=23))
    client.force_login(hq_operator)
    page = client.get(f"/admin/campaigns/task/{planned.pk}/change/").content.decode()
    assert "通知、提醒与升级" in page and "remind-24h" in page and "李导购" in page


def test_sending_with_nothing_due_makes_no_call(planned, corp):
    before = len(crowd_calls(None))
    assert notices_send().calls == 0 and len(crowd_calls(None)) == before


# -- the card's link ------------------------------------------------------------------------------------------------
def test_the_cards_link_opens_the_members_own_assignment(notified, client, staff_of_a, org):
    client.force_login(staff_of_a)
    response = client.get(f"/m/tasks/open/{notified.pk}/")
    mine = Assignment.objects.get(task=notified, staff=org.guide_a)
    assert response.status_code == 302 and (str(mine.pk) in response["Location"] or response["Location"] == "/m/")


def test_the_cards_link_in_wecom_signs_the_member_in_through_wecom_first(notified, client):
    response = client.get(f"/m/tasks/open/{notified.pk}/", HTTP_USER_AGENT="Mozilla/5.0 wxwork/4.1.22")
    assert response.status_code == 302 and response["Location"].startswith("/m/wecom/?next=")


def test_the_cards_link_to_another_stores_task_is_not_found(corp, hq_operator, org, staff_of_a, client):
    theirs = task_dispatched(by=hq_operator, stores=[org.store_b], executor="staff")
    client.force_login(staff_of_a)
    assert client.get(f"/m/tasks/open/{theirs.pk}/").status_code == 404


def test_a_store_managers_nudge_reaches_the_guide_once_as_a_card_after_commit(corp, org, hq_operator,
                                                                            store_manager_of_a):
    from campaigns.tasks.notify import assignment_nudge_send
    from campaigns.tasks.services import assignment_nudge

    task = staff_task(hq_operator, org)
    work = Assignment.objects.get(task=task, staff=org.guide_a)

    assert assignment_nudge(assignment=work, by=store_manager_of_a).sent
    nudges = [m for m in cards(corp, org.guide_a.userid) if "店长催办" in m["template_card"]["main_title"]["title"]]
    assert nudges == []  # nothing inside the nudge's transaction: the job sends after commit
    assert assignment_nudge_send(assignment_id=work.pk, at=1_800_000_000)
    assert not assignment_nudge_send(assignment_id=work.pk, at=1_800_000_000)  # the same nudge: once
    nudges = [m for m in cards(corp, org.guide_a.userid) if "店长催办" in m["template_card"]["main_title"]["title"]]
    assert len(nudges) == 1 and nudges[0]["touser"] == [org.guide_a.userid]
