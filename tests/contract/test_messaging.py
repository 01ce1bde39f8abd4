"""Contract: mass sends, Moments, media, app messages and OAuth (wecom_sandbox/messaging.py).

wechatpy's own methods where it has them, the gateway for the rest; people (members confirming a mass
send, publishing a Moment, opening the mobile page) are played through the sandbox's control API.
"""

from __future__ import annotations

import io
import re
import time
import urllib.request
from urllib.parse import quote

import pytest
from wechatpy.exceptions import APILimitedException, WeChatClientException

from portal.wecom.gateway import WeComError
from tests.materials.files_fixtures import mp4_bytes, png_bytes
from wecom_sandbox.control import SandboxControlError

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
DAY = 86400


@pytest.fixture
def shop(sandbox):
    """Two members of store 2; customers C1, C2 of zhangsan, C3 of lisi, C4 of both (lisi's follow is newer)."""
    sandbox.do("config", moment_per_minute=10, moment_job_seconds=5, mass_dispatch_seconds=0)
    sandbox.do("addressbook/load", departments=[{"id": 2, "name": "上海徐汇店", "parentid": 1}],
               members=[{"userid": "zhangsan", "name": "张三", "department": [2]},
                        {"userid": "lisi", "name": "李四", "department": [2]}])
    sandbox.do("customers/load", customers=[{"external_userid": f"wmC{i}", "name": f"客户{i}"} for i in range(1, 5)],
               follows=[{"userid": "zhangsan", "external_userid": "wmC1"},
                        {"userid": "zhangsan", "external_userid": "wmC2"},
                        {"userid": "lisi", "external_userid": "wmC3"},
                        {"userid": "zhangsan", "external_userid": "wmC4", "createtime": 1_600_000_000},
                        {"userid": "lisi", "external_userid": "wmC4", "createtime": 1_700_000_000}])
    return sandbox


def mass_send(wechat, customers: list[str], sender: str | None = "zhangsan", **extra) -> dict:
    template = {"chat_type": "single", "external_userid": customers, "text": {"content": "周末会员日"}, **extra}
    if sender:
        template["sender"] = sender
    return wechat.external_contact.add_msg_template(template)


def upload(wechat, kind: str, name: str, data: bytes, content_type: str = "application/octet-stream") -> dict:
    # After refreshing an expired token wechatpy resends the same, already-read file (an empty upload: 44001),
    # and every sandbox reset expires the shared token: take a fresh one first.
    wechat.fetch_access_token()
    return wechat.media.upload(kind, (name, io.BytesIO(data), content_type))


def attach(wechat, kind: str, name: str, data: bytes, content_type: str, *, attachment_type: int = 1) -> dict:
    """media/upload_attachment (wechatpy 1.8.18 lacks it): Moments (1) or product album (2) media."""
    wechat.fetch_access_token()  # see upload()
    return wechat.post("media/upload_attachment", params={"media_type": kind, "attachment_type": attachment_type},
                       files={"media": (name, io.BytesIO(data), content_type)})


def moment_with(media_id: str, kind: str = "image") -> dict:
    return {"text": {"content": "新品上市"}, "attachments": [{"msgtype": kind, kind: {"media_id": media_id}}]}


def statuses(wecom, msgid: str, userid: str) -> dict[str, int]:
    result = wecom("externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": userid})
    return {row["external_userid"]: row["status"] for row in result["send_list"]}


def errcode_of(call) -> int:
    with pytest.raises((WeChatClientException, WeComError)) as caught:
        call()
    return caught.value.errcode


def control_errcode(call) -> int:
    with pytest.raises(SandboxControlError) as caught:
        call()
    return int(re.search(r'"errcode": (\d+)', str(caught.value)).group(1))


def now(sandbox) -> int:
    return sandbox.get("state")["now"]


