"""Contract: succession of customers and group chats (在职继承, 离职继承, 客户群分配) over HTTP.

wechatpy's own methods where it has them (get_unassigned_list, groupchat list/get), the gateway for the
rest; the sandbox plays the customers who refuse, the members who leave and the clock that runs 24 h.
"""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from wechatpy.exceptions import WeChatClientException

from portal.wecom.gateway import WeComError
from wecom_sandbox.control import SandboxControlError

TRANSFER = "externalcontact/transfer_customer"
RESULT = "externalcontact/transfer_result"
RESIGNED_TRANSFER = "externalcontact/resigned/transfer_customer"
RESIGNED_RESULT = "externalcontact/resigned/transfer_result"
DAY = 86_400


def load(sandbox, customers=(), follows=()):
    """Seed customers and member–customer follows quietly; a follow is (userid, external_userid) or a dict."""
    sandbox.do("customers/load", customers=[{"external_userid": c, "name": f"客户{c}"} for c in customers],
               follows=[f if isinstance(f, dict) else {"userid": f[0], "external_userid": f[1]} for f in follows])


def errcodes(answer: dict) -> list[tuple[str, int]]:
    return [(c["external_userid"], c["errcode"]) for c in answer["customer"]]


def follows_of(sandbox, external_userid: str) -> dict[str, dict]:
    return {f["userid"]: f for f in sandbox.get("transfers", external_userid=external_userid)["follows"]}


def wecom_error(call, *args, **kwargs) -> int:
    with pytest.raises(WeComError) as caught:
        call(*args, **kwargs)
    return caught.value.errcode


