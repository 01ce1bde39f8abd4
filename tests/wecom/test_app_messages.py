"""App messages from the portal (portal/wecom/app_messages.py): batches, the per-member budget, the daily cap,
faults, idempotency, and template cards end to end (send → click → callback → listener → update)."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from portal.wecom import app_messages
from portal.wecom.app_messages import (
    AppMessageInvalid,
    CardButton,
    CardUpdateRefused,
    app_message_card_buttons,
    app_message_send,
    app_message_text,
    app_message_textcard,
    card_click_parse,
    template_card_listen,
    template_card_update,
)
from portal.wecom.callbacks import event_parse
from portal.wecom.gateway import _redis
from portal.wecom.models import AppMessageReceipt, CallbackEvent
from tests.conftest import eventually
from tests.wecom.helpers import event_xml, signed_post

NOTICE = app_message_text(content="今日任务已下发")


@pytest.fixture(autouse=True)
def _fresh_budget():
    """Each test starts with untouched per-member budgets (they live in the shared Redis)."""
    redis = _redis()
    for key in redis.scan_iter("xiaoer:wecom:appmsg:*"):
        redis.delete(key)


@pytest.fixture
def team(sandbox, db):
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店", "parentid": 1}],
               members=[{"userid": u, "name": n, "department": [2]}
                        for u, n in (("zhangsan", "张三"), ("lisi", "李四"), ("wangwu", "王五"))])
    return sandbox


@pytest.fixture
def crowd(sandbox, db):
    """2,500 members (as in a region's stores)."""
    userids = [f"guide{n:04d}" for n in range(2500)]
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "华东大区", "parentid": 1}],
               members=[{"userid": u, "name": u, "department": [2]} for u in userids])
    return userids


def send_calls(sandbox) -> list[dict]:
    return [c for c in sandbox.get("calls", endpoint="message/send", limit=2000)["calls"] if c["errcode"] == 0]


def received(sandbox, userid: str) -> int:
    return len(sandbox.get("app_messages", userid=userid)["app_messages"])


# -- batches ----------------------------------------------------------------------------------------------------
def test_2500_recipients_go_out_in_three_calls(sandbox, crowd):
    result = app_message_send(userids=crowd, message=NOTICE, purpose="test", key="notice-1")
    assert sorted(result.sent) == crowd and len(result.msgids) == 3
    assert [len(c["body"]["touser"].split("|")) for c in send_calls(sandbox)] == [1000, 1000, 500]


def test_the_same_member_listed_twice_is_sent_once(team):
    result = app_message_send(userids=["zhangsan", "zhangsan", "lisi"], message=NOTICE, purpose="test", key="k")
    assert sorted(result.sent) == ["lisi", "zhangsan"] and received(team, "zhangsan") == 1


def test_unknown_members_are_reported_invalid_and_not_claimed(team):
    result = app_message_send(userids=["zhangsan", "ghost"], message=NOTICE, purpose="test", key="k")
    assert (result.sent, result.invalid) == (["zhangsan"], ["ghost"]), result
    assert list(AppMessageReceipt.objects.values_list("userid", flat=True)) == ["zhangsan"]


def test_a_call_where_nobody_is_known_reports_everyone_invalid(team):
    result = app_message_send(userids=["ghost", "phantom"], message=NOTICE, purpose="test", key="k")
    assert (result.sent, sorted(result.invalid), result.failed) == ([], ["ghost", "phantom"], [])


# -- the per-member budget ---------------------------------------------------------------------------------------
def test_a_member_who_got_30_this_minute_is_deferred_not_sent(team):
    for n in range(30):
        app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key=f"k{n}")
    before = timezone.now()
    result = app_message_send(userids=["zhangsan", "lisi"], message=NOTICE, purpose="test", key="k30")
    assert result.sent == ["lisi"] and list(result.deferred) == ["zhangsan"]
    assert before < result.deferred["zhangsan"] <= before + timedelta(seconds=62)
    assert received(team, "zhangsan") == 30 and team.get("app_messages")["dropped"] == []