# -- mass sends ---------------------------------------------------------------------------------------------
def test_nothing_is_sent_until_the_member_confirms(wechat, wecom, shop):
    sent = mass_send(wechat, ["wmC1", "wmC2", "wmC3"])
    assert sent["fail_list"] == ["wmC3"]  # lisi's customer, not zhangsan's
    msgid = sent["msgid"]
    task = wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})
    assert (task["task_list"], task["next_cursor"]) == ([{"userid": "zhangsan", "status": 0}], "")
    assert statuses(wecom, msgid, "zhangsan") == {"wmC1": 0, "wmC2": 0}

    shop.do("customers/delete_member", userid="zhangsan", external_userid="wmC2")  # before zhangsan sends
    shop.do("mass_send/confirm", msgid=msgid, userid="zhangsan")
    sent_at = now(shop)
    [task] = wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})["task_list"]
    assert task["status"] == 2 and sent_at - 2 <= task["send_time"] <= sent_at
    send_list = wecom("externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": "zhangsan"})
    assert send_list["send_list"] == [
        {"external_userid": "wmC1", "userid": "zhangsan", "status": 1, "send_time": task["send_time"]},
        {"external_userid": "wmC2", "userid": "zhangsan", "status": 2}]
    assert control_errcode(lambda: shop.do("mass_send/confirm", msgid=msgid, userid="zhangsan")) == 40058


def test_who_receives_the_task(wechat, wecom, shop):
    # Without a sender, the member who last dealt with the customer gets it: lisi for C4, zhangsan for C1.
    msgid = mass_send(wechat, ["wmC1", "wmC4"], sender=None)["msgid"]
    tasks = wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})["task_list"]
    assert [t["userid"] for t in tasks] == ["lisi", "zhangsan"]
    assert statuses(wecom, msgid, "lisi") == {"wmC4": 0}
    # With only a sender: all of the sender's customers.
    only_sender = mass_send(wechat, [], sender="lisi")["msgid"]
    assert statuses(wecom, only_sender, "lisi") == {"wmC3": 0, "wmC4": 0}
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], sender="lisi")) == 41048  # nobody to send to
    assert errcode_of(lambda: mass_send(wechat, ["wmNobody"])) == 40096
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], sender="ghost")) == 40003
    assert errcode_of(lambda: mass_send(wechat, [], sender=None)) == 40058


def test_at_most_ten_thousand_customers_per_call(wechat, wecom, shop):
    ids = [f"wmBulk{i:05d}" for i in range(10_001)]
    with pytest.raises(WeChatClientException) as caught:
        mass_send(wechat, ids)
    assert caught.value.errcode == 40058 and "exceed max length 10000" in caught.value.errmsg

    shop.do("customers/load", customers=[{"external_userid": e, "name": e} for e in ids[:10_000]],
            follows=[{"userid": "zhangsan", "external_userid": e} for e in ids[:10_000]])
    sent = mass_send(wechat, ids[:10_000])
    assert sent["fail_list"] == []
    shop.do("mass_send/confirm_all", msgid=sent["msgid"])
    page = wecom("externalcontact/get_groupmsg_send_result",
                 data={"msgid": sent["msgid"], "userid": "zhangsan", "limit": 1000})
    assert (len(page["send_list"]), page["next_cursor"]) == (1000, "1000")
    assert {row["status"] for row in page["send_list"]} == {1}
    last = wecom("externalcontact/get_groupmsg_send_result",
                 data={"msgid": sent["msgid"], "userid": "zhangsan", "limit": 1000, "cursor": "9000"})
    assert (len(last["send_list"]), last["next_cursor"], last["send_list"][-1]["external_userid"]) == (
        1000, "", "wmBulk09999")


def test_a_customer_gets_one_mass_message_a_day(wechat, wecom, shop):
    first = mass_send(wechat, ["wmC4"], sender="zhangsan")["msgid"]
    second = mass_send(wechat, ["wmC4"], sender="lisi")["msgid"]
    shop.do("mass_send/confirm", msgid=first, userid="zhangsan")
    shop.do("mass_send/confirm", msgid=second, userid="lisi")
    assert statuses(wecom, first, "zhangsan") == {"wmC4": 1}
    assert statuses(wecom, second, "lisi") == {"wmC4": 3}  # another member, same corp, same day

    shop.do("clock/advance", seconds=DAY)
    third = mass_send(wechat, ["wmC4"], sender="lisi")["msgid"]
    shop.do("mass_send/confirm", msgid=third, userid="lisi")
    assert statuses(wecom, third, "lisi") == {"wmC4": 1}
    # A member's own mass send from the phone uses up the day too.
    personal = shop.do("mass_send/member_create", userid="zhangsan", external_userid=["wmC4", "wmC1"],
                       text={"content": "私人群发"})["mass_send"]
    assert {r["external_userid"]: r["status"] for r in personal["results"]} == {"wmC4": 3, "wmC1": 1}