class Callbacks:
    """The callbacks fired since this test began, as dicts of their plaintext XML."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.mark()

    @staticmethod
    def _count(data: dict) -> int:
        return data["delivered"] + data["failed"]  # every delivery is logged once, "no callback_url" counts as failed

    def mark(self) -> None:
        self.sandbox.drain()
        self.start = self._count(self.sandbox.get("callbacks", limit=1))

    def new(self, event: str | None = None) -> list[dict]:
        self.sandbox.drain()
        data = self.sandbox.get("callbacks", limit=5000)
        count = self._count(data) - self.start
        events = [_parse(entry["xml"]) for entry in (data["log"][-count:] if count else [])]
        return [e for e in events if event is None or e["Event"] == event]


def _parse(xml: str) -> dict:
    return {child.tag: child.text if len(child) == 0 else {g.tag: g.text for g in child}
            for child in ElementTree.fromstring(xml)}


@pytest.fixture
def team(sandbox):
    sandbox.do("addressbook/load", members=[{"userid": "zhang", "name": "张三"}, {"userid": "li", "name": "李四"},
                                            {"userid": "wang", "name": "王五"}])


@pytest.fixture
def callbacks(sandbox, team):
    return Callbacks(sandbox)


@pytest.fixture
def customer_limit(sandbox):
    sandbox.do("config", customer_limit=2)
    yield 2
    sandbox.do("config", customer_limit=5000)  # the sandbox fixture's reset keeps config


def result(wecom, handover: str, takeover: str, endpoint: str = RESULT, **extra) -> dict:
    return wecom(endpoint, data={"handover_userid": handover, "takeover_userid": takeover, **extra})


def transfer(wecom, handover: str, takeover: str, ids: list[str], endpoint: str = TRANSFER, **extra) -> dict:
    return wecom(endpoint, data={"handover_userid": handover, "takeover_userid": takeover, "external_userid": ids,
                                 **extra})


# -- on-job transfers -------------------------------------------------------------------------------------
def test_transfer_customer_takes_1_to_100_customers_and_checks_its_members(wecom, sandbox, team):
    ids = [f"wm{i:03d}" for i in range(101)]
    load(sandbox, ids, [("zhang", i) for i in ids])
    assert wecom_error(transfer, wecom, "zhang", "li", ids) == 40058
    assert wecom_error(transfer, wecom, "zhang", "li", []) == 41035
    assert wecom_error(transfer, wecom, "zhang", "li", ids[:1], transfer_success_msg="好" * 201) == 40058
    assert wecom_error(transfer, wecom, "zhang", "zhang", ids[:1]) == 40130
    assert wecom_error(transfer, wecom, "zhang", "nobody", ids[:1]) == 60111
    answer = transfer(wecom, "zhang", "li", ids[:100], transfer_success_msg="好" * 200)
    assert errcodes(answer) == [(i, 0) for i in ids[:100]]


def test_a_transfer_waits_24_hours_then_moves_the_follow_with_its_remark_and_tags(wecom, wechat, sandbox,
                                                                                   callbacks):
    load(sandbox, ["wm_a", "wm_other"], [{"userid": "zhang", "external_userid": "wm_a", "remark": "老客户",
                                          "tag_ids": ["et_vip"]}, ("wang", "wm_other")])
    answer = transfer(wecom, "zhang", "li", ["wm_a", "wm_nobody", "wm_other"], transfer_success_msg="李四接替我")
    assert errcodes(answer) == [("wm_a", 0), ("wm_nobody", 40096), ("wm_other", 40131)]
    assert errcodes(transfer(wecom, "zhang", "li", ["wm_a"])) == [("wm_a", 40129)]  # already waiting
    started = sandbox.get("transfers", external_userid="wm_a")["transfers"][0]["started_at"]
    waiting = {"external_userid": "wm_a", "status": 2, "takeover_time": started + DAY}
    assert result(wecom, "zhang", "li") == {"errcode": 0, "errmsg": "ok", "customer": [waiting], "next_cursor": ""}

    sandbox.do("clock/advance", seconds=DAY - 60)
    assert result(wecom, "zhang", "li")["customer"] == [waiting]
    assert follows_of(sandbox, "wm_a")["zhang"]["status"] == "active" and "li" not in follows_of(sandbox, "wm_a")

    sandbox.do("clock/advance", seconds=60)
    assert result(wecom, "zhang", "li")["customer"] == [{**waiting, "status": 1}]
    follows = follows_of(sandbox, "wm_a")
    assert follows["zhang"]["status"] == "transferred"
    assert (follows["li"]["status"], follows["li"]["remark"], follows["li"]["tag_ids"]) == ("active", "老客户",
                                                                                               ["et_vip"])
    assert wechat.external_contact.list("li")["external_userid"] == ["wm_a"]
    assert [f["remark"] for f in wechat.external_contact.get("wm_a")["follow_user"]] == ["老客户"]
    with pytest.raises(WeChatClientException) as caught:
        wechat.external_contact.list("zhang")
    assert caught.value.errcode == 84061  # zhang has no customer left
    events = [(e["ChangeType"], e["UserID"], e["ExternalUserID"], e.get("Source"))
              for e in callbacks.new("change_external_contact")]
    assert events == [("del_external_contact", "zhang", "wm_a", "DELETE_BY_TRANSFER"),
                      ("add_external_contact", "li", "wm_a", None)]


def test_a_customer_who_refuses_stays_with_the_handover(wecom, sandbox, callbacks):
    load(sandbox, ["wm_r"], [("zhang", "wm_r")])
    assert errcodes(transfer(wecom, "zhang", "li", ["wm_r"])) == [("wm_r", 0)]
    sandbox.do("transfers/refuse", external_userid="wm_r", handover_userid="zhang")
    refused = [{"external_userid": "wm_r", "status": 3, "takeover_time": 0}]
    assert result(wecom, "zhang", "li")["customer"] == refused
    with pytest.raises(SandboxControlError):
        sandbox.do("transfers/refuse", external_userid="wm_r")  # nothing waiting any more
    sandbox.do("clock/advance", seconds=DAY + 60)
    assert result(wecom, "zhang", "li")["customer"] == refused
    assert set(follows_of(sandbox, "wm_r")) == {"zhang"} and follows_of(sandbox, "wm_r")["zhang"]["status"] == "active"
    events = [(e["ChangeType"], e["FailReason"], e["UserID"], e["ExternalUserID"])
              for e in callbacks.new("change_external_contact")]
    assert events == [("transfer_fail", "customer_refused", "li", "wm_r")]


def test_a_successor_at_the_customer_limit_fails_the_takeover(wecom, sandbox, callbacks, customer_limit):
    load(sandbox, ["wm_f", "wm_l1", "wm_l2"], [("zhang", "wm_f"), ("li", "wm_l1"), ("li", "wm_l2")])
    assert errcodes(transfer(wecom, "zhang", "li", ["wm_f"])) == [("wm_f", 0)]
    sandbox.do("clock/advance", seconds=DAY + 60)
    assert result(wecom, "zhang", "li")["customer"] == [{"external_userid": "wm_f", "status": 4, "takeover_time": 0}]
    assert follows_of(sandbox, "wm_f")["zhang"]["status"] == "active" and "li" not in follows_of(sandbox, "wm_f")
    events = [(e["ChangeType"], e["FailReason"], e["UserID"]) for e in callbacks.new("change_external_contact")]
    assert events == [("transfer_fail", "customer_limit_exceed", "li")]


def test_status_5_when_there_is_no_transfer_record(wecom, sandbox, callbacks):
    load(sandbox, ["wm_n", "wm_x"], [("zhang", "wm_n"), ("zhang", "wm_x")])
    query = {"handover_userid": "zhang", "takeover_userid": "li", "external_userid": "wm_n"}
    assert wecom("externalcontact/get_transfer_result", data=query) == {"errcode": 0, "errmsg": "ok", "status": 5,
                                                                        "takeover_time": 0}
    assert result(wecom, "zhang", "li")["customer"] == []
    transfer(wecom, "zhang", "li", ["wm_n", "wm_x"])
    assert wecom("externalcontact/get_transfer_result", data=query)["status"] == 2
    # wm_x deletes zhang during the 24 h: nothing is left to take over, the record ends without one.
    sandbox.do("customers/delete_member", userid="zhang", external_userid="wm_x")
    sandbox.do("clock/advance", seconds=DAY + 60)
    assert [(c["external_userid"], c["status"], c["takeover_time"] > 0)
            for c in result(wecom, "zhang", "li")["customer"]] == [("wm_n", 1, True), ("wm_x", 5, False)]
    assert [(e["ChangeType"], e["ExternalUserID"]) for e in callbacks.new("change_external_contact")
            if e["ChangeType"] != "del_follow_user"] == [("del_external_contact", "wm_n"),
                                                        ("add_external_contact", "wm_n")]


def test_a_customer_is_transferred_at_most_twice_in_90_days(wecom, sandbox, team):
    load(sandbox, ["wm_t"], [("zhang", "wm_t")])
    assert errcodes(transfer(wecom, "zhang", "li", ["wm_t"])) == [("wm_t", 0)]
    sandbox.do("clock/advance", seconds=DAY + 60)
    assert errcodes(transfer(wecom, "li", "wang", ["wm_t"])) == [("wm_t", 0)]
    sandbox.do("clock/advance", seconds=DAY + 60)
    assert errcodes(transfer(wecom, "wang", "zhang", ["wm_t"])) == [("wm_t", 40128)]
    sandbox.do("clock/advance", seconds=88 * DAY)  # the first transfer is now more than 90 days old
    assert errcodes(transfer(wecom, "wang", "zhang", ["wm_t"])) == [("wm_t", 0)]


# -- departed members ---------------------------------------------------------------------------------------
def test_a_departed_members_customers_are_assigned_without_asking_them(wecom, wechat, sandbox, callbacks):
    load(sandbox, ["wm_r1", "wm_r2", "wm_r3"], [("zhang", "wm_r1"), ("zhang", "wm_r2"), ("li", "wm_r3")])
    before = sandbox.get("state")["now"]
    sandbox.do("members/delete", userid="zhang")
    unassigned = wechat.external_contact.get_unassigned_list(0, 100)
    assert [(i["handover_userid"], i["external_userid"]) for i in unassigned["info"]] == [("zhang", "wm_r1"),
                                                                                          ("zhang", "wm_r2")]
    assert unassigned["is_last"] is True and "next_cursor" not in unassigned
    assert {i["dimission_time"] for i in unassigned["info"]} <= set(range(before, before + 3))

    assert wecom_error(transfer, wecom, "zhang", "wang", ["wm_r1"]) == 60111  # on-job API, departed member
    assert wecom_error(transfer, wecom, "li", "wang", ["wm_r3"], endpoint=RESIGNED_TRANSFER) == 40097
    answer = transfer(wecom, "zhang", "wang", ["wm_r1", "wm_r3"], endpoint=RESIGNED_TRANSFER)
    assert errcodes(answer) == [("wm_r1", 0), ("wm_r3", 40131)]
    assert [i["external_userid"] for i in wechat.external_contact.get_unassigned_list(0, 100)["info"]] == ["wm_r2"]
    assert [c["status"] for c in result(wecom, "zhang", "wang", RESIGNED_RESULT)["customer"]] == [2]
    assert result(wecom, "zhang", "wang")["customer"] == []  # on-job results do not show it
    with pytest.raises(SandboxControlError):
        sandbox.do("transfers/refuse", external_userid="wm_r1")

    sandbox.do("clock/advance", seconds=DAY + 60)
    assert [c["status"] for c in result(wecom, "zhang", "wang", RESIGNED_RESULT)["customer"]] == [1]
    assert follows_of(sandbox, "wm_r1")["wang"]["status"] == "active"
    assert [i["external_userid"] for i in wechat.external_contact.get_unassigned_list(0, 100)["info"]] == ["wm_r2"]
    events = [(e["ChangeType"], e.get("UserID")) for e in callbacks.new("change_external_contact")]
    assert events == [("add_external_contact", "wang")]  # no del_external_contact for a departed member


def test_get_unassigned_list_pages_by_page_id_or_cursor(wecom, wechat, sandbox, team):
    mine = [f"wm_z{i}" for i in range(5)]
    theirs = [f"wm_l{i}" for i in range(3)]
    load(sandbox, mine + theirs, [("zhang", c) for c in mine] + [("li", c) for c in theirs])
    sandbox.do("members/delete", userid="zhang")
    sandbox.do("clock/advance", seconds=3600)
    sandbox.do("members/delete", userid="li")
    first = wechat.external_contact.get_unassigned_list(0, 3)
    last = wechat.external_contact.get_unassigned_list(2, 3)
    assert ([i["external_userid"] for i in first["info"]], first["is_last"]) == (mine[:3], False)
    assert ([i["external_userid"] for i in last["info"]], last["is_last"]) == (theirs[1:], True)

    seen, cursor = [], ""
    for _ in range(4):
        page = wecom("externalcontact/get_unassigned_list", data={"cursor": cursor, "page_size": 3})
        seen += [i["external_userid"] for i in page["info"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert (seen, page["is_last"]) == (mine + theirs, True)
    assert wecom_error(wecom, "externalcontact/get_unassigned_list", data={"cursor": "bogus"}) == 50100


def test_transfer_result_pages_1000_customers_at_a_time(wecom, sandbox, team):
    ids = [f"wm{i:04d}" for i in range(1050)]
    load(sandbox, ids, [("zhang", c) for c in ids])
    for start in range(0, len(ids), 100):
        assert {e for _, e in errcodes(transfer(wecom, "zhang", "li", ids[start:start + 100]))} == {0}
    first = result(wecom, "zhang", "li")
    second = result(wecom, "zhang", "li", cursor=first["next_cursor"])
    assert (len(first["customer"]), len(second["customer"]), second["next_cursor"]) == (1000, 50, "")
    assert [c["external_userid"] for c in first["customer"] + second["customer"]] == ids
    assert {c["status"] for c in first["customer"] + second["customer"]} == {2}
    assert wecom_error(result, wecom, "zhang", "li", cursor="not-a-cursor") == 50100


# -- group chats ----------------------------------------------------------------------------------------------
def test_group_chats_are_listed_read_joined_and_dismissed(wecom, wechat, sandbox, callbacks):
    load(sandbox, ["wm_g1"])
    vip = sandbox.do("groupchats/create", owner="zhang", name="VIP群", members=["li", "wm_g1"],
                     notice="欢迎")["group_chat"]["chat_id"]
    other = sandbox.do("groupchats/create", owner="li", name="李四的群", members=["wm_g2"])["group_chat"]["chat_id"]
    listed = wechat.external_contact_group_chat.list(owner_userid_list=["zhang"], limit=100)
    assert (listed["group_chat_list"], listed["next_cursor"]) == ([{"chat_id": vip, "status": 0}], "")
    assert wechat.external_contact_group_chat.list_all(limit=1) == [{"chat_id": c, "status": 0}
                                                                   for c in sorted([vip, other])]
    sandbox.do("groupchats/join", chat_id=vip, external_userid="wm_g3")

    chat = wecom("externalcontact/groupchat/get", data={"chat_id": vip, "need_name": 1})["group_chat"]
    assert (chat["name"], chat["owner"], chat["notice"]) == ("VIP群", "zhang", "欢迎")
    assert [(m["userid"], m["type"], m["join_scene"], m.get("invitor"), m["name"]) for m in chat["member_list"]] == [
        ("zhang", 1, 1, None, "张三"), ("li", 1, 1, {"userid": "zhang"}, "李四"),
        ("wm_g1", 2, 1, {"userid": "zhang"}, "客户wm_g1"), ("wm_g3", 2, 3, None, "")]
    assert "name" not in wechat.external_contact_group_chat.get(vip)["group_chat"]["member_list"][0]

    sandbox.do("groupchats/dismiss", chat_id=vip)
    with pytest.raises(WeChatClientException) as caught:
        wechat.external_contact_group_chat.get(vip)
    assert caught.value.errcode == 49008
    assert wecom_error(wecom, "externalcontact/groupchat/get", data={"chat_id": "wr_nope"}) == 40050
    assert [c["chat_id"] for c in wechat.external_contact_group_chat.list_all(limit=1000)] == [other]
    assert wecom_error(wecom, "externalcontact/groupchat/list", data={"limit": 1001}) == 40058
    events = [(e["ChangeType"], e["ChatId"], e.get("UpdateDetail"), e.get("JoinScene"), e.get("MemChangeCnt"))
              for e in callbacks.new("change_external_chat")]
    assert events == [("create", vip, None, None, None), ("create", other, None, None, None),
                      ("update", vip, "add_member", "3", "1"), ("dismiss", vip, None, None, None)]


def test_a_departed_owners_chats_are_reassigned_chat_by_chat(wecom, wechat, sandbox, callbacks):
    left, left2, gone = (sandbox.do("groupchats/create", owner="zhang", name=n)["group_chat"]["chat_id"]
                         for n in ("一群", "二群", "三群"))
    kept = sandbox.do("groupchats/create", owner="li", name="李四的群")["group_chat"]["chat_id"]
    sandbox.do("groupchats/dismiss", chat_id=gone)
    sandbox.do("members/delete", userid="zhang")
    assert wechat.external_contact_group_chat.list(status_filter=1, limit=100)["group_chat_list"] == [
        {"chat_id": c, "status": 1} for c in sorted([left, left2])]
    callbacks.mark()  # only what the transfers fire

    answer = wecom("externalcontact/groupchat/transfer", data={"chat_id_list": [left, kept, "wr_nope", gone],
                                                                "new_owner": "wang"})
    assert [(c["chat_id"], c["errcode"]) for c in answer["failed_chat_list"]] == [(kept, 90500), ("wr_nope", 40050),
                                                                                  (gone, 49008)]
    chat = wechat.external_contact_group_chat.get(left)["group_chat"]
    assert (chat["owner"], [m["userid"] for m in chat["member_list"]]) == ("wang", ["zhang", "wang"])
    assert wechat.external_contact_group_chat.list(status_filter=3, limit=100)["group_chat_list"] == [
        {"chat_id": left, "status": 3}]
    again = wecom("externalcontact/groupchat/transfer", data={"chat_id_list": [left], "new_owner": "li"})
    assert [c["errcode"] for c in again["failed_chat_list"]] == [90508]

    onjob = wecom("externalcontact/groupchat/onjob_transfer", data={"chat_id_list": [kept, left2, left],
                                                                     "new_owner": "wang"})
    assert [(c["chat_id"], c["errcode"]) for c in onjob["failed_chat_list"]] == [(left2, 90502), (left, 90504)]
    assert wechat.external_contact_group_chat.get(kept)["group_chat"]["owner"] == "wang"
    events = [(e["ChangeType"], e["ChatId"], e["UpdateDetail"]) for e in callbacks.new("change_external_chat")]
    assert events == [("update", left, "change_owner"), ("update", kept, "change_owner")]


def test_group_chat_transfers_are_capped_per_call_per_day_and_per_90_days(wecom, sandbox, team):
    ids = sandbox.do("groupchats/load", chats=[{"owner": "li", "name": f"群{i}"} for i in range(302)])["chat_ids"]
    onjob = "externalcontact/groupchat/onjob_transfer"
    assert wecom_error(wecom, onjob, data={"chat_id_list": ids[:101], "new_owner": "wang"}) == 40058
    for start in range(0, 300, 100):
        assert wecom(onjob, data={"chat_id_list": ids[start:start + 100], "new_owner": "wang"})[
            "failed_chat_list"] == []
    capped = wecom(onjob, data={"chat_id_list": [ids[300]], "new_owner": "wang"})["failed_chat_list"]
    assert [(c["chat_id"], c["errcode"]) for c in capped] == [(ids[300], 45009)]

    now = sandbox.get("state")["now"]
    sandbox.do("clock/advance", seconds=DAY - (now + 8 * 3600) % DAY + 60)  # the next day in Beijing
    assert wecom(onjob, data={"chat_id_list": [ids[300]], "new_owner": "wang"})["failed_chat_list"] == []
    assert wecom(onjob, data={"chat_id_list": [ids[301]], "new_owner": "zhang"})["failed_chat_list"] == []
    assert wecom(onjob, data={"chat_id_list": [ids[301]], "new_owner": "wang"})["failed_chat_list"] == []
    third = wecom(onjob, data={"chat_id_list": [ids[301]], "new_owner": "li"})["failed_chat_list"]
    assert [c["errcode"] for c in third] == [40128]
