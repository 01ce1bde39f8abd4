"""Contract: customer contact (客户联系) through wechatpy and the gateway, with the sandbox playing people.

Customers, follows, corp tags, 「联系我」 contact ways and their QR codes, welcome messages, behaviour data, and
the change_external_contact / change_external_tag callbacks the people's actions fire.
"""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import quote
from xml.etree import ElementTree

import png
import pytest
import qrcode
from wechatpy.exceptions import WeChatClientException

from portal.wecom.gateway import WeComError
from wecom_sandbox.control import SandboxControlError

DAY = 86_400


@pytest.fixture
def people(sandbox):
    """Two stores' members (one disabled) and a customer limit restored afterwards (reset keeps the config)."""
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店"}, {"id": 3, "name": "广州天河店"}],
               members=[{"userid": "zhangsan", "name": "张三", "department": [2]},
                        {"userid": "lisi", "name": "李四", "department": [2]},
                        {"userid": "wangwu", "name": "王五", "department": [3]},
                        {"userid": "gone", "name": "停用", "department": [3], "status": 2}])
    yield sandbox
    sandbox.do("config", customer_limit=5000)


def events(sandbox, event: str = "change_external_contact", **match) -> list[dict]:
    """Delivered callbacks (plaintext XML fields) whose fields equal ``match``, oldest first."""
    sandbox.drain()
    found = []
    for entry in sandbox.get("callbacks", limit=5000)["log"]:
        fields = {child.tag: child.text or "" for child in ElementTree.fromstring(entry["xml"])}
        if fields["Event"] == event and all(fields.get(k) == v for k, v in match.items()):
            found.append({**fields, "outcome": entry["outcome"]})
    return found


def way(wechat, users, *, type_=1, scene=2, state="store-a001") -> str:
    return wechat.external_contact.add_contact_way(type=type_, scene=scene, state=state, user=users)["config_id"]


def scan(sandbox, config_id, **customer) -> dict:
    return sandbox.do("customers/scan", config_id=config_id, customer=customer or {"name": "王女士"})


def errcode_of(call) -> int:
    with pytest.raises((WeChatClientException, WeComError)) as caught:
        call()
    return caught.value.errcode


def control_errcode(call) -> int:
    with pytest.raises(SandboxControlError) as caught:
        call()
    return json.loads(str(caught.value).split(": 400 ", 1)[1])["errcode"]


# -- members, customers, follows ---------------------------------------------------------------------
def test_follow_user_list_is_the_active_members(wechat, people):
    assert wechat.external_contact.get_follow_user_list()["follow_user"] == ["lisi", "wangwu", "zhangsan"]


def test_a_scan_makes_a_customer_a_follow_and_an_add_event(wechat, people):
    config_id = way(wechat, ["zhangsan"])
    added = scan(people, config_id, name="王女士", unionid="union-wang", gender=2, avatar="http://a/1.png")
    eid = added["external_userid"]
    assert (eid[:2], len(eid), added["userid"], len(added["welcome_code"])) == ("wm", 32, "zhangsan", 43)

    [event] = events(people, ExternalUserID=eid)
    assert {k: event[k] for k in ("ChangeType", "UserID", "State", "WelcomeCode", "outcome", "FromUserName")} == {
        "ChangeType": "add_external_contact", "UserID": "zhangsan", "State": "store-a001",
        "WelcomeCode": added["welcome_code"], "outcome": "no callback_url", "FromUserName": "sys"}

    detail = wechat.external_contact.get(eid)
    assert detail["external_contact"] == {"external_userid": eid, "name": "王女士", "type": 1, "gender": 2,
                                          "avatar": "http://a/1.png", "unionid": "union-wang"}
    [follow] = detail["follow_user"]
    assert {k: v for k, v in follow.items() if k != "createtime"} == {
        "userid": "zhangsan", "remark": "", "description": "", "tags": [], "remark_mobiles": [], "add_way": 1,
        "state": "store-a001", "oper_userid": eid}
    assert detail["next_cursor"] == ""
    assert wechat.external_contact.list("zhangsan")["external_userid"] == [eid]
    # The same WeChat user scanning another member's way keeps one external_userid in the corp.
    again = scan(people, way(wechat, ["lisi"], state=""), name="王女士", unionid="union-wang")
    assert again["external_userid"] == eid
    assert [f["userid"] for f in wechat.external_contact.get(eid)["follow_user"]] == ["zhangsan", "lisi"]
    assert "State" not in events(people, ExternalUserID=eid, UserID="lisi")[0]