def test_remind_at_most_three_times_in_24_hours(wechat, wecom, shop):
    msgid = mass_send(wechat, ["wmC1"])["msgid"]
    for _ in range(3):
        assert wecom("externalcontact/remind_groupmsg_send", data={"msgid": msgid})["errcode"] == 0
    assert errcode_of(lambda: wecom("externalcontact/remind_groupmsg_send", data={"msgid": msgid})) == 41094
    shop.do("clock/advance", seconds=DAY - 60)
    assert errcode_of(lambda: wecom("externalcontact/remind_groupmsg_send", data={"msgid": msgid})) == 41094
    shop.do("clock/advance", seconds=61)
    assert wecom("externalcontact/remind_groupmsg_send", data={"msgid": msgid})["errcode"] == 0


def test_cancel_stops_what_is_not_sent(wechat, wecom, shop):
    msgid = mass_send(wechat, ["wmC1", "wmC4"], sender=None)["msgid"]  # tasks for zhangsan and lisi
    shop.do("mass_send/confirm", msgid=msgid, userid="lisi")
    assert wecom("externalcontact/cancel_groupmsg_send", data={"msgid": msgid})["errcode"] == 0
    assert control_errcode(lambda: shop.do("mass_send/confirm", msgid=msgid, userid="zhangsan")) == 41093
    tasks = wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})["task_list"]
    assert [(t["userid"], t["status"]) for t in tasks] == [("lisi", 2), ("zhangsan", 0)]
    assert statuses(wecom, msgid, "lisi") == {"wmC4": 1}  # what was sent stays sent
    assert statuses(wecom, msgid, "zhangsan") == {"wmC1": 0}
    for endpoint in ("cancel_groupmsg_send", "remind_groupmsg_send"):
        assert errcode_of(lambda e=endpoint: wecom(f"externalcontact/{e}", data={"msgid": msgid})) == 41093

    done = mass_send(wechat, ["wmC2"])["msgid"]
    shop.do("mass_send/confirm_all", msgid=done)
    assert errcode_of(lambda: wecom("externalcontact/cancel_groupmsg_send", data={"msgid": done})) == 40058


def test_list_pages_and_filters_the_mass_sends(wechat, wecom, shop):
    api_sent = [mass_send(wechat, [c])["msgid"] for c in ("wmC1", "wmC2", "wmC4")]
    personal = shop.do("mass_send/member_create", userid="lisi", external_userid=["wmC3"],
                       text={"content": "李四的群发"})["mass_send"]["msgid"]
    t = now(shop)

    def listed(**query):
        return wecom("externalcontact/get_groupmsg_list_v2",
                     data={"chat_type": "single", "start_time": t - 60, "end_time": t + 60, **query})

    first = listed(limit=2)
    second = listed(limit=2, cursor=first["next_cursor"])
    assert [m["msgid"] for m in first["group_msg_list"] + second["group_msg_list"]] == [*api_sent, personal]
    assert (first["next_cursor"], second["next_cursor"]) == ("2", "")
    [mine] = listed(filter_type=1)["group_msg_list"]
    assert (mine["msgid"], mine["creator"], mine["create_type"], mine["text"]) == (
        personal, "lisi", 1, {"content": "李四的群发"})
    corp = listed(filter_type=0)["group_msg_list"]
    assert [m["msgid"] for m in corp] == api_sent and all("creator" not in m for m in corp)  # API-made: no creator
    assert [m["msgid"] for m in listed(creator="lisi")["group_msg_list"]] == [personal]
    assert listed(chat_type="group")["group_msg_list"] == []
    too_long = {"chat_type": "single", "start_time": t - 32 * DAY, "end_time": t}
    assert errcode_of(lambda: wecom("externalcontact/get_groupmsg_list_v2", data=too_long)) == 40058


