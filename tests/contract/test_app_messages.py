"""Contract: app messages (message/send) within WeCom's limits, template cards, their updates and clicks.

WeCom's rules (WECOM.md, app messages): per app each member gets at most 30 a minute and 1,000 an hour and the
excess is silently dropped; a daily cap per app (账号上限数 × 200 recipients); toparty/totag ≤ 100; a card's
response_code updates it once within 24 h; a click arrives as an encrypted template_card_event callback.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import pytest
from django.conf import settings
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException

from portal.wecom.callbacks import event_parse

DAY = 86400


@pytest.fixture
def team(sandbox):
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店", "parentid": 1}],
               members=[{"userid": "zhangsan", "name": "张三", "department": [2]},
                        {"userid": "lisi", "name": "李四", "department": [2]}])
    return sandbox


def send(wechat, body: dict) -> dict:
    return wechat.post("message/send", data={"agentid": int(settings.WECOM_AGENT_ID), **body})


def text_to(wechat, users: str, content: str = "今日排班已更新") -> dict:
    return send(wechat, {"touser": users, "msgtype": "text", "text": {"content": content}})


def errcode_of(call) -> int:
    with pytest.raises(WeChatClientException) as caught:
        call()
    return caught.value.errcode


def button_card(task_id: str | None = "task-1", buttons: list | None = None, **extra) -> dict:
    card = {"card_type": "button_interaction", "main_title": {"title": "新任务", "desc": "今天完成"},
            "button_list": [{"text": "收到", "style": 1, "key": "confirm"}] if buttons is None else buttons, **extra}
    if task_id is not None:
        card["task_id"] = task_id
    return card


def card_to(wechat, users: str, card: dict) -> dict:
    return send(wechat, {"touser": users, "msgtype": "template_card", "template_card": card})


def received(sandbox, userid: str) -> int:
    return len(sandbox.get("app_messages", userid=userid)["app_messages"])


# -- per-member limits: the excess is dropped silently ---------------------------------------------------------
def test_a_member_past_30_messages_a_minute_gets_nothing_and_the_call_still_succeeds(wechat, team):
    for n in range(30):
        text_to(wechat, "zhangsan", f"第{n}条")
    over = text_to(wechat, "zhangsan|lisi", "第31条")
    assert over["errcode"] == 0 and over["msgid"] and over["invaliduser"] == ""
    assert (received(team, "zhangsan"), received(team, "lisi")) == (30, 1)
    assert [d["userid"] for d in team.get("app_messages")["dropped"]] == ["zhangsan"]


def test_the_dropped_message_is_recorded_in_the_control_view(wechat, team):
    for _ in range(30):
        text_to(wechat, "zhangsan")
    over = text_to(wechat, "zhangsan")
    [dropped] = team.get("app_messages", userid="zhangsan")["dropped"]
    assert (dropped["msgid"], dropped["userid"]) == (over["msgid"], "zhangsan")


def test_a_minute_later_the_member_receives_again(wechat, team):
    for _ in range(31):
        text_to(wechat, "zhangsan")
    team.do("clock/advance", seconds=61)
    text_to(wechat, "zhangsan")
    assert received(team, "zhangsan") == 31 and len(team.get("app_messages")["dropped"]) == 1


def test_a_member_past_the_hourly_limit_gets_nothing_even_in_a_quiet_minute(wechat, team):
    team.do("config", app_message_per_member_hour=35)  # 1,000 by default; a small hour keeps the test short
    for _ in range(30):
        text_to(wechat, "zhangsan")
    team.do("clock/advance", seconds=61)
    for _ in range(6):
        text_to(wechat, "zhangsan")
    assert received(team, "zhangsan") == 35 and len(team.get("app_messages")["dropped"]) == 1


def test_the_limits_default_to_wecoms(team):
    config = team.get("config")["config"]
    assert (config["app_message_per_member_minute"], config["app_message_per_member_hour"]) == (30, 1000)
    assert team.get("app_messages")["today"]["cap"] == config["account_limit"] * 200


# -- the app's daily cap ----------------------------------------------------------------------------------------
def test_past_the_daily_cap_the_call_fails_with_45009_and_nobody_receives_it(wechat, team, settings):
    settings.WECOM_MAX_ATTEMPTS = 1
    team.do("config", app_message_per_day=3)
    text_to(wechat, "zhangsan|lisi")
    assert errcode_of(lambda: text_to(wechat, "zhangsan|lisi", "超额")) == 45009
    assert (received(team, "zhangsan"), received(team, "lisi")) == (1, 1)
    assert team.get("app_messages")["today"] == {"recipients": 2, "cap": 3}


def test_the_daily_cap_counts_recipients_per_beijing_day(wechat, team):
    team.do("config", app_message_per_day=2)
    text_to(wechat, "zhangsan|lisi")
    team.do("clock/advance", seconds=DAY)
    assert text_to(wechat, "zhangsan|lisi")["errcode"] == 0


# -- recipients -------------------------------------------------------------------------------------------------
def test_at_most_100_departments_or_tags(wechat, team):
    parties = "|".join(str(n) for n in range(1, 102))
    assert errcode_of(lambda: send(wechat, {"toparty": parties, "msgtype": "text", "text": {"content": "x"}})) == 40058
    assert errcode_of(lambda: send(wechat, {"touser": "zhangsan", "totag": parties, "msgtype": "text",
                                            "text": {"content": "x"}})) == 40058


# -- template cards ---------------------------------------------------------------------------------------------
def test_an_interactive_card_answers_a_response_code(wechat, team):
    answer = card_to(wechat, "zhangsan", button_card())
    assert answer["response_code"] and answer["msgid"]


def test_a_notice_card_without_an_action_menu_has_no_response_code(wechat, team):
    notice = {"card_type": "text_notice", "main_title": {"title": "通知"},
              "card_action": {"type": 1, "url": "https://example.com"}}
    assert "response_code" not in card_to(wechat, "zhangsan", notice)


@pytest.mark.parametrize("card", [
    button_card(task_id=None),
    button_card(buttons=[]),
    button_card(buttons=[{"text": "收到"}]),
    button_card(buttons=[{"text": "收到", "key": "a"}, {"text": "拒绝", "key": "a"}]),
    button_card(buttons=[{"text": f"按钮{n}", "key": f"k{n}"} for n in range(7)]),
    button_card(buttons=[{"text": "打开", "type": 1}]),
    button_card(task_id="has space"),
    button_card(main_title={}),
    {"card_type": "text_notice", "main_title": {"title": "通知"}},
    {"card_type": "vote_interaction", "main_title": {"title": "投票"}, "task_id": "vote-1",
     "checkbox": {"question_key": "q", "option_list": [{"id": "a", "text": "A"}]}},
], ids=["no task_id", "no buttons", "a button without key", "duplicate keys", "seven buttons", "url button without url",
        "task_id with a space", "no main title", "notice without card_action", "vote without submit button"])
def test_a_card_missing_what_its_type_requires_is_refused_with_40058(wechat, team, card):
    assert errcode_of(lambda: card_to(wechat, "zhangsan", card)) == 40058
    assert received(team, "zhangsan") == 0


def test_an_unknown_card_type_is_42031(wechat, team):
    assert errcode_of(lambda: card_to(wechat, "zhangsan", {**button_card(), "card_type": "poll"})) == 42031


def test_a_task_id_is_unique_per_app(wechat, team):
    card_to(wechat, "zhangsan", button_card(task_id="task-7"))
    assert errcode_of(lambda: card_to(wechat, "lisi", button_card(task_id="task-7"))) == 40058
    assert received(team, "lisi") == 0


# -- update_template_card ---------------------------------------------------------------------------------------
def update(wechat, code: str, userids: list[str]) -> dict:
    return wechat.post("message/update_template_card", data={
        "agentid": int(settings.WECOM_AGENT_ID), "response_code": code, "userids": userids,
        "button": {"replace_name": "已确认"}})


def test_a_response_code_updates_the_card_once(wechat, team):
    code = card_to(wechat, "zhangsan|lisi", button_card())["response_code"]
    assert update(wechat, code, ["zhangsan"])["errcode"] == 0
    [card] = team.get("app_messages", userid="zhangsan")["app_messages"]
    assert card["cards"]["zhangsan"]["button"] == {"replace_name": "已确认"} and "lisi" not in card["cards"]
    assert errcode_of(lambda: update(wechat, code, ["lisi"])) == 40058


def test_a_response_code_expires_after_24_hours(wechat, team):
    code = card_to(wechat, "zhangsan", button_card())["response_code"]
    team.do("clock/advance", seconds=DAY + 1)
    assert errcode_of(lambda: update(wechat, code, ["zhangsan"])) == 40058


def test_within_24_hours_the_code_still_works(wechat, team):
    code = card_to(wechat, "zhangsan", button_card())["response_code"]
    team.do("clock/advance", seconds=DAY - 60)
    assert update(wechat, code, ["zhangsan"])["errcode"] == 0


def test_an_unknown_response_code_is_refused(wechat, team):
    assert errcode_of(lambda: update(wechat, "sbxrc-forged", ["zhangsan"])) == 40058


# -- clicks: the template_card_event callback --------------------------------------------------------------------
class _Portal(BaseHTTPRequestHandler):
    posts: list[tuple[dict, bytes]]

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.posts.append((dict(parse_qsl(urlsplit(self.path).query)), body))
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"success")

    def log_message(self, *args):
        return


@pytest.fixture
def callback_inbox(team):
    """A stand-in for the portal's callback URL: records what the sandbox posts."""
    handler = type("Inbox", (_Portal,), {"posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    team.do("config", callback_url=f"http://127.0.0.1:{server.server_address[1]}/wecom/callback/")
    yield handler.posts
    team.do("config", callback_url="")
    server.shutdown()


def _decrypted(query: dict, body: bytes) -> dict:
    crypto = WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)
    plaintext = crypto.decrypt_message(body, query["msg_signature"], query["timestamp"], query["nonce"])
    return event_parse(plaintext)


def test_a_click_posts_a_signed_encrypted_template_card_event(wechat, team, callback_inbox):
    sent = card_to(wechat, "zhangsan", button_card(task_id="task-click"))
    clicked = team.do("app_messages/click", userid="zhangsan", task_id="task-click", key="confirm")
    assert team.drain()["drained"]
    [(query, body)] = callback_inbox
    fields = _decrypted(query, body)  # wechatpy checks msg_signature first
    assert fields == {"ToUserName": settings.WECOM_CORP_ID, "FromUserName": "zhangsan",
                      "CreateTime": fields["CreateTime"], "MsgType": "event", "Event": "template_card_event",
                      "EventKey": "confirm", "TaskId": "task-click", "CardType": "button_interaction",
                      "ResponseCode": clicked["response_code"], "AgentID": str(settings.WECOM_AGENT_ID)}
    assert fields["CreateTime"].isdigit() and clicked["response_code"] != sent["response_code"]
    assert ElementTree.fromstring(body).findtext("AgentID") == str(settings.WECOM_AGENT_ID)


def test_every_click_has_a_fresh_response_code_that_updates_once(wechat, team):
    card_to(wechat, "zhangsan|lisi", button_card(task_id="task-two"))
    first = team.do("app_messages/click", userid="zhangsan", task_id="task-two", key="confirm")["response_code"]
    second = team.do("app_messages/click", userid="lisi", task_id="task-two", key="confirm")["response_code"]
    assert first != second
    assert update(wechat, first, ["zhangsan"])["errcode"] == 0
    assert errcode_of(lambda: update(wechat, first, ["zhangsan"])) == 40058
    assert update(wechat, second, ["lisi"])["errcode"] == 0


def test_a_vote_click_carries_the_selected_items(wechat, team, callback_inbox):
    card_to(wechat, "zhangsan", {
        "card_type": "vote_interaction", "main_title": {"title": "选择陈列方案"}, "task_id": "vote-2",
        "checkbox": {"question_key": "plan", "mode": 1,
                     "option_list": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}]},
        "submit_button": {"text": "提交", "key": "submit"}})
    team.do("app_messages/click", userid="zhangsan", task_id="vote-2", key="submit",
            selected_items={"plan": ["a", "b"]})
    team.drain()
    fields = _decrypted(*callback_inbox[0])
    assert fields["SelectedItems"] == {"SelectedItem": {"QuestionKey": "plan", "OptionIds": {"OptionId": ["a", "b"]}}}


def test_a_member_who_did_not_receive_the_card_cannot_click_it(wechat, team):
    for _ in range(30):
        text_to(wechat, "zhangsan")
    card_to(wechat, "zhangsan|lisi", button_card(task_id="task-dropped"))  # dropped for zhangsan
    from wecom_sandbox.control import SandboxControlError

    with pytest.raises(SandboxControlError):
        team.do("app_messages/click", userid="zhangsan", task_id="task-dropped", key="confirm")
    assert team.do("app_messages/click", userid="lisi", task_id="task-dropped", key="confirm")["response_code"]


def test_an_updated_button_cannot_be_clicked_again(wechat, team):
    code = card_to(wechat, "zhangsan", button_card(task_id="task-done"))["response_code"]
    update(wechat, code, ["zhangsan"])
    from wecom_sandbox.control import SandboxControlError

    with pytest.raises(SandboxControlError):
        team.do("app_messages/click", userid="zhangsan", task_id="task-done", key="confirm")