def test_a_member_without_customers_and_unknown_ids(wechat, wecom, people):
    assert errcode_of(lambda: wechat.external_contact.list("lisi")) == 84061
    assert errcode_of(lambda: wechat.external_contact.list("nobody")) == 40003
    assert errcode_of(lambda: wechat.external_contact.get("wmNOSUCHCUSTOMER")) == 40096


def test_a_multi_member_way_rotates_its_members(wechat, people):
    config_id = way(wechat, ["zhangsan", "lisi"], type_=2)
    assert [scan(people, config_id)["userid"] for _ in range(3)] == ["zhangsan", "lisi", "zhangsan"]
    party_way = wechat.external_contact.add_contact_way(type=2, scene=2, party=[3])["config_id"]
    assert scan(people, party_way)["userid"] == "wangwu"  # the disabled member of store 3 is passed over


def test_batch_get_by_user_pages_with_a_stable_cursor(wecom, people):
    ids = people.do("customers/load", customers=[{"name": f"客户{i:03d}"} for i in range(250)])["external_userids"]
    people.do("customers/load", follows=[{"userid": "zhangsan" if i < 150 else "lisi", "external_userid": eid,
                                          "remark": f"r{i}", "createtime": 1_700_000_000 + i}
                                         for i, eid in enumerate(ids)])
    pages, cursor = [], ""
    for _ in range(5):  # bounded: a cursor that never ends must fail the test, not hang it
        page = wecom("externalcontact/batch/get_by_user",
                     data={"userid_list": ["zhangsan", "lisi"], "cursor": cursor, "limit": 100})
        pages.append(page["external_contact_list"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    seen = [(item["follow_info"]["userid"], item["external_contact"]["external_userid"]) for p in pages for item in p]
    assert len(set(seen)) == 250 and seen == sorted(seen)
    first = pages[0][0]
    assert set(first) == {"external_contact", "follow_info"}
    assert set(first["follow_info"]) == {"userid", "remark", "description", "createtime", "tag_id", "remark_mobiles",
                                         "oper_userid", "add_way"}
    clamped = wecom("externalcontact/batch/get_by_user", data={"userid_list": ["lisi"], "limit": 1000})
    assert len(clamped["external_contact_list"]) == 100  # WeCom takes a limit above 100 as 100
    with pytest.raises(WeComError) as caught:
        wecom("externalcontact/batch/get_by_user", data={"userid_list": [f"u{i}" for i in range(101)]})
    assert caught.value.errcode == 40058


def test_remark_limits_and_84061(wecom, wechat, people):
    eid = scan(people, way(wechat, ["zhangsan"]))["external_userid"]
    wecom("externalcontact/remark", data={"userid": "zhangsan", "external_userid": eid, "remark": "老客户",
                                          "description": "喜欢拿铁", "remark_mobiles": ["13800000001"]})
    [follow] = wechat.external_contact.get(eid)["follow_user"]
    assert (follow["remark"], follow["description"], follow["remark_mobiles"]) == ("老客户", "喜欢拿铁",
                                                                                  ["13800000001"])

    def remark(**data):
        return lambda: wecom("externalcontact/remark", data={"userid": "zhangsan", "external_userid": eid, **data})

    assert errcode_of(remark(remark="备" * 21)) == 40058  # the remark page: at most 20 characters
    assert errcode_of(remark(description="述" * 151)) == 40058
    assert errcode_of(remark()) == 40058  # nothing to change
    wecom("externalcontact/remark", data={"userid": "zhangsan", "external_userid": eid, "remark": "备" * 20})
    assert errcode_of(lambda: wecom("externalcontact/remark",
                                    data={"userid": "lisi", "external_userid": eid, "remark": "x"})) == 84061


def test_the_customer_limit_refuses_the_add_and_emits_nothing(wechat, people):
    people.do("config", customer_limit=2)
    config_id = way(wechat, ["zhangsan"])
    scan(people, config_id)
    scan(people, config_id)
    emitted = people.get("state")["callbacks"]["emitted"]
    assert control_errcode(lambda: scan(people, config_id)) == 40099
    assert control_errcode(lambda: people.do("customers/add", userid="zhangsan", customer={"name": "x"})) == 40099
    assert people.get("state")["callbacks"]["emitted"] == emitted
    assert len(wechat.external_contact.list("zhangsan")["external_userid"]) == 2
    # A multi-member way passes over the full member.
    assert scan(people, way(wechat, ["zhangsan", "lisi"], type_=2))["userid"] == "lisi"


# -- people's actions and their callbacks ---------------------------------------------------------------
def test_members_and_customers_add_edit_and_delete(wechat, people):
    added = people.do("customers/add", userid="lisi", customer={"name": "赵先生"}, state="phone")
    eid = added["external_userid"]
    [event] = events(people, ExternalUserID=eid, ChangeType="add_external_contact")
    assert (event["UserID"], event["State"], event["WelcomeCode"]) == ("lisi", "phone", added["welcome_code"])
    [follow] = wechat.external_contact.get(eid)["follow_user"]
    assert (follow["add_way"], follow["oper_userid"]) == (2, "lisi")

    tag_id = wechat.external_contact.add_corp_tag(None, "等级", None, [{"name": "金卡"}])["tag_group"]["tag"][0]["id"]
    people.do("customers/edit", userid="lisi", external_userid=eid, remark="赵总", add_tag_ids=[tag_id])
    assert [e["UserID"] for e in events(people, ExternalUserID=eid, ChangeType="edit_external_contact")] == ["lisi"]
    [follow] = wechat.external_contact.get(eid)["follow_user"]
    assert (follow["remark"], [t["tag_id"] for t in follow["tags"]]) == ("赵总", [tag_id])

    half = people.do("customers/half_add", userid="zhangsan", external_userid=eid)
    [event] = events(people, ExternalUserID=eid, ChangeType="add_half_external_contact")
    assert (event["UserID"], event["WelcomeCode"]) == ("zhangsan", half["welcome_code"])

    people.do("customers/delete_member", external_userid=eid, userid="zhangsan")
    assert [e["UserID"] for e in events(people, ExternalUserID=eid, ChangeType="del_follow_user")] == ["zhangsan"]
    people.do("members/delete_customer", userid="lisi", external_userid=eid)
    [event] = events(people, ExternalUserID=eid, ChangeType="del_external_contact")
    assert event["UserID"] == "lisi" and "Source" not in event
    assert errcode_of(lambda: wechat.external_contact.get(eid)) == 84061
    assert control_errcode(lambda: people.do("members/delete_customer", userid="lisi", external_userid=eid)) == 84061


# -- corp tags ------------------------------------------------------------------------------------------------
def test_corp_tags_add_edit_mark_and_delete(wechat, people):
    api = wechat.external_contact
    eid = scan(people, way(wechat, ["zhangsan"]))["external_userid"]
    group = api.add_corp_tag(None, "会员等级", 10, [{"name": "金卡", "order": 2}, {"name": "银卡", "order": 1}])
    group = group["tag_group"]
    gold, silver = (t["id"] for t in group["tag"])
    assert (group["group_name"], group["order"], [t["name"] for t in group["tag"]]) == ("会员等级", 10,
                                                                                       ["金卡", "银卡"])
    # The same group name adds into the existing group; the same tag name in a group is 40071.
    bronze = api.add_corp_tag(None, "会员等级", None, [{"name": "铜卡"}])["tag_group"]
    assert bronze["group_id"] == group["group_id"]
    assert errcode_of(lambda: api.add_corp_tag(group["group_id"], None, None, [{"name": "金卡"}])) == 40071
    assert errcode_of(lambda: api.add_corp_tag(None, "兴趣", None, [{"name": "咖"}, {"name": "咖"}])) == 40071
    assert errcode_of(lambda: api.add_corp_tag(None, "兴趣", None, [{"name": "长" * 31}])) == 40072
    assert errcode_of(lambda: api.add_corp_tag(None, "组" * 31, None, [{"name": "短"}])) == 40072
    assert errcode_of(lambda: api.add_corp_tag("etNOSUCHGROUP", None, None, [{"name": "x"}])) == 40068

    api.edit_corp_tag(gold, "白金卡", 5)
    assert errcode_of(lambda: api.edit_corp_tag(silver, "白金卡", None)) == 40071
    listed = api.get_corp_tag_list()["tag_group"]
    assert [(g["group_name"], [t["name"] for t in g["tag"]]) for g in listed] == [
        ("会员等级", ["白金卡", "银卡", "铜卡"])]

    api.mark_tag("zhangsan", eid, add_tag=[gold, silver])
    api.mark_tag("zhangsan", eid, remove_tag=[silver])
    [follow] = api.get(eid)["follow_user"]
    assert follow["tags"] == [{"group_name": "会员等级", "tag_name": "白金卡", "tag_id": gold, "type": 1}]
    assert errcode_of(lambda: api.mark_tag("zhangsan", eid, add_tag=["etNOSUCHTAG"])) == 40068
    assert errcode_of(lambda: api.mark_tag("lisi", eid, add_tag=[gold])) == 84061

    api.del_corp_tag(group_id=[group["group_id"]])  # a group goes with its tags
    assert api.get_corp_tag_list()["tag_group"] == []
    assert api.get(eid)["follow_user"][0]["tags"] == []
    [deleted] = api.get_corp_tag_list(tag_ids=[gold])["tag_group"]
    assert (deleted["deleted"], deleted["tag"][0]["deleted"]) == (True, True)
    assert errcode_of(lambda: api.del_corp_tag(tag_id=[gold])) == 40068


def test_deleting_a_groups_last_tag_deletes_the_group_and_3000_tags_is_the_limit(wechat, people):
    api = wechat.external_contact
    group = api.add_corp_tag(None, "单个", None, [{"name": "唯一"}])["tag_group"]
    api.del_corp_tag(tag_id=[group["tag"][0]["id"]])
    assert api.get_corp_tag_list()["tag_group"] == []
    api.add_corp_tag(None, "批量", None, [{"name": f"标签{i}"} for i in range(3000)])
    assert errcode_of(lambda: api.add_corp_tag(None, "再来", None, [{"name": "一个"}])) == 40126


def test_tags_edited_in_wecom_fire_change_external_tag(wechat, people):
    group = people.do("tags/edit_in_wecom", change_type="create", tag_type="tag_group", name="门店", tags=["徐汇"])
    tag = people.do("tags/edit_in_wecom", change_type="create", tag_type="tag", group_id=group["id"], name="天河")
    people.do("tags/edit_in_wecom", change_type="update", tag_type="tag", id=tag["id"], name="天河二店")
    people.do("tags/edit_in_wecom", change_type="delete", tag_type="tag_group", id=group["id"])
    fired = [(e["Id"], e["TagType"], e["ChangeType"], e["StrategyId"])
             for e in events(people, "change_external_tag") if e["Id"] in (group["id"], tag["id"])]
    assert fired == [(group["id"], "tag_group", "create", ""), (tag["id"], "tag", "create", ""),
                     (tag["id"], "tag", "update", ""), (group["id"], "tag_group", "delete", "")]
    [listed] = wechat.external_contact.get_corp_tag_list(tag_ids=[tag["id"]])["tag_group"]
    assert (listed["tag"][0]["name"], listed["tag"][0]["deleted"]) == ("天河二店", True)


# -- contact ways ----------------------------------------------------------------------------------------------------
def test_contact_ways_get_update_list_and_delete(wechat, wecom, people):
    api = wechat.external_contact
    added = api.add_contact_way(type=2, scene=2, style=1, remark="门店海报", state="poster", user=["zhangsan"],
                                party=[3])
    config_id = added["config_id"]
    assert (len(config_id), added["qr_code"]) == (32, f"{people.url}/sandbox-file/qr/{config_id}.png")
    shown = api.get_contact_way(config_id)["contact_way"]
    assert {k: shown[k] for k in ("config_id", "type", "scene", "remark", "skip_verify", "state", "user", "party",
                                  "qr_code")} == {
        "config_id": config_id, "type": 2, "scene": 2, "remark": "门店海报", "skip_verify": True, "state": "poster",
        "user": ["zhangsan"], "party": [3], "qr_code": added["qr_code"]}
    api.update_contact_way(config_id, "新海报", skip_verify=False, state="poster2", user=["lisi"])
    shown = api.get_contact_way(config_id)["contact_way"]
    assert (shown["remark"], shown["skip_verify"], shown["state"], shown["user"]) == ("新海报", False, "poster2",
                                                                                      ["lisi"])
    button = api.add_contact_way(type=1, scene=1, user=["lisi"])
    assert "qr_code" not in button  # mini-program buttons have no QR code
    api.add_contact_way(type=1, scene=2, user=["wangwu"])

    listed, cursor = [], ""
    for _ in range(3):
        page = wecom("externalcontact/list_contact_way", data={"limit": 2, "cursor": cursor})
        listed += [w["config_id"] for w in page["contact_way"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(listed) == 3 and len(set(listed)) == 3 and config_id in listed
    api.del_contact_way(config_id)
    assert errcode_of(lambda: api.get_contact_way(config_id)) == 41044
    assert control_errcode(lambda: scan(people, config_id)) == 41044


def test_contact_way_limits(wechat, wecom, people):
    api = wechat.external_contact
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=2, state="s" * 31, user=["zhangsan"])) == 40058
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=2, remark="r" * 31, user=["zhangsan"])) == 40058
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=2, user=["zhangsan", "lisi"])) == 40058
    assert errcode_of(lambda: api.add_contact_way(type=3, scene=2, user=["zhangsan"])) == 41039
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=3, user=["zhangsan"])) == 41040
    assert errcode_of(lambda: wecom("externalcontact/add_contact_way", data={"scene": 2, "user": ["lisi"]})) == 41037
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=2, user=["nobody"])) == 40003
    assert errcode_of(lambda: api.add_contact_way(type=1, scene=2, user=["gone"])) == 84074
    assert errcode_of(lambda: api.add_contact_way(type=2, scene=2, party=[99])) == 40066
    api.add_contact_way(type=1, scene=2, state="s" * 30, user=["zhangsan"])
    people.do("addressbook/load", members=[{"userid": f"guide{i:03d}", "name": f"导购{i}"} for i in range(101)])
    hundred = [f"guide{i:03d}" for i in range(100)]
    config_id = api.add_contact_way(type=2, scene=2, user=hundred)["config_id"]
    assert errcode_of(lambda: api.add_contact_way(type=2, scene=2, user=[*hundred, "guide100"])) == 41041
    assert errcode_of(lambda: api.update_contact_way(config_id, "x", user=[*hundred, "guide100"])) == 41041
    assert len(api.get_contact_way(config_id)["contact_way"]["user"]) == 100  # a refused update changes nothing