def test_results_of_a_fresh_or_unknown_mass_send(wechat, wecom, shop):
    shop.do("config", mass_dispatch_seconds=5)  # WeCom: 41063 while it is still being dispatched
    msgid = mass_send(wechat, ["wmC1"])["msgid"]
    assert errcode_of(lambda: wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})) == 41063
    shop.do("clock/advance", seconds=5)
    assert wecom("externalcontact/get_groupmsg_task", data={"msgid": msgid})["task_list"][0]["status"] == 0
    assert errcode_of(lambda: wecom("externalcontact/get_groupmsg_task", data={"msgid": "msgNope"})) == 41047
    assert errcode_of(lambda: wecom("externalcontact/get_groupmsg_send_result", data={"userid": "lisi"})) == 41046


def test_attachments_and_group_sends(wechat, wecom, shop):
    link = {"msgtype": "link", "link": {"title": "新品", "url": "https://example.com/new"}}
    assert mass_send(wechat, ["wmC1"], attachments=[link] * 9)["fail_list"] == []
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], attachments=[link] * 10)) == 41064
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], attachments=[{"msgtype": "audio", "audio": {}}])) == 41065
    no_url = {"msgtype": "link", "link": {"title": "新品"}}
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], attachments=[no_url])) == 40058
    image = {"msgtype": "image", "image": {"media_id": "3sbxNope"}}
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], attachments=[image])) == 40007
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], text={})) == 41088

    group = {"chat_type": "group", "chat_id_list": ["wrChatA", "wrChatB"], "text": {"content": "群里好"}}
    assert errcode_of(lambda: wechat.external_contact.add_msg_template(group)) == 40058  # no sender
    msgid = wechat.external_contact.add_msg_template({**group, "sender": "zhangsan"})["msgid"]
    shop.do("mass_send/confirm", msgid=msgid, userid="zhangsan")
    rows = wecom("externalcontact/get_groupmsg_send_result", data={"msgid": msgid, "userid": "zhangsan"})
    assert [(r["chat_id"], r["status"], "external_userid" in r) for r in rows["send_list"]] == [
        ("wrChatA", 1, False), ("wrChatB", 1, False)]


# -- Moments ------------------------------------------------------------------------------------------------
def test_moments_are_created_asynchronously(wechat, wecom, shop):
    media_id = attach(wechat, "image", "moment.png", PNG, "image/png")["media_id"]
    job = wecom("externalcontact/add_moment_task", data={
        "text": {"content": "新店开业"}, "attachments": [{"msgtype": "image", "image": {"media_id": media_id}}],
        "visible_range": {"sender_list": {"user_list": ["zhangsan", "ghost"], "department_list": [2, 99]},
                          "external_contact_list": {"tag_list": ["etNoSuchTag"]}}})

    def result():
        return wecom("externalcontact/get_moment_task_result", method="get", params={"jobid": job["jobid"]})

    assert (result()["status"], result()["type"], "result" in result()) == (1, "add_moment_task", False)
    shop.do("clock/advance", seconds=2)
    assert (result()["status"], "result" in result()) == (2, False)
    shop.do("clock/advance", seconds=3)
    done = result()
    assert done["status"] == 3 and done["result"]["errcode"] == 0
    assert done["result"]["invalid_sender_list"] == {"user_list": ["ghost"], "department_list": [99]}
    assert done["result"]["invalid_external_contact_list"] == {"tag_list": ["etNoSuchTag"]}

    moment_id = done["result"]["moment_id"]
    shop.do("moments/publish", moment_id=moment_id, userid="zhangsan")
    tasks = wecom("externalcontact/get_moment_task", data={"moment_id": moment_id})
    assert (tasks["task_list"], tasks["next_cursor"]) == (
        [{"userid": "lisi", "publish_status": 0}, {"userid": "zhangsan", "publish_status": 1}], "")
    assert control_errcode(lambda: shop.do("moments/publish", moment_id=moment_id, userid="wangwu")) == 41061
    assert errcode_of(lambda: wecom("externalcontact/get_moment_task", data={"moment_id": "momNope"})) == 41060
    assert errcode_of(lambda: wecom("externalcontact/get_moment_task", data={})) == 41059
    assert errcode_of(lambda: wecom("externalcontact/get_moment_task_result", method="get",
                                    params={"jobid": "nope"})) == 40088
    shop.do("clock/advance", seconds=DAY)  # a jobid lives 24 hours
    assert errcode_of(result) == 40088