def test_a_deferred_member_is_not_claimed_so_a_retry_sends_later(team):
    for n in range(30):
        app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key=f"k{n}")
    app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="late")
    assert not AppMessageReceipt.objects.filter(key="late").exists()


def test_the_hourly_budget_defers_too(team, settings):
    settings.WECOM_APP_MESSAGE_PER_MEMBER_HOUR = 3
    for n in range(3):
        app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key=f"k{n}")
    result = app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="k3")
    assert result.deferred["zhangsan"] > timezone.now() + timedelta(minutes=59)
    assert received(team, "zhangsan") == 3


def test_past_the_daily_cap_members_wait_for_the_next_beijing_day(team, settings):
    settings.WECOM_APP_MESSAGE_PER_DAY = 2
    result = app_message_send(userids=["zhangsan", "lisi", "wangwu"], message=NOTICE, purpose="test", key="k")
    assert result.sent == ["zhangsan", "lisi"] and list(result.deferred) == ["wangwu"]
    tomorrow = result.deferred["wangwu"].astimezone(ZoneInfo("Asia/Shanghai"))
    assert (tomorrow.hour, tomorrow.minute) == (0, 0)
    assert tomorrow.date() == datetime.now(ZoneInfo("Asia/Shanghai")).date() + timedelta(days=1)
    assert received(team, "wangwu") == 0


def test_invalid_members_do_not_use_up_the_daily_cap(team, settings):
    settings.WECOM_APP_MESSAGE_PER_DAY = 2
    app_message_send(userids=["ghost", "zhangsan"], message=NOTICE, purpose="test", key="k1")
    assert app_message_send(userids=["lisi"], message=NOTICE, purpose="test", key="k2").sent == ["lisi"]


# -- faults -------------------------------------------------------------------------------------------------------
def test_a_wecom_error_mid_batch_loses_nobody_and_a_retry_notifies_nobody_twice(sandbox, crowd, settings):
    settings.WECOM_MAX_ATTEMPTS = 2
    sandbox.do("faults", endpoint="message/send", errcode=-1, times=2, after=1)  # the 2nd batch fails twice
    first = app_message_send(userids=crowd, message=NOTICE, purpose="test", key="notice")
    assert (len(first.sent), len(first.failed), first.deferred) == (1500, 1000, {})
    assert set(first.sent) | set(first.failed) == set(crowd) and first.errors
    again = app_message_send(userids=crowd, message=NOTICE, purpose="test", key="notice")
    assert sorted(again.sent) == sorted(first.failed) and len(again.skipped) == 1500
    deliveries = [u for m in sandbox.get("app_messages")["app_messages"] for u in m["touser"]]
    assert sorted(deliveries) == crowd  # everyone exactly once


def test_a_failed_batch_gives_its_budget_back(team, settings):
    settings.WECOM_MAX_ATTEMPTS, settings.WECOM_APP_MESSAGE_PER_DAY = 1, 1
    team.do("faults", endpoint="message/send", errcode=-1, times=1)
    assert app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="k").failed == ["zhangsan"]
    assert app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="k").sent == ["zhangsan"]


def test_a_transient_error_is_retried_by_the_gateway_and_sends_once(team):
    team.do("faults", endpoint="message/send", errcode=45009, times=1)
    result = app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="k")
    assert result.sent == ["zhangsan"] and received(team, "zhangsan") == 1


# -- idempotency ---------------------------------------------------------------------------------------------------
def test_the_same_key_twice_sends_once(team):
    app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="task-1:notify")
    again = app_message_send(userids=["zhangsan", "lisi"], message=NOTICE, purpose="test", key="task-1:notify")
    assert (again.sent, again.skipped) == (["lisi"], ["zhangsan"]) and received(team, "zhangsan") == 1


def test_another_key_is_another_message(team):
    app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="task-1:notify")
    assert app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="task-1:remind").sent