def _png_pixels(data: bytes) -> tuple[int, list[list[int]]]:
    """A greyscale PNG decoded by pypng's reader: its width and its rows of pixel values (0 is dark)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, rows, info = png.Reader(bytes=data).asDirect()
    assert width == height and info["greyscale"] and not info["alpha"]
    return width, [list(row) for row in rows]


def test_the_qr_code_is_a_png_of_the_scan_url_and_scanning_it_adds_a_customer(wechat, people):
    qr_url = wechat.external_contact.add_contact_way(type=1, scene=2, state="qr", user=["lisi"])["qr_code"]
    config_id = qr_url.rsplit("/", 1)[1].removesuffix(".png")
    with urllib.request.urlopen(qr_url, timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png"
        width, rows = _png_pixels(response.read())
    expected = qrcode.QRCode(border=4)
    expected.add_data(f"{people.url}/sandbox/customers/scan?config_id={config_id}")
    matrix = expected.get_matrix()
    scale = width // len(matrix)
    assert [[row[x * scale] == 0 for x in range(len(matrix))] for row in rows[::scale]] == matrix
    # What a phone does with it: open the URL.
    with urllib.request.urlopen(f"{people.url}/sandbox/customers/scan?config_id={config_id}&name={quote('扫码客')}",
                                timeout=10) as response:
        scanned = json.loads(response.read())
    assert scanned["userid"] == "lisi"
    assert wechat.external_contact.get(scanned["external_userid"])["external_contact"]["name"] == "扫码客"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{people.url}/sandbox-file/qr/nosuchway.png", timeout=10)


# -- welcome messages -------------------------------------------------------------------------------------------
def test_a_welcome_code_works_once_within_20_seconds(wechat, people):
    config_id = way(wechat, ["zhangsan"])
    first = scan(people, config_id)
    message = {"welcome_code": first["welcome_code"], "text": {"content": "欢迎光临徐汇店"},
               "attachments": [{"msgtype": "link", "link": {"title": "会员权益", "url": "https://example.com/vip"}},
                               {"msgtype": "image", "image": {"media_id": "MEDIA1"}}]}
    wechat.external_contact.send_welcome_msg(message)
    [sent] = people.get("welcome_messages")["messages"]
    assert {k: sent[k] for k in ("welcome_code", "userid", "external_userid", "text", "attachments")} == {
        "welcome_code": first["welcome_code"], "userid": "zhangsan", "external_userid": first["external_userid"],
        "text": {"content": "欢迎光临徐汇店"}, "attachments": message["attachments"]}
    assert errcode_of(lambda: wechat.external_contact.send_welcome_msg(message)) == 41051  # used

    second = scan(people, config_id)
    people.do("clock/advance", seconds=21)
    late = {"welcome_code": second["welcome_code"], "text": {"content": "迟到的欢迎"}}
    assert errcode_of(lambda: wechat.external_contact.send_welcome_msg(late)) == 41050  # expired
    assert errcode_of(lambda: wechat.external_contact.send_welcome_msg({**late, "welcome_code": "nosuch"})) == 41050

    third = scan(people, config_id)["welcome_code"]
    send = wechat.external_contact.send_welcome_msg
    assert errcode_of(lambda: send({"welcome_code": third, "attachments": [{"msgtype": "image", "image": {}}] * 10})) \
        == 40058
    assert errcode_of(lambda: send({"welcome_code": third, "attachments": [{"msgtype": "voice", "voice": {}}]})) \
        == 41065
    assert errcode_of(lambda: send({"welcome_code": third})) == 40058
    assert errcode_of(lambda: send({"text": {"content": "no code"}})) == 41049
    people.do("clock/advance", seconds=19)  # still within 20 s (real time passes too, so not exactly 20)
    send({"welcome_code": third, "attachments": [{"msgtype": "file", "file": {"media_id": "F"}}] * 9})
    assert [m["welcome_code"] for m in people.get("welcome_messages")["messages"]] == [first["welcome_code"], third]


# -- behaviour data -----------------------------------------------------------------------------------------
def test_behavior_data_counts_each_day_from_follows(wechat, people):
    if (people.get("state")["now"] + 8 * 3600) % DAY > DAY - 120:
        people.do("clock/advance", seconds=180)  # not across midnight while the test runs
    now = people.get("state")["now"]
    today = (now + 8 * 3600) // DAY * DAY - 8 * 3600  # midnight China time
    customers = people.do("customers/load", customers=[{"name": f"c{i}"} for i in range(3)])["external_userids"]
    people.do("customers/load", follows=[{"userid": "zhangsan", "external_userid": e, "createtime": today - DAY + 60}
                                         for e in customers])
    people.do("customers/delete_member", userid="zhangsan", external_userid=customers[0])
    people.do("customers/add", userid="zhangsan", customer={"name": "主动加"})
    scan(people, way(wechat, ["zhangsan"]))
    people.do("customers/load", follows=[{"userid": "lisi", "external_userid": customers[1], "createtime": today}])
    people.do("members/chat_stats", userid="zhangsan", chat_cnt=4, message_cnt=10, reply_percentage=50,
              avg_reply_time=6)
    people.do("members/chat_stats", userid="lisi", chat_cnt=1, message_cnt=2, reply_percentage=100, avg_reply_time=1)

    data = wechat.external_contact.get_user_behavior_data(["zhangsan"], today - DAY + 5000, today + 100)
    assert data["behavior_data"] == [
        {"stat_time": today - DAY, "chat_cnt": 0, "message_cnt": 0, "negative_feedback_cnt": 0, "new_apply_cnt": 0,
         "new_contact_cnt": 3},
        {"stat_time": today, "chat_cnt": 4, "message_cnt": 10, "reply_percentage": 50.0, "avg_reply_time": 6,
         "negative_feedback_cnt": 1, "new_apply_cnt": 1, "new_contact_cnt": 2}]
    both = wechat.external_contact.get_user_behavior_data(["zhangsan", "lisi"], today, today)["behavior_data"]
    assert both == [{"stat_time": today, "chat_cnt": 5, "message_cnt": 12, "reply_percentage": 60.0,
                     "avg_reply_time": 5, "negative_feedback_cnt": 1, "new_apply_cnt": 1, "new_contact_cnt": 3}]

    def behavior(userids, start, end):
        return lambda: wechat.external_contact.get_user_behavior_data(userids, start, end)

    assert errcode_of(behavior(["zhangsan"], today - 31 * DAY, today)) == 600018  # more than 30 days apart
    assert errcode_of(behavior(["zhangsan"], today - 181 * DAY, today - 170 * DAY)) == 600018  # older than 180 days
    assert errcode_of(behavior(["zhangsan"], today, today - DAY)) == 600018
    assert errcode_of(behavior([f"u{i}" for i in range(101)], today, today)) == 40058
    assert len(wechat.external_contact.get_user_behavior_data(["zhangsan"], today - 30 * DAY, today)[
        "behavior_data"]) == 31


# -- bulk loading ---------------------------------------------------------------------------------------------
def test_load_is_quiet_and_fast_for_tens_of_thousands(wechat, people):
    import time

    emitted = people.get("state")["callbacks"]["emitted"]
    started = time.monotonic()
    ids = people.do("customers/load", customers=[{"name": f"顾客{i}"} for i in range(20_000)])["external_userids"]
    people.do("customers/load", follows=[{"userid": "wangwu", "external_userid": e, "state": "seed"} for e in ids])
    assert time.monotonic() - started < 10
    assert people.get("state")["callbacks"]["emitted"] == emitted
    assert len(wechat.external_contact.list("wangwu")["external_userid"]) == 20_000
    assert control_errcode(lambda: people.do("customers/load", follows=[{"userid": "wangwu",
                                                                         "external_userid": "wmNOSUCH"}])) == 40096