def test_moments_are_rate_limited_and_checked(wechat, shop):
    shop.do("config", moment_per_minute=3)
    moment = {"text": {"content": "每日上新"}}
    for _ in range(3):
        assert wechat.post("externalcontact/add_moment_task", data=moment)["jobid"]
    with pytest.raises(APILimitedException) as caught:
        wechat.post("externalcontact/add_moment_task", data=moment)
    assert caught.value.errcode == 45009
    shop.do("clock/advance", seconds=61)
    assert wechat.post("externalcontact/add_moment_task", data=moment)["jobid"]

    video = attach(wechat, "video", "a.mp4", MP4, "video/mp4")["media_id"]
    image = attach(wechat, "image", "a.png", PNG, "image/png")["media_id"]
    two_videos = {"attachments": [{"msgtype": "video", "video": {"media_id": video}}] * 2}
    mixed = {"attachments": [{"msgtype": "video", "video": {"media_id": video}},
                             {"msgtype": "image", "image": {"media_id": image}}]}
    video_as_image = {"attachments": [{"msgtype": "image", "image": {"media_id": video}}]}
    for body, errcode in ((two_videos, 41064), (mixed, 41065), (video_as_image, 40007), ({}, 41089)):
        assert errcode_of(lambda b=body: wechat.post("externalcontact/add_moment_task", data=b)) == errcode


# -- media ----------------------------------------------------------------------------------------------------
def test_media_expire_after_three_days(wechat, wecom, shop, settings):
    uploaded = upload(wechat, "image", "poster.png", PNG, "image/png")
    created_at = uploaded["created_at"]  # a string, as WeCom sends it
    assert uploaded["type"] == "image" and now(shop) - 2 <= int(created_at) <= now(shop)
    image = [{"msgtype": "image", "image": {"media_id": uploaded["media_id"]}}]
    assert mass_send(wechat, ["wmC1"], attachments=image)["fail_list"] == []
    shop.do("clock/advance", seconds=3 * DAY - 30)
    assert wechat.message.send_image(settings.WECOM_AGENT_ID, ["zhangsan"], uploaded["media_id"])["msgid"]

    shop.do("clock/advance", seconds=30)
    assert errcode_of(lambda: mass_send(wechat, ["wmC1"], attachments=image)) == 40007
    assert errcode_of(lambda: wechat.message.send_image(settings.WECOM_AGENT_ID, ["zhangsan"],
                                                        uploaded["media_id"])) == 40007
    assert errcode_of(lambda: wecom("externalcontact/add_moment_task", data={"attachments": image})) == 40007
    assert errcode_of(lambda: wecom("media/get", method="get", params={"media_id": uploaded["media_id"]})) == 40007


def test_media_limits(wechat, shop):
    def rejected(kind: str, data: bytes) -> int:
        return errcode_of(lambda: upload(wechat, kind, "x.bin", data))

    assert rejected("gif", PNG) == 40005
    assert rejected("file", b"") == 44001
    assert rejected("file", b"12345") == 40006  # must be larger than 5 bytes
    assert upload(wechat, "file", "notes.txt", b"123456")["type"] == "file"
    assert rejected("image", b"GIF89a" + b"\x00" * 64) == 40004  # JPG or PNG only
    assert rejected("image", PNG + b"\x00" * (10 * 1024 * 1024)) == 40009
    assert rejected("voice", b"#!AMR\n" + b"\x00" * (2 * 1024 * 1024)) == 40006
    assert rejected("video", PNG) == 40004  # MP4 only
    attachment = wechat.post("media/upload_attachment", params={"media_type": "image", "attachment_type": 1},
                             files={"media": ("a.png", io.BytesIO(PNG), "image/png")})
    assert attachment["type"] == "image" and attachment["media_id"]


def test_moments_refuse_a_media_upload_id_with_41072(wechat, wecom, shop):
    media_id = upload(wechat, "image", "poster.png", PNG, "image/png")["media_id"]
    assert errcode_of(lambda: wecom("externalcontact/add_moment_task", data=moment_with(media_id))) == 41072
    assert mass_send(wechat, ["wmC1"], attachments=moment_with(media_id)["attachments"])["fail_list"] == []