def test_a_send_needs_a_key(team):
    with pytest.raises(AppMessageInvalid):
        app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="")


# -- builders -------------------------------------------------------------------------------------------------------
def test_a_textcard_links_into_the_mobile_page(team, settings):
    settings.XIAOER_PUBLIC_URL = "https://xiaoer.example.com"
    card = app_message_textcard(title="新任务", description="雨天陈列", url="tasks/42/", btntxt="查看")
    app_message_send(userids=["zhangsan"], message=card, purpose="test", key="k")
    [message] = team.get("app_messages", userid="zhangsan")["app_messages"]
    assert message["textcard"] == {"title": "新任务", "description": "雨天陈列",
                                   "url": "https://xiaoer.example.com/m/tasks/42/", "btntxt": "查看"}


@pytest.mark.parametrize("kwargs", [
    {"title": ""}, {"task_id": "has space"}, {"task_id": "x" * 129}, {"buttons": []},
    {"buttons": [CardButton(key="a", text="A"), CardButton(key="a", text="B")]},
    {"buttons": [CardButton(key=f"k{n}", text="B") for n in range(7)]},
], ids=["no title", "task_id with a space", "task_id too long", "no button", "duplicate keys", "seven buttons"])
def test_a_card_wecom_would_refuse_is_refused_before_sending(kwargs):
    card = {"title": "新任务", "description": "今天完成", "task_id": "task-1", "url": "tasks/1/",
            "buttons": [CardButton(key="confirm", text="收到")], **kwargs}
    with pytest.raises(AppMessageInvalid):
        app_message_card_buttons(**card)


def test_a_card_sent_returns_its_response_code(team):
    card = app_message_card_buttons(title="新任务", description="今天完成", task_id="task-rc",
                                    buttons=[CardButton(key="confirm", text="收到")], url="tasks/1/")
    result = app_message_send(userids=["zhangsan"], message=card, purpose="test", key="k")
    assert len(result.response_codes) == 1
    assert AppMessageReceipt.objects.get(key="k").response_code == result.response_codes[0]


def test_a_card_for_more_recipients_than_one_call_takes_is_refused_before_anything_is_sent(team):
    card = app_message_card_buttons(title="新任务", description="今天完成", task_id="task-big",
                                    buttons=[CardButton(key="confirm", text="收到")], url="tasks/1/")

    with pytest.raises(AppMessageInvalid, match="最多发给 1000 人"):
        app_message_send(userids=[f"m{n}" for n in range(1001)], message=card, purpose="test", key="big")

    assert not AppMessageReceipt.objects.filter(key="big").exists()


# -- template_card_event ----------------------------------------------------------------------------------------------
def test_the_click_event_parses_nested_selected_items():
    xml = event_xml("template_card_event", EventKey="submit", TaskId="vote-1", CardType="vote_interaction",
                    ResponseCode="rc1", AgentID=1000002,
                    SelectedItems={"SelectedItem": [
                        {"QuestionKey": "plan", "OptionIds": {"OptionId": ["a", "b"]}},
                        {"QuestionKey": "time", "OptionIds": {"OptionId": ["am"]}}]})
    click = card_click_parse(event_parse(xml))
    assert (click.task_id, click.key, click.response_code, click.card_type) == (
        "vote-1", "submit", "rc1", "vote_interaction")
    assert click.selected == {"plan": ["a", "b"], "time": ["am"]}


@pytest.fixture
def clicks():
    """A listener for cards whose task_id starts with "e2e-", collecting what it gets."""
    got: list = []
    template_card_listen(task_id_prefix="e2e-", handler=got.append)
    yield got
    app_messages._LISTENERS.pop("e2e-", None)


def _card(task_id: str):
    return app_message_card_buttons(title="新任务：雨天陈列", description="今天 18:00 前完成", task_id=task_id,
                                    buttons=[CardButton(key="confirm", text="收到")], url="tasks/42/")