def test_moments_refuse_a_product_album_attachment_with_41072(wechat, wecom, shop):
    album = attach(wechat, "image", "sku.png", PNG, "image/png", attachment_type=2)["media_id"]
    assert errcode_of(lambda: wecom("externalcontact/add_moment_task", data=moment_with(album))) == 41072


def test_moments_take_an_attachment_for_three_days(wechat, wecom, shop):
    media_id = attach(wechat, "image", "moment.png", PNG, "image/png")["media_id"]
    assert wecom("externalcontact/add_moment_task", data=moment_with(media_id))["jobid"]
    shop.do("clock/advance", seconds=3 * DAY)
    assert errcode_of(lambda: wecom("externalcontact/add_moment_task", data=moment_with(media_id))) == 40007


def test_moments_attachments_are_images_or_videos_only(wechat, shop):
    assert errcode_of(lambda: attach(wechat, "file", "menu.pdf", b"%PDF-1.4 menu", "application/pdf")) == 40005
    assert errcode_of(lambda: attach(wechat, "video", "a.mp4", MP4, "video/mp4", attachment_type=2)) == 40005


def test_a_moments_image_has_at_most_1555200_pixels_checked_at_upload(wechat, shop):
    assert attach(wechat, "image", "ok.png", png_bytes(1440, 1080), "image/png")["media_id"]
    assert errcode_of(lambda: attach(wechat, "image", "big.png", png_bytes(1441, 1080), "image/png")) == 40009
    # the pixel rule is the Moments one: the same image is a valid media/upload image and product-album image
    assert upload(wechat, "image", "big.png", png_bytes(1441, 1080), "image/png")["media_id"]
    assert attach(wechat, "image", "big.png", png_bytes(1441, 1080), "image/png", attachment_type=2)["media_id"]


def test_a_moments_video_lasts_at_most_30_seconds_checked_at_upload(wechat, shop):
    assert attach(wechat, "video", "short.mp4", mp4_bytes(seconds=30, fps=1), "video/mp4")["media_id"]
    long_video = mp4_bytes(seconds=31, fps=1)
    assert errcode_of(lambda: attach(wechat, "video", "long.mp4", long_video, "video/mp4")) == 40011
    assert upload(wechat, "video", "long.mp4", long_video, "video/mp4")["media_id"]  # fine for a mass send


def test_uploadimg_has_a_daily_quota_in_beijing_days(wechat, shop):
    shop.do("config", uploadimg_per_day=2)
    start = now(shop)
    shop.do("clock/advance", seconds=DAY - (start + 8 * 3600) % DAY + 60)  # 00:01 Beijing time

    def upload_img() -> dict:
        wechat.fetch_access_token()  # see upload()
        return wechat.media.upload_img(("logo.png", io.BytesIO(PNG), "image/png"))

    assert upload_img()["url"] and upload_img()["url"]
    with pytest.raises(APILimitedException) as caught:
        upload_img()
    assert caught.value.errcode == 45009
    shop.do("clock/advance", seconds=DAY - 120)  # 23:59 the same day
    assert errcode_of(upload_img) == 45009
    shop.do("clock/advance", seconds=120)  # the next day
    assert upload_img()["url"]


def test_uploadimg_has_a_monthly_quota(wechat, shop):
    shop.do("config", uploadimg_per_day=10, uploadimg_per_month=3)

    def upload_img() -> dict:
        wechat.fetch_access_token()  # see upload()
        return wechat.media.upload_img(("logo.png", io.BytesIO(PNG), "image/png"))

    start = now(shop)
    shop.do("clock/advance", seconds=DAY - (start + 8 * 3600) % DAY + 60)  # a day's 00:01 Beijing time
    while time.gmtime(now(shop) + 8 * 3600).tm_mday != 1:  # the first of a month
        shop.do("clock/advance", seconds=DAY)
    for _ in range(3):
        assert upload_img()["url"]
        shop.do("clock/advance", seconds=DAY)
    assert errcode_of(upload_img) == 45009  # the 4th in the month, on a day with none yet


def test_uploadimg_gives_a_permanent_url(wechat, shop):
    wechat.fetch_access_token()  # see upload()
    url = wechat.media.upload_img(("logo.png", io.BytesIO(PNG), "image/png"))["url"]
    assert url.startswith(f"{shop.url}/sandbox-file/media/")
    shop.do("clock/advance", seconds=30 * DAY)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert (response.headers["Content-Type"], response.read()) == ("image/png", PNG)