@pytest.mark.integration
def test_a_click_reaches_the_listener_and_updates_the_card_once(wecom_live, clicks):
    wecom_live.do("addressbook/load", members=[{"userid": "zhangsan", "name": "张三", "department": [1]}])
    app_message_send(userids=["zhangsan"], message=_card("e2e-task-42"), purpose="test", key="e2e")
    wecom_live.do("app_messages/click", userid="zhangsan", task_id="e2e-task-42", key="confirm")
    wecom_live.drain()
    [click] = eventually(lambda: clicks)
    assert (click.userid, click.task_id, click.key, bool(click.response_code)) == (
        "zhangsan", "e2e-task-42", "confirm", True)
    assert CallbackEvent.objects.get(event="template_card_event").status == "done"
    assert template_card_update(response_code=click.response_code, userids=["zhangsan"]) == []
    [card] = wecom_live.get("app_messages", userid="zhangsan")["app_messages"]
    assert card["cards"]["zhangsan"]["button"] == {"replace_name": "已确认"}
    with pytest.raises(CardUpdateRefused) as refused:
        template_card_update(response_code=click.response_code, userids=["zhangsan"])
    assert refused.value.errcode == 40058


@pytest.mark.integration
def test_a_duplicated_click_callback_runs_the_listener_once(wecom_live, clicks):
    wecom_live.do("config", callback_duplicate=3)
    wecom_live.do("addressbook/load", members=[{"userid": "lisi", "name": "李四", "department": [1]}])
    app_message_send(userids=["lisi"], message=_card("e2e-dup"), purpose="test", key="e2e")
    wecom_live.do("app_messages/click", userid="lisi", task_id="e2e-dup", key="confirm")
    wecom_live.drain()
    assert wecom_live.get("callbacks")["delivered"] == 3
    eventually(lambda: CallbackEvent.objects.filter(event="template_card_event", status="done").exists())
    assert len(clicks) == 1 and CallbackEvent.objects.filter(event="template_card_event").count() == 1


@pytest.mark.integration
def test_clicks_delivered_out_of_order_are_each_processed(wecom_live, clicks):
    wecom_live.do("addressbook/load", members=[{"userid": u, "name": u, "department": [1]} for u in ("a1", "a2")])
    app_message_send(userids=["a1", "a2"], message=_card("e2e-order"), purpose="test", key="e2e")
    wecom_live.do("config", callback_hold=True)
    wecom_live.do("app_messages/click", userid="a1", task_id="e2e-order", key="confirm")
    wecom_live.do("app_messages/click", userid="a2", task_id="e2e-order", key="confirm")
    wecom_live.do("callbacks/release", order="reverse")
    wecom_live.drain()
    eventually(lambda: len(clicks) == 2)
    assert sorted(c.userid for c in clicks) == ["a1", "a2"]


def test_a_click_for_a_prefix_nobody_listens_to_is_stored_and_done(db):
    from portal.wecom.callbacks import callback_store
    from portal.wecom.events import callback_event_process

    stored = callback_store(fields=event_parse(event_xml("template_card_event", EventKey="confirm",
                                                         TaskId="other-1", ResponseCode="rc")))
    assert callback_event_process(event_id=stored.event_id) == "done"


def test_a_forged_click_callback_is_refused_and_stores_nothing(live_server, db):
    xml = event_xml("template_card_event", EventKey="confirm", TaskId="e2e-forged", ResponseCode="rc")
    query, body = signed_post(xml, token="not-our-token")
    request = urllib.request.Request(f"{live_server.url}/wecom/callback/?{query}", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403 and not CallbackEvent.objects.exists()


def test_a_second_listener_for_the_same_prefix_is_refused(clicks):
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        template_card_listen(task_id_prefix="e2e-", handler=lambda click: None)


def test_the_agent_id_is_sent_as_wecom_expects(team):
    app_message_send(userids=["zhangsan"], message=NOTICE, purpose="test", key="k")
    [call] = send_calls(team)
    assert str(call["body"]["agentid"]) == str(settings.WECOM_AGENT_ID)