def test_media_get_answers_the_bytes(wechat, shop):
    media_id = upload(wechat, "file", "menu.txt", b"today: noodles", "text/plain")["media_id"]
    response = wechat.get("media/get", params={"media_id": media_id})  # not JSON: wechatpy hands back the response
    assert (response.content, response.headers["Content-Type"]) == (b"today: noodles", "text/plain")
    assert response.headers["Content-Disposition"] == 'attachment; filename="menu.txt"'


# -- app messages ---------------------------------------------------------------------------------------------
def test_app_messages(wechat, shop, settings):
    agent = settings.WECOM_AGENT_ID
    sent = wechat.message.send_text(agent, ["zhangsan", "ghost"], "今日排班已更新")
    assert (sent["invaliduser"], sent["invalidparty"], sent["msgid"] != "") == ("ghost", "", True)
    [received] = shop.get("app_messages", userid="zhangsan")["app_messages"]
    assert (received["msgid"], received["touser"], received["text"]) == (
        sent["msgid"], ["zhangsan"], {"content": "今日排班已更新"})
    to_all = wechat.message.send_markdown(agent, "@all", "**盘点**提醒")
    to_store = wechat.message.send_text_card(agent, [], "排班", "本周排班", "https://example.com", party_ids="2|77")
    assert to_store["invalidparty"] == "77"
    assert [m["touser"] for m in shop.get("app_messages")["app_messages"][1:]] == [
        ["lisi", "zhangsan"], ["lisi", "zhangsan"]] and to_all["invaliduser"] == ""

    assert errcode_of(lambda: wechat.message.send_text(999, ["zhangsan"], "hi")) == 40056
    assert errcode_of(lambda: wechat.message.send_text(agent, ["ghost"], "hi")) == 81013
    assert errcode_of(lambda: wechat.message.send_text(agent, ["zhangsan"], "")) == 44004
    assert errcode_of(lambda: wechat.message.send(agent, ["zhangsan"], msg={"msgtype": "fax", "fax": {}})) == 40008


# -- OAuth for the mobile page ----------------------------------------------------------------------------------
def test_oauth_codes_are_single_use_and_live_five_minutes(wechat, wecom, shop):
    code = shop.do("oauth/code", userid="zhangsan")["code"]
    user = wechat.oauth.get_user_info(code)  # wechatpy 1.8.18: the older user/getuserinfo
    assert (user["UserId"], user["DeviceId"].startswith("sbx-device-")) == ("zhangsan", True)
    assert errcode_of(lambda: wechat.oauth.get_user_info(code)) == 40029  # used

    fresh = shop.do("oauth/code", userid="lisi")["code"]
    current = wecom("auth/getuserinfo", method="get", params={"code": fresh})  # today's API
    assert (current["userid"], "UserId" in current) == ("lisi", False)

    late = shop.do("oauth/code", userid="zhangsan")["code"]
    shop.do("clock/advance", seconds=300)
    assert errcode_of(lambda: wecom("auth/getuserinfo", method="get", params={"code": late})) == 40029

    visitor = wecom("auth/getuserinfo", method="get",
                    params={"code": shop.do("oauth/code", external_userid="wmC1")["code"]})
    assert (visitor["external_userid"], visitor["openid"].startswith("o"), "userid" in visitor) == (
        "wmC1", True, False)
    assert control_errcode(lambda: shop.do("oauth/code", userid="ghost")) == 60111


def test_the_authorize_page_redirects_with_a_code(wecom, shop):
    base = f"{shop.url}/sandbox-file/oauth/authorize?redirect_uri={quote('https://portal.test/m/', safe='')}"
    with urllib.request.urlopen(f"{base}&state=s1", timeout=5) as response:
        assert "张三 (zhangsan)" in response.read().decode()
    with urllib.request.urlopen(f"{base}&state=s1&userid=zhangsan", timeout=5) as response:
        page = response.read().decode()
    code = re.search(r"url=https://portal\.test/m/\?code=(\w+)&amp;state=s1", page).group(1)
    assert wecom("auth/getuserinfo", method="get", params={"code": code})["userid"] == "zhangsan"
