"""Messaging: mass sends to customers (企业群发), Moments (客户朋友圈), media, app messages, and OAuth.

Mass sends wait for the member: ``add_msg_template`` only creates a task; nothing reaches a
customer until the member confirms it in the WeCom app (``mass_send/confirm``). Then each
customer gets status 1 sent, 2 no longer a friend, or 3 already received a mass message that
day (one per customer per day from the whole corp, whoever sends it). Moments are created
asynchronously (``jobid``, finished by the clock). Media ids expire 3 days after upload.

Error codes come from WeCom's global error code list (developer.work.weixin.qq.com/document/
path/90313, as crawled into xen0n/go-workwx errcodes/mod.go) and each API's page; where WeCom
documents no code, the choice is marked "sandbox choice".
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import html
import io
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from wecom_sandbox import addressbook, server, tables
from wecom_sandbox.server import ApiError, Call, RawReply, Sandbox, control, endpoint, file_server, on_tick

# -- error codes (90313) ---------------------------------------------------------------------------
INVALID_PARAMETER = server.INVALID_PARAMETER  # 40058
INVALID_USERID = 40003
INVALID_MEDIA_FORMAT = 40004  # 不合法的媒体文件类型
INVALID_MEDIA_TYPE = 40005  # 不合法的type参数
INVALID_FILE_SIZE = 40006
INVALID_MEDIA_ID = 40007
INVALID_MSGTYPE = 40008
INVALID_IMAGE_SIZE = 40009
INVALID_VIDEO_SIZE = 40011
INVALID_OAUTH_CODE = 40029  # used twice or older than 5 minutes
USERID_LIST_TOO_LONG = 40032  # message/send: at most 1,000 users
INVALID_AGENTID = 40056
JOBID_NOT_FOUND = 40088
MISSING_CODE = 41008
MISSING_TITLE = 41016
MISSING_MSGID = 41046
INVALID_MSGID = 41047
NO_CUSTOMER_TO_SEND = 41048
MISSING_MOMENT_ID = 41059
INVALID_MOMENT_ID = 41060
NOT_MOMENT_SENDER = 41061
NOT_AN_ATTACHMENT = 41072  # add_moment_task: a media id that is not from upload_attachment, attachment_type 1
MASS_DISPATCHING = 41063  # "群发消息正在被派发中，请稍后再试": queried right after add_msg_template
TOO_MANY_ATTACHMENTS = 41064
INVALID_ATTACHMENT_TYPE = 41065
EMPTY_ATTACHMENTS = 41088
EMPTY_MOMENT = 41089
MASS_CANCELLED = 41093
REMIND_LIMITED = 41094  # "群发提醒超过频率限制": more than 3 reminders in 24 h
INVALID_CARD_TYPE = 42031
EMPTY_MEDIA = 44001
EMPTY_TEXT = 44004
TOO_MANY_ARTICLES = 45008
RATE_LIMITED = 45009
ALL_RECIPIENTS_INVALID = 81013

# -- limits, from each API's page --------------------------------------------------------------------
MB = 1024 * 1024
MEDIA_SECONDS = 3 * 86400  # "media_id仅三天内有效"
MEDIA_LIMITS = {  # type → (max bytes, errcode above it); "所有文件size必须大于5个字节"
    "image": (10 * MB, INVALID_IMAGE_SIZE), "voice": (2 * MB, INVALID_FILE_SIZE),
    "video": (10 * MB, INVALID_VIDEO_SIZE), "file": (20 * MB, INVALID_FILE_SIZE)}
UPLOADIMG_MAX = 2 * MB  # media/uploadimg: "图片文件大小应在 5B ~ 2MB 之间"
# media/uploadimg quota, WeCom's uploadimg page as SDK docs quote it (WxJava): "每个企业每月最多可上传
# 3000张图片，每天最多可上传1000张图片" (older texts, wechatpy 1.8.18's docstring among them, say 100 a day).
# Days and months in Beijing time; config uploadimg_per_day / uploadimg_per_month.
UPLOADIMG_PER_DAY, UPLOADIMG_PER_MONTH = 1000, 3000
# upload_attachment (page 95098, as SDKs quote it): "朋友圈类型图片不超过1440 x 1080" (WECOM.md: at most
# 1,555,200 pixels, counted as pixels here) and "朋友圈类型视频时长不超过30秒", checked at upload, where that
# page states them; Moments take images and videos only ("朋友圈只支持图片、视频类型"), product albums images
# only. Config moment_image_max_pixels, moment_video_max_seconds. Some SDKs quote the page's newer text as
# "长边不超过10800像素，短边不超过1080像素": WECOM.md's pixel count stays here until that is settled.
MOMENT_IMAGE_MAX_PIXELS = 1440 * 1080
MOMENT_VIDEO_MAX_SECONDS = 30
ATTACHMENT_MEDIA_TYPES = {"1": ("image", "video"), "2": ("image",)}
MEDIA_RECEIVED_KEEP = 200  # the upload log (sandbox only) keeps the latest bodies' sizes and digests
MASS_MAX_CUSTOMERS = 10_000
MASS_MAX_ATTACHMENTS = 9
MASS_ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
MASS_REQUIRED_FIELDS = {"link": ("title", "url"), "miniprogram": ("title", "appid", "page")}
REMINDS_PER_DAY = 3
MASS_WAITING, MASS_DONE, MASS_CANCELLED_STATUS = 0, 1, 2  # msg_templates.status (the sandbox's own bookkeeping)
LIST_MAX_SECONDS = 31 * 86400  # get_groupmsg_list_v2: "起止时间间隔不能超过1个月"
OAUTH_CODE_SECONDS = 300  # "code只能使用一次，5分钟未被使用自动过期"
MOMENT_JOB_HOURS = 24  # "jobid ... 24小时有效"
CHINA_OFFSET = 8 * 3600  # WeCom's "day" is a day in Beijing time
APP_MESSAGE_TYPES = ("text", "image", "voice", "video", "file", "textcard", "news", "mpnews", "markdown",
                     "miniprogram_notice", "template_card")
TEMPLATE_CARD_TYPES = ("text_notice", "news_notice", "button_interaction", "vote_interaction", "multiple_interaction")


def _config(call: Call, key: str, default: int) -> int:
    return int(call.state.config.get(key, default))


def _day(timestamp: int) -> int:
    return (timestamp + CHINA_OFFSET) // 86400


def _new_id(call: Call, prefix: str, length: int = 28) -> str:
    return call.state.random_id(prefix, length)


def _limit(call: Call, maximum: int, default: int) -> int:
    """WeCom's paging rule: a limit above the maximum (or missing) falls back to the default."""
    try:
        limit = int(call.arg("limit") or default)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, "invalid limit") from exc
    return limit if 0 < limit <= maximum else default


def _page(call: Call, rows: list, *, maximum: int, default: int) -> tuple[list, str]:
    """(rows of this page, next_cursor); the cursor is opaque to clients, an offset here."""
    try:
        start = int(call.arg("cursor") or 0)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, "invalid cursor") from exc
    end = start + _limit(call, maximum, default)
    return rows[start:end], (str(end) if end < len(rows) else "")


def _tick_call(sandbox: Sandbox) -> Call:
    """A Call for clock-driven work, so ticks use the same helpers as requests."""
    return Call(sandbox=sandbox, method="TICK", path="tick", query={}, body={})


# -- media ------------------------------------------------------------------------------------------------
def _media(call: Call) -> dict[str, dict]:
    return call.state.table("media")


def _multipart_file(call: Call) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) of the form-data part named ``media``; every upload that got this
    far is logged (``media/received``), an empty one too, so tests can see what really arrived."""
    content_type = call.headers.get("content-type", "")
    if "multipart/form-data" not in content_type:
        _received(call, "", b"")
        raise ApiError(EMPTY_MEDIA, "empty media data: POST multipart/form-data with a part named media")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + call.raw)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "media":
            payload = part.get_payload(decode=True)  # bytes for a leaf part, None otherwise
            filename, data = part.get_filename() or "media", payload if isinstance(payload, bytes) else b""
            _received(call, filename, data)
            return filename, part.get_content_type(), data
    _received(call, "", b"")
    raise ApiError(EMPTY_MEDIA, "empty media data: no form-data part named media")


def _received(call: Call, filename: str, data: bytes) -> None:
    """The sandbox's own log of upload bodies (WeCom keeps none): size and digest, never the bytes."""
    log = call.state.table("media_received")  # insertion-ordered: oldest first
    log[call.state.random_id("up", 16)] = {"endpoint": call.path, "filename": filename, "size": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest(), "at": call.now()}
    while len(log) > MEDIA_RECEIVED_KEEP:
        del log[next(iter(log))]


@control("media/received", methods=("GET",))
def media_received(call: Call) -> dict:
    """The upload bodies that reached a media endpoint, oldest first: {endpoint, filename, size, sha256, at}.
    Calls refused before reading the body (an expired token, an injected fault) are not in it."""
    return {"received": list(call.state.table("media_received").values())}


def _check_format(kind: str, data: bytes) -> None:
    """WeCom accepts JPG/PNG images, AMR voice and MP4 video only: check the magic bytes."""
    ok = {"image": data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n",
          "voice": data[:5] == b"#!AMR", "video": data[4:8] == b"ftyp"}.get(kind, True)
    if not ok:
        raise ApiError(INVALID_MEDIA_FORMAT, f"invalid media format: {kind} must be "
                       + {"image": "JPG or PNG", "voice": "AMR", "video": "MP4"}[kind])


def _check_size(kind: str, data: bytes, maximum: int, errcode: int) -> None:
    if not data:
        raise ApiError(EMPTY_MEDIA, "empty media data")
    if len(data) <= 5:
        raise ApiError(INVALID_FILE_SIZE, "invalid file size: every file must be larger than 5 bytes")
    if len(data) > maximum:
        raise ApiError(errcode, f"invalid {kind} size: {len(data)} bytes, at most {maximum}")


def _store_media(call: Call, kind: str, *, scene: str = "", check=None) -> dict:
    filename, content_type, data = _multipart_file(call)
    _check_size(kind, data, *MEDIA_LIMITS[kind])
    _check_format(kind, data)
    if check is not None:
        check(call, kind, data)
    media_id = _new_id(call, "3sbx", 50)
    _media(call)[media_id] = {"media_id": media_id, "type": kind, "scene": scene, "filename": filename,
                              "content_type": content_type, "size": len(data), "created_at": call.now(),
                              "data": base64.b64encode(data).decode()}
    return {"type": kind, "media_id": media_id, "created_at": str(call.now())}  # WeCom sends a string


@endpoint("media/upload")
def media_upload(call: Call) -> dict:
    kind = call.query.get("type", "")
    if kind not in MEDIA_LIMITS:
        raise ApiError(INVALID_MEDIA_TYPE, f"invalid media type: {kind!r}, expected image, voice, video or file")
    return _store_media(call, kind)


@endpoint("media/upload_attachment")
def media_upload_attachment(call: Call) -> dict:
    """Attachments for Moments (attachment_type 1: images and videos) or product albums (2: images); valid
    3 days. A Moments image over 1,555,200 pixels is 40009 and a video over 30 s 40011 (sandbox choice of
    codes: WeCom's page names the limits, not the errcodes)."""
    kind, scene = call.query.get("media_type", ""), call.query.get("attachment_type", "")
    if kind not in ("image", "video", "file"):
        raise ApiError(INVALID_MEDIA_TYPE, f"invalid media_type: {kind!r}")
    if scene not in ATTACHMENT_MEDIA_TYPES:
        raise ApiError(INVALID_PARAMETER, "invalid attachment_type, expected 1 (moments) or 2 (product album)")
    if kind not in ATTACHMENT_MEDIA_TYPES[scene]:
        raise ApiError(INVALID_MEDIA_TYPE, f"invalid media_type: {kind!r} for attachment_type {scene}, expected "
                       + " or ".join(ATTACHMENT_MEDIA_TYPES[scene]))
    return _store_media(call, kind, scene=scene, check=_moment_limits if scene == "1" else None)


def _image_pixels(data: bytes) -> int | None:
    """width × height read from the image's header (Pillow opens lazily), None if it cannot be read."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except Exception:  # a damaged header: the format check has already had its say
        return None
    return width * height


def _video_seconds(data: bytes) -> float | None:
    """The container's duration (PyAV), None if it cannot be read (WeCom transcodes what it takes)."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:  # mode "r" is the default, and types it
            duration = container.duration
    except Exception:  # not a readable MP4: the magic-bytes check has already had its say
        return None
    return None if duration is None else duration / 1_000_000  # AV_TIME_BASE


def _moment_limits(call: Call, kind: str, data: bytes) -> None:
    if kind == "image":
        pixels, maximum = _image_pixels(data), _config(call, "moment_image_max_pixels", MOMENT_IMAGE_MAX_PIXELS)
        if pixels is not None and pixels > maximum:
            raise ApiError(INVALID_IMAGE_SIZE, f"invalid image size: {pixels} pixels, a Moments image has at most "
                           f"{maximum} (1440 x 1080)")
    elif kind == "video":
        seconds = _video_seconds(data)
        maximum = _config(call, "moment_video_max_seconds", MOMENT_VIDEO_MAX_SECONDS)
        if seconds is not None and seconds > maximum:
            raise ApiError(INVALID_VIDEO_SIZE, f"invalid video size: {seconds:.1f} s, a Moments video lasts at "
                           f"most {maximum} s")


def _uploadimg_quota(call: Call) -> None:
    """At most uploadimg_per_day images a (Beijing) day and uploadimg_per_month a calendar month: 45009 beyond
    (sandbox choice: WeCom documents the quota, not its errcode; 45009 is its code for "over a call limit")."""
    now = call.now()
    month = time.gmtime(now + CHINA_OFFSET)[:2]
    stamps = [image["created_at"] for image in call.state.table("media_images").values()]
    today = sum(1 for at in stamps if _day(at) == _day(now))
    this_month = sum(1 for at in stamps if time.gmtime(at + CHINA_OFFSET)[:2] == month)
    per_day = _config(call, "uploadimg_per_day", UPLOADIMG_PER_DAY)
    per_month = _config(call, "uploadimg_per_month", UPLOADIMG_PER_MONTH)
    if today >= per_day:
        raise ApiError(RATE_LIMITED, f"api freq out of limit: media/uploadimg, at most {per_day} images a day")
    if this_month >= per_month:
        raise ApiError(RATE_LIMITED, f"api freq out of limit: media/uploadimg, at most {per_month} images a month")


@endpoint("media/uploadimg")
def media_uploadimg(call: Call) -> dict:
    """A permanent image URL (for news bodies, link covers): served by the sandbox itself; a daily and a
    monthly quota per corp."""
    filename, content_type, data = _multipart_file(call)
    _check_size("image", data, UPLOADIMG_MAX, INVALID_IMAGE_SIZE)
    _check_format("image", data)
    _uploadimg_quota(call)
    name = _new_id(call, "img", 24) + (".png" if data[:4] == b"\x89PNG" else ".jpg")
    call.state.table("media_images")[name] = {"filename": filename, "created_at": call.now(),
                                              "data": base64.b64encode(data).decode()}
    return {"url": f"{call.sandbox.public_url}/sandbox-file/media/{name}"}


def media_valid(call: Call, media_id: str | None, kinds: tuple[str, ...]) -> dict:
    """The media row, or 40007 when unknown, expired (3 days) or of another type than the field needs."""
    media = _media(call).get(media_id or "")
    if media is None or call.now() >= media["created_at"] + MEDIA_SECONDS:
        raise ApiError(INVALID_MEDIA_ID, f"invalid media_id: {media_id}")
    if media["type"] not in kinds:
        raise ApiError(INVALID_MEDIA_ID, f"invalid media_id: {media_id} is a {media['type']}, not {'/'.join(kinds)}")
    return media


@endpoint("media/get", methods=("GET",))
def media_get(call: Call) -> RawReply:
    """The file's bytes (errors stay JSON, as WeCom's do)."""
    media = media_valid(call, call.arg("media_id", required=True), tuple(MEDIA_LIMITS))
    return RawReply(media["content_type"], base64.b64decode(media["data"]),
                    (("Content-Disposition", f'attachment; filename="{quote(media["filename"])}"'),))


@file_server("media")
def media_file(sandbox: Sandbox, name: str) -> tuple[str, bytes] | None:
    """The permanent URLs media/uploadimg hands out."""
    with sandbox.state.lock:  # file servers run outside the request lock
        image = sandbox.state.table("media_images").get(urlsplit(name).path.rsplit("/", 1)[-1])
    if image is None:
        return None
    return "image/png" if name.endswith(".png") else "image/jpeg", base64.b64decode(image["data"])


@on_tick
def media_expire(sandbox: Sandbox) -> None:
    """WeCom forgets temporary media after 3 days: drop the bytes so the snapshot stays small."""
    table, now = sandbox.state.table("media"), sandbox.state.now_int()
    for media_id in [k for k, m in table.items() if now >= m["created_at"] + MEDIA_SECONDS]:
        del table[media_id]


# -- mass sends (企业群发) ---------------------------------------------------------------------------------
def _mass_sends(call: Call) -> dict[str, dict]:
    return call.state.table("msg_templates")


def _mass_attachments(call: Call, attachments: list) -> list:
    if len(attachments) > MASS_MAX_ATTACHMENTS:
        raise ApiError(TOO_MANY_ATTACHMENTS, f"invalid attachments size: at most {MASS_MAX_ATTACHMENTS}")
    for item in attachments:
        kind = item.get("msgtype")
        body = item.get(kind) if kind in MASS_ATTACHMENT_TYPES else None
        if not isinstance(body, dict):
            raise ApiError(INVALID_ATTACHMENT_TYPE, f"invalid attachments msgtype: {kind!r}")
        if kind == "image" and not body.get("pic_url"):
            media_valid(call, body.get("media_id"), ("image",))
        elif kind in ("video", "file"):
            media_valid(call, body.get("media_id"), (kind,))
        elif kind == "miniprogram":
            media_valid(call, body.get("pic_media_id"), ("image",))
        for field in MASS_REQUIRED_FIELDS.get(kind, ()):
            if not body.get(field):
                raise ApiError(INVALID_PARAMETER, f"{kind}.{field} is required")
    return attachments


def _tag_filter_ok(follow: dict, tag_filter: dict | None) -> bool:
    """Tags within a group are OR-ed, groups are AND-ed (add_msg_template's tag_filter)."""
    groups = [set(g.get("tag_list") or []) for g in (tag_filter or {}).get("group_list") or []]
    return all(groups_tags & set(follow.get("tag_ids") or []) for groups_tags in groups if groups_tags)


def _latest_follows(call: Call, wanted: set[str]) -> dict[str, dict]:
    """external_userid → its most recent active follow: WeCom hands a sender-less mass send to the member who
    last dealt with the customer (the sandbox has no chats, so: the newest relationship). One pass for 10,000."""
    latest: dict[str, dict] = {}
    for row in call.state.table("follows").values():
        ext = row["external_userid"]
        if ext in wanted and row["status"] == "active" and row["createtime"] >= latest.get(ext, row)["createtime"]:
            latest[ext] = row
    return latest


def _single_recipients(call: Call, sender: str, ids: list[str], tag_filter: dict | None) -> tuple[list, list]:
    """([(userid, external_userid)], fail_list) of a mass send to customers."""
    if not ids:  # only the sender: every customer of theirs
        follows = [f for f in tables.follows_of_member(call, sender) if _tag_filter_ok(f, tag_filter)]
        return [(f["userid"], f["external_userid"]) for f in follows], []
    for ext in ids:
        tables.customer_get_or_error(call, ext)  # an id not of this corp fails the whole call (40096)
    latest = {} if sender else _latest_follows(call, set(ids))
    pairs, fail_list = [], []
    for ext in ids:
        follow = tables.follow_active(call, sender, ext) if sender else latest.get(ext)
        if follow and _tag_filter_ok(follow, tag_filter):
            pairs.append((follow["userid"], ext))
        else:
            fail_list.append(ext)
    return pairs, fail_list


def _new_mass_send(call: Call, *, chat_type: str, sender: str, creator: str | None, text: dict | None,
                   attachments: list, targets: list[tuple[str, str]], allow_select: bool = False) -> dict:
    """A mass send waiting for its members. ``creator`` is None when the corp made it through the API:
    get_groupmsg_list_v2 then has no creator to show ("API接口创建的群发消息不返回该字段")."""
    key = "chat_id" if chat_type == "group" else "external_userid"
    msg: dict[str, Any] = {"msgid": _new_id(call, "msg"), "chat_type": chat_type, "sender": sender, "creator": creator,
           "create_type": 1 if creator else 0, "create_time": call.now(), "text": text or {},
           "attachments": attachments, "allow_select": allow_select, "status": MASS_WAITING, "reminds": [],
           "tasks": {userid: {"userid": userid, "status": 0} for userid, _ in targets},
           "results": [{key: target, "userid": userid, "status": 0} for userid, target in targets]}
    if sender:
        msg["tasks"].setdefault(sender, {"userid": sender, "status": 0})  # a group send with no chat listed
    _mass_sends(call)[msg["msgid"]] = msg
    return msg


def _mass_sender(call: Call) -> str:
    sender = call.arg("sender") or ""
    member = addressbook.members(call).get(sender)
    if sender and (member is None or not addressbook.member_is_active(member)):
        raise ApiError(INVALID_USERID, f"invalid sender: {sender}")
    return sender


def _mass_targets(call: Call, chat_type: str, sender: str) -> tuple[list[tuple[str, str]], list[str]]:
    """([(userid, external_userid or chat_id)], fail_list) of add_msg_template."""
    if chat_type == "group":
        if not sender:
            raise ApiError(INVALID_PARAMETER, "sender is required when chat_type is group")
        return [(sender, chat_id) for chat_id in call.arg("chat_id_list") or []], []
    ids = list(dict.fromkeys(call.arg("external_userid") or []))
    if len(ids) > MASS_MAX_CUSTOMERS:  # WeCom's wording for an over-long list field (40058)
        raise ApiError(INVALID_PARAMETER, f"field `external_userid` exceed max length {MASS_MAX_CUSTOMERS}. "
                                          "invalid Request Parameter")
    if not ids and not sender:
        raise ApiError(INVALID_PARAMETER, "external_userid and sender can not both be empty")
    targets, fail_list = _single_recipients(call, sender, ids, call.arg("tag_filter"))
    if not targets:
        raise ApiError(NO_CUSTOMER_TO_SEND, "no customer to send to: none of them is a friend of the sender")
    return targets, fail_list


@endpoint("externalcontact/add_msg_template")
def add_msg_template(call: Call) -> dict:
    chat_type = call.arg("chat_type") or "single"
    if chat_type not in ("single", "group"):
        raise ApiError(INVALID_PARAMETER, f"invalid chat_type: {chat_type!r}")
    text, attachments = call.arg("text") or {}, _mass_attachments(call, call.arg("attachments") or [])
    if not text.get("content") and not attachments:
        raise ApiError(EMPTY_ATTACHMENTS, "text and attachments can not both be empty")  # sandbox choice
    sender = _mass_sender(call)
    targets, fail_list = _mass_targets(call, chat_type, sender)
    msg = _new_mass_send(call, chat_type=chat_type, sender=sender, creator=None, text=text, attachments=attachments,
                         targets=targets, allow_select=bool(call.arg("allow_select")))
    return {"fail_list": fail_list, "msgid": msg["msgid"]}


def _mass_or_error(call: Call, *, settled: bool = True) -> dict:
    msgid = call.arg("msgid")
    if not msgid:
        raise ApiError(MISSING_MSGID, "missing msgid")
    msg = _mass_sends(call).get(msgid)
    if msg is None:
        raise ApiError(INVALID_MSGID, f"invalid msgid: {msgid}")
    if settled and call.now() < msg["create_time"] + _config(call, "mass_dispatch_seconds", 0):
        raise ApiError(MASS_DISPATCHING, "group msg is dispatching, please try again later")
    return msg


@endpoint("externalcontact/get_groupmsg_list_v2")
def get_groupmsg_list_v2(call: Call) -> dict:
    try:
        start, end = int(call.arg("start_time", required=True)), int(call.arg("end_time", required=True))
        filter_type = int(call.arg("filter_type", 2))
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, "invalid start_time, end_time or filter_type") from exc
    if end < start or end - start > LIST_MAX_SECONDS:
        raise ApiError(INVALID_PARAMETER, "invalid time range: end_time - start_time must be within 1 month")
    chat_type, creator = call.arg("chat_type") or "single", call.arg("creator")
    rows = [m for m in _mass_sends(call).values() if m["chat_type"] == chat_type
            and start <= m["create_time"] <= end and filter_type in (2, m["create_type"])
            and (not creator or m["creator"] == creator)]
    page, next_cursor = _page(call, sorted(rows, key=lambda m: m["create_time"]),  # stable: creation order
                              maximum=100, default=50)
    return {"next_cursor": next_cursor, "group_msg_list": [_mass_listed(m) for m in page]}


def _mass_listed(msg: dict) -> dict:
    listed = {"msgid": msg["msgid"], "create_time": msg["create_time"], "create_type": msg["create_type"],
              "text": msg["text"], "attachments": msg["attachments"]}
    if msg["creator"]:
        listed["creator"] = msg["creator"]
    return listed


@endpoint("externalcontact/get_groupmsg_task")
def get_groupmsg_task(call: Call) -> dict:
    msg = _mass_or_error(call)
    tasks = sorted(msg["tasks"].values(), key=lambda t: t["userid"])
    page, next_cursor = _page(call, tasks, maximum=1000, default=500)
    return {"next_cursor": next_cursor, "task_list": [dict(t) for t in page]}


@endpoint("externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result(call: Call) -> dict:
    msg = _mass_or_error(call)
    userid = call.arg("userid", required=True)
    rows = [r for r in msg["results"] if r["userid"] == userid]
    page, next_cursor = _page(call, rows, maximum=1000, default=500)
    return {"next_cursor": next_cursor, "send_list": [dict(r) for r in page]}


@endpoint("externalcontact/remind_groupmsg_send")
def remind_groupmsg_send(call: Call) -> dict:
    msg = _mass_or_error(call, settled=False)
    if msg["status"] == MASS_CANCELLED_STATUS:
        raise ApiError(MASS_CANCELLED, "group msg task has been cancelled")
    msg["reminds"] = [at for at in msg["reminds"] if at > call.now() - 86400]
    if len(msg["reminds"]) >= REMINDS_PER_DAY:
        raise ApiError(REMIND_LIMITED, f"remind group msg out of limit: {REMINDS_PER_DAY} times in 24 hours")
    msg["reminds"].append(call.now())
    return {}


@endpoint("externalcontact/cancel_groupmsg_send")
def cancel_groupmsg_send(call: Call) -> dict:
    msg = _mass_or_error(call, settled=False)
    if msg["status"] == MASS_CANCELLED_STATUS:
        raise ApiError(MASS_CANCELLED, "group msg task has been cancelled")
    if all(t["status"] == 2 for t in msg["tasks"].values()):  # sandbox choice: nothing left to stop
        raise ApiError(INVALID_PARAMETER, "group msg already sent by every member: nothing to cancel")
    msg["status"] = MASS_CANCELLED_STATUS  # members who already sent keep their results: WeCom cannot recall
    return {}


# -- people: members confirm mass sends in the WeCom app -------------------------------------------------------
def _receive(call: Call, row: dict) -> int:
    """The status one recipient ends with when its member sends: 1, 2 (not a friend) or 3 (one a day)."""
    target = row.get("external_userid") or row.get("chat_id")
    if "external_userid" in row and not tables.follow_active(call, row["userid"], target or ""):
        return 2
    receipts, today = call.state.table("mass_receipts"), _day(call.now())
    key = f"{target}|{today}"
    if key in receipts:
        return 3
    if len(receipts) > 50_000:  # forget earlier days
        for old in [k for k in receipts if not k.endswith(f"|{today}")]:
            del receipts[old]
    receipts[key] = {"at": call.now()}
    return 1


def _member_sends(call: Call, msg: dict, userid: str) -> dict:
    task = msg["tasks"].get(userid)
    if task is None:
        raise ApiError(INVALID_USERID, f"{userid} has no task in mass send {msg['msgid']}")
    if msg["status"] == MASS_CANCELLED_STATUS:
        raise ApiError(MASS_CANCELLED, "group msg task has been cancelled")
    if task["status"] == 2:
        raise ApiError(INVALID_PARAMETER, f"{userid} already sent mass send {msg['msgid']}")
    task.update(status=2, send_time=call.now())
    for row in msg["results"]:
        if row["userid"] == userid:
            row["status"] = _receive(call, row)
            if row["status"] == 1:
                row["send_time"] = call.now()
    if all(t["status"] == 2 for t in msg["tasks"].values()):
        msg["status"] = MASS_DONE
    return task


@control("mass_send/confirm")
def mass_send_confirm(call: Call) -> dict:
    """The member taps "send" on the mass-send task in the WeCom app: {"msgid", "userid"}."""
    msg = _mass_or_error(call, settled=False)
    _member_sends(call, msg, call.arg("userid", required=True))
    return {"mass_send": msg}


@control("mass_send/confirm_all")
def mass_send_confirm_all(call: Call) -> dict:
    """Every member who has not sent yet sends now: {"msgid"}."""
    msg = _mass_or_error(call, settled=False)
    for userid, task in sorted(msg["tasks"].items()):
        if task["status"] != 2:
            _member_sends(call, msg, userid)
    return {"mass_send": msg}


@control("mass_send/member_create")
def mass_send_member_create(call: Call) -> dict:
    """A member mass-sends from their own phone (个人发表, create_type 1): sent at once, and it uses up each
    customer's one mass message of the day like any other. {"userid", "external_userid": [...], "text"}."""
    userid = call.arg("userid", required=True)
    addressbook.member_get_or_error(call, userid)
    targets, _ = _single_recipients(call, userid, list(call.arg("external_userid") or []), None)
    text = call.arg("text") or {}
    msg = _new_mass_send(call, chat_type="single", sender=userid, creator=userid,
                         text=text if isinstance(text, dict) else {"content": str(text)}, attachments=[],
                         targets=targets)
    _member_sends(call, msg, userid)
    return {"mass_send": msg}


@control("mass_sends", methods=("GET",))
def mass_sends_list(call: Call) -> dict:
    return {"mass_sends": sorted(_mass_sends(call).values(), key=lambda m: m["create_time"])}


# -- Moments (客户朋友圈) ------------------------------------------------------------------------------------
def _moment_attachments(call: Call, attachments: list) -> list:
    kinds = {a.get("msgtype") for a in attachments}
    if not kinds <= {"image", "video", "link"} or len(kinds) > 1:
        raise ApiError(INVALID_ATTACHMENT_TYPE, "invalid attachments msgtype: 9 images, or 1 video, or 1 link")
    kind = kinds.pop() if kinds else None
    if len(attachments) > (9 if kind == "image" else 1):
        raise ApiError(TOO_MANY_ATTACHMENTS, "invalid attachments size: 9 images, or 1 video, or 1 link")
    for item in attachments:
        body = item.get(kind) or {}
        media = media_valid(call, body.get("media_id"), ("video",) if kind == "video" else ("image",))
        if media.get("scene") != "1":  # WECOM.md, Moments: only upload_attachment ids, attachment_type 1
            raise ApiError(NOT_AN_ATTACHMENT, f"invalid media_id: {body.get('media_id')} was not uploaded with "
                           "media/upload_attachment, attachment_type 1 (moments)")
        if kind == "link" and not body.get("url"):
            raise ApiError(INVALID_PARAMETER, "link.url is required")
    return attachments


def _moment_rate_check(call: Call) -> None:
    """About 10 add_moment_task per minute per corp (config moment_per_minute): a sliding minute."""
    table = call.state.table("moment_rate")
    recent = [at for at in table.get("calls", []) if at > call.now() - 60]
    if len(recent) >= _config(call, "moment_per_minute", 10):
        table["calls"] = recent
        raise ApiError(RATE_LIMITED, "api freq out of limit: add_moment_task")
    table["calls"] = [*recent, call.now()]


@endpoint("externalcontact/add_moment_task")
def add_moment_task(call: Call) -> dict:
    text = call.arg("text") or {}
    attachments = call.arg("attachments") or []
    if not text.get("content") and not attachments:
        raise ApiError(EMPTY_MOMENT, "text and attachments can not both be empty")
    if len(text.get("content") or "") > 2000:
        raise ApiError(INVALID_PARAMETER, "invalid text size: at most 2000 characters")
    _moment_attachments(call, attachments)
    _moment_rate_check(call)
    jobid = _new_id(call, "sbxjob", 32)
    call.state.table("moment_jobs")[jobid] = {
        "jobid": jobid, "created_at": call.now(), "status": 1, "result": None,
        "moment": {"text": text, "attachments": attachments, "visible_range": call.arg("visible_range") or {}}}
    return {"jobid": jobid}


@endpoint("externalcontact/get_moment_task_result", methods=("GET",))
def get_moment_task_result(call: Call) -> dict:
    job = call.state.table("moment_jobs").get(call.arg("jobid") or "")
    if job is None or not _moment_job_advance(call, job):
        raise ApiError(JOBID_NOT_FOUND, "jobid not found")
    answer = {"status": job["status"], "type": "add_moment_task"}
    if job["result"] is not None:  # "当任务完成后此字段有效"
        answer["result"] = job["result"]
    return answer


def _moment_senders(call: Call, sender_list: dict | None) -> tuple[list[str], dict]:
    """(valid senders, invalid_sender_list); no sender_list means every member the app sees."""
    members = addressbook.members(call)
    active = {u for u, m in members.items() if addressbook.member_is_active(m)}
    if not sender_list:
        return sorted(active), {"user_list": [], "department_list": []}
    users = list(sender_list.get("user_list") or [])
    departments = [int(d) for d in sender_list.get("department_list") or []]
    known_departments = {int(k) for k in addressbook.departments(call)}
    senders = {u for u in users if u in active}
    senders |= {u for u in active if set(members[u]["department"]) & set(departments)}
    return sorted(senders), {"user_list": [u for u in users if u not in active],
                             "department_list": [d for d in departments if d not in known_departments]}


def _moment_finish(call: Call, job: dict) -> None:
    visible = job["moment"]["visible_range"]
    senders, invalid_senders = _moment_senders(call, visible.get("sender_list"))
    tags = call.state.table("tags")
    tag_list = (visible.get("external_contact_list") or {}).get("tag_list") or []
    invalid_tags = [t for t in tag_list if t not in tags or tags[t].get("deleted")]
    moment_id = _new_id(call, "mom")
    call.state.table("moments")[moment_id] = {
        "moment_id": moment_id, "create_time": call.now(), "create_type": 0, "visible_type": 0 if tag_list else 1,
        "text": job["moment"]["text"], "attachments": job["moment"]["attachments"], "tag_list": tag_list,
        "tasks": {u: {"userid": u, "publish_status": 0} for u in senders}}
    job.update(status=3, result={"errcode": 0, "errmsg": "ok", "moment_id": moment_id,
                                 "invalid_sender_list": invalid_senders,
                                 "invalid_external_contact_list": {"tag_list": invalid_tags}})


def _moment_job_advance(call: Call, job: dict) -> bool:
    """Started (1), processing (2) after 2 s, done (3) after moment_job_seconds (default 5): a function of the
    sandbox clock, so a query right after clock/advance sees the same as the ticker. False once the jobid
    is past its 24 hours."""
    age = call.now() - job["created_at"]
    if job["status"] != 3 and age >= _config(call, "moment_job_seconds", 5):
        _moment_finish(call, job)
    elif job["status"] == 1 and age >= 2:
        job["status"] = 2
    return age <= MOMENT_JOB_HOURS * 3600


@on_tick
def moment_jobs_advance(sandbox: Sandbox) -> None:
    call = _tick_call(sandbox)
    jobs = call.state.table("moment_jobs")
    for jobid in [jobid for jobid, job in jobs.items() if not _moment_job_advance(call, job)]:
        del jobs[jobid]


def _moment_or_error(call: Call) -> dict:
    moment_id = call.arg("moment_id")
    if not moment_id:
        raise ApiError(MISSING_MOMENT_ID, "missing moment_id")
    moment = call.state.table("moments").get(moment_id)
    if moment is None:
        raise ApiError(INVALID_MOMENT_ID, f"invalid moment_id: {moment_id}")
    return moment


@endpoint("externalcontact/get_moment_task")
def get_moment_task(call: Call) -> dict:
    tasks = sorted(_moment_or_error(call)["tasks"].values(), key=lambda t: t["userid"])
    page, next_cursor = _page(call, tasks, maximum=1000, default=500)
    return {"next_cursor": next_cursor,
            "task_list": [{"userid": t["userid"], "publish_status": t["publish_status"]} for t in page]}


@control("moments/publish")
def moment_publish(call: Call) -> dict:
    """A member publishes the corp's Moment from the WeCom app: {"moment_id", "userid"}."""
    moment = _moment_or_error(call)
    task = moment["tasks"].get(call.arg("userid", required=True))
    if task is None:
        raise ApiError(NOT_MOMENT_SENDER, "this member is not a sender of the moment")
    task.update(publish_status=1, publish_time=call.now())
    return {"moment": moment}


@control("moments", methods=("GET",))
def moments_list(call: Call) -> dict:
    return {"moments": list(call.state.table("moments").values()),
            "jobs": list(call.state.table("moment_jobs").values())}


# -- app messages (message/send) ----------------------------------------------------------------------------
# Limits (WeCom's 发送应用消息 page 90236 and its frequency-limit notes, as SDKs quote them):
# "每应用不可超过账号上限数*200人次/天（注：若调用api一次发给1000人，算1000人次）";
# "每应用对同一个成员不可超过30次/分钟，1000次/小时，超过部分会被丢弃不下发".
# The windows are sliding here (sandbox choice: the strictest reading, so a portal that passes here passes
# WeCom's fixed windows too). Over the daily cap the call fails with 45009 (sandbox choice: WeCom's page
# names the cap, not its errcode; 45009 is its code for "over a call limit"), nobody receiving anything.
PARTY_TAG_MAX = 100  # toparty / totag: "最多支持100个" (errcode 40058 beyond: sandbox choice)
TEMPLATE_CARD_INTERACTIVE = ("button_interaction", "vote_interaction", "multiple_interaction")
TASK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@")
TASK_ID_MAX = 128  # "任务id，同一个应用任务id不能重复，只能由数字、字母和“_-@”组成，最长128字节"
BUTTONS_MAX = 6  # button_interaction: "列表长度不超过6"
# A reused task_id and a used or expired response_code: 40058 with WeCom's wording of the rule (sandbox choice:
# the pages state the rules, not the errcodes). Note: some integrators report WeCom answering a reused
# task_id with errcode 0 and delivering nothing; either way the portal never reuses one.
TASK_ID_EXISTS = INVALID_PARAMETER
RESPONSE_CODE_INVALID = INVALID_PARAMETER


def _required(value: Any, name: str) -> Any:
    if value in (None, "", [], {}):
        raise ApiError(INVALID_PARAMETER, f"invalid parameter, template_card.{name} is required")
    return value


def _check_card_action(card: dict) -> None:
    action = _required(card.get("card_action"), "card_action")
    kind = int(action.get("type") or 0)
    if kind == 1:
        _required(action.get("url"), "card_action.url")
    elif kind == 2:
        _required(action.get("appid"), "card_action.appid")
    elif kind != 0:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, template_card.card_action.type must be 0, 1 or 2")


def _check_options(options: Any, name: str, maximum: int) -> None:
    _required(options, name)
    if not isinstance(options, list) or len(options) > maximum:
        raise ApiError(INVALID_PARAMETER, f"invalid parameter, template_card.{name} has 1 to {maximum} options")
    ids = [_required((o or {}).get("id"), f"{name}.id") for o in options]
    for option in options:
        _required(option.get("text"), f"{name}.text")
    if len(set(ids)) != len(ids):
        raise ApiError(INVALID_PARAMETER, f"invalid parameter, template_card.{name}.id must be unique")


def _check_submit(card: dict) -> None:
    submit = _required(card.get("submit_button"), "submit_button")
    _required(submit.get("text"), "submit_button.text")
    _required(submit.get("key"), "submit_button.key")


def _check_buttons(card: dict) -> None:
    buttons = _required(card.get("button_list"), "button_list")
    if not isinstance(buttons, list) or len(buttons) > BUTTONS_MAX:
        raise ApiError(INVALID_PARAMETER, f"invalid parameter, template_card.button_list has 1 to {BUTTONS_MAX} "
                       "buttons")
    keys = []
    for button in buttons:
        _required((button or {}).get("text"), "button_list.text")
        if int(button.get("type") or 0) == 1:  # "1 代表跳转url"
            _required(button.get("url"), "button_list.url")
        else:  # "button_list.type是0时必填": the key comes back as the callback's EventKey
            keys.append(_required(button.get("key"), "button_list.key"))
    if len(set(keys)) != len(keys):
        raise ApiError(INVALID_PARAMETER, "invalid parameter, template_card.button_list.key must be unique")


def _check_task_id(call: Call, card: dict) -> None:
    task_id = str(_required(card.get("task_id"), "task_id"))
    if len(task_id.encode()) > TASK_ID_MAX or not set(task_id) <= TASK_ID_CHARS:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, template_card.task_id: digits, letters and _-@, "
                       f"at most {TASK_ID_MAX} bytes")
    if task_id in call.state.table("card_tasks"):
        raise ApiError(TASK_ID_EXISTS, f"invalid parameter, template_card.task_id {task_id} already exists: "
                       "a task_id is unique per app")


def _check_template_card(call: Call, card: dict) -> None:
    """WeCom's required fields per card_type (page 90236, 模板卡片消息)."""
    card_type = card.get("card_type")
    if card_type not in TEMPLATE_CARD_TYPES:
        raise ApiError(INVALID_CARD_TYPE, f"invalid template_card.card_type: {card_type!r}")
    main_title = card.get("main_title") or {}
    if card_type in ("text_notice", "news_notice"):
        if not main_title.get("title") and not card.get("sub_title_text"):
            raise ApiError(INVALID_PARAMETER, "invalid parameter, main_title.title or sub_title_text is required")
        _check_card_action(card)
        if card.get("action_menu"):  # a notice with an action menu calls back too: it needs a task_id
            _check_task_id(call, card)
        return
    _required(main_title.get("title"), "main_title.title")
    if card_type == "button_interaction":
        _check_buttons(card)
    elif card_type == "vote_interaction":
        checkbox = _required(card.get("checkbox"), "checkbox")
        _required(checkbox.get("question_key"), "checkbox.question_key")
        _check_options(checkbox.get("option_list"), "checkbox.option_list", 20)
        _check_submit(card)
    else:  # multiple_interaction
        selects = _required(card.get("select_list"), "select_list")
        if not isinstance(selects, list) or len(selects) > 3:
            raise ApiError(INVALID_PARAMETER, "invalid parameter, template_card.select_list has 1 to 3 items")
        for select in selects:
            _required((select or {}).get("question_key"), "select_list.question_key")
            _check_options(select.get("option_list"), "select_list.option_list", 10)
        _check_submit(card)
    _check_task_id(call, card)


def _card_calls_back(card: dict) -> bool:
    return card.get("card_type") in TEMPLATE_CARD_INTERACTIVE or bool(card.get("action_menu"))


def _check_app_message(call: Call, msgtype: str, content: dict) -> None:
    if msgtype == "text" and not content.get("content"):
        raise ApiError(EMPTY_TEXT, "empty content")
    if msgtype == "markdown" and not content.get("content"):
        raise ApiError(EMPTY_TEXT, "empty markdown content")
    if msgtype in ("image", "voice", "video", "file"):
        media_valid(call, content.get("media_id"), (msgtype,))
    if msgtype == "textcard" and not content.get("title"):
        raise ApiError(MISSING_TITLE, "missing title")
    articles = content.get("articles") or []
    if msgtype in ("news", "mpnews") and not 1 <= len(articles) <= 8:
        raise ApiError(TOO_MANY_ARTICLES, "news needs 1 to 8 articles")
    if msgtype == "mpnews":
        for article in articles:
            media_valid(call, article.get("thumb_media_id"), ("image",))
    if msgtype == "template_card":
        _check_template_card(call, content)


def _app_recipients(call: Call) -> tuple[list[str], dict[str, str]]:
    """(userids reached, the invalid parts as WeCom reports them: "a|b" strings)."""
    def split(name: str) -> list[str]:
        value = call.arg(name) or ""
        return [str(v) for v in (value if isinstance(value, list) else str(value).split("|")) if str(v).strip()]

    members = {u: m for u, m in addressbook.members(call).items() if addressbook.member_is_active(m)}
    users, parties, tags = split("touser"), split("toparty"), split("totag")
    if len(users) > 1000:
        raise ApiError(USERID_LIST_TOO_LONG, "invalid userid list size: at most 1000")
    for name, values in (("toparty", parties), ("totag", tags)):
        if len(values) > PARTY_TAG_MAX:
            raise ApiError(INVALID_PARAMETER, f"invalid parameter, {name}: at most {PARTY_TAG_MAX}")
    reached = set(members) if "@all" in users else {u for u in users if u in members}
    known_parties = {p for p in parties if p in addressbook.departments(call)}
    reached |= {u for u, m in members.items() if {str(d) for d in m["department"]} & known_parties}
    invalid = {"invaliduser": "|".join(u for u in users if u != "@all" and u not in members),
               "invalidparty": "|".join(p for p in parties if p not in known_parties),
               "invalidtag": "|".join(tags), "unlicenseduser": ""}  # the sandbox has no address-book tags
    return sorted(reached), invalid


def app_message_daily_cap(call: Call) -> int:
    """账号上限数 × 200 recipients a (Beijing) day, or the configured app_message_per_day."""
    return _config(call, "app_message_per_day", 0) or _config(call, "account_limit", 20_000) * 200


def _daily_cap_check(call: Call, recipients: int) -> None:
    days, today = call.state.table("app_message_days"), str(_day(call.now()))
    for old in [d for d in days if d != today]:
        del days[old]
    cap = app_message_daily_cap(call)
    if days.get(today, 0) + recipients > cap:
        raise ApiError(RATE_LIMITED, f"api freq out of limit: message/send, at most {cap} recipients a day per app "
                       f"({days.get(today, 0)} today)")
    days[today] = days.get(today, 0) + recipients


def _deliver_within_limits(call: Call, reached: list[str]) -> tuple[list[str], list[str]]:
    """(delivered, dropped): a member past 30 in the last minute or 1,000 in the last hour gets nothing."""
    per_minute = _config(call, "app_message_per_member_minute", 30)
    per_hour = _config(call, "app_message_per_member_hour", 1000)
    stamps, now = call.state.table("app_message_deliveries"), call.now()
    delivered, dropped = [], []
    for userid in reached:
        recent = [at for at in stamps.get(userid, []) if at > now - 3600]
        if sum(1 for at in recent if at > now - 60) >= per_minute or len(recent) >= per_hour:
            dropped.append(userid)
        else:
            recent.append(now)
            delivered.append(userid)
        stamps[userid] = recent
    return delivered, dropped


def _response_code_new(call: Call, *, msgid: str, userid: str = "") -> str:
    code = _new_id(call, "sbxrc", 40)
    call.state.table("card_codes")[code] = {"msgid": msgid, "userid": userid, "created_at": call.now(),
                                            "used_at": None}
    return code


@endpoint("message/send")
def message_send(call: Call) -> dict:
    if str(call.arg("agentid", "")) != call.sandbox.corp.agent_id:
        raise ApiError(INVALID_AGENTID, f"invalid agentid: {call.arg('agentid')}")
    msgtype = call.arg("msgtype")
    if msgtype not in APP_MESSAGE_TYPES:
        raise ApiError(INVALID_MSGTYPE, f"invalid message type: {msgtype!r}")
    content = call.arg(msgtype) or {}
    _check_app_message(call, msgtype, content)
    reached, invalid = _app_recipients(call)
    if not reached:
        raise ApiError(ALL_RECIPIENTS_INVALID, "user & party & tag all invalid")
    _daily_cap_check(call, len(reached))
    delivered, dropped = _deliver_within_limits(call, reached)
    msgid = _new_id(call, "sbxmsg", 40)
    row: dict[str, Any] = {"msgid": msgid, "msgtype": msgtype, msgtype: content, "touser": delivered,
                           "dropped": dropped, "sent_at": call.now(), **invalid}
    answer: dict[str, Any] = {**invalid, "msgid": msgid}
    if msgtype == "template_card" and _card_calls_back(content):
        row["task_id"] = str(content.get("task_id") or "")
        row["cards"] = {}  # userid → what update_template_card changed on that member's card
        if row["task_id"]:
            call.state.table("card_tasks")[row["task_id"]] = msgid
        answer["response_code"] = _response_code_new(call, msgid=msgid)
    call.state.table("app_messages")[msgid] = row
    return answer


def _card_message(call: Call, *, msgid: str | None, task_id: str | None) -> dict:
    messages = call.state.table("app_messages")
    if not msgid and task_id:
        msgid = call.state.table("card_tasks").get(task_id)
    row = messages.get(msgid or "")
    if row is None or "cards" not in row:
        raise ApiError(INVALID_MSGID, f"no interactive template card with msgid {msgid!r} / task_id {task_id!r}")
    return row


@endpoint("message/update_template_card")
def update_template_card(call: Call) -> dict:
    """Update a card with a response_code: the send's (everyone's card) or a click's; each code once, within
    template_card_code_seconds (24 h). ``button.replace_name`` greys the button out with that text; a whole
    ``template_card`` replaces the card."""
    if str(call.arg("agentid", "")) != call.sandbox.corp.agent_id:
        raise ApiError(INVALID_AGENTID, f"invalid agentid: {call.arg('agentid')}")
    code = call.arg("response_code")
    if not code:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, response_code is required")
    row = call.state.table("card_codes").get(code)
    if row is None:
        raise ApiError(RESPONSE_CODE_INVALID, "invalid response_code")
    if row["used_at"] is not None:
        raise ApiError(RESPONSE_CODE_INVALID, "invalid response_code: a response_code updates a card once")
    if call.now() > row["created_at"] + _config(call, "template_card_code_seconds", 86_400):
        raise ApiError(RESPONSE_CODE_INVALID, "invalid response_code: expired")
    button, card = call.arg("button") or {}, call.arg("template_card") or {}
    if not button.get("replace_name") and not card:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, button.replace_name or template_card is required")
    if card and card.get("card_type") not in TEMPLATE_CARD_TYPES:
        raise ApiError(INVALID_CARD_TYPE, f"invalid template_card.card_type: {card.get('card_type')!r}")
    message = call.state.table("app_messages")[row["msgid"]]
    userids = [str(u) for u in call.arg("userids") or []]
    if len(userids) > 1000:
        raise ApiError(USERID_LIST_TOO_LONG, "invalid userid list size: at most 1000")
    atall = int(call.arg("atall") or 0) == 1
    if not userids and not atall:
        raise ApiError(INVALID_PARAMETER, "invalid parameter, userids, partyids, tagids or atall is required")
    row["used_at"] = call.now()
    targets = list(message["touser"]) if atall else [u for u in userids if u in message["touser"]]
    for userid in targets:
        message["cards"][userid] = {"updated_at": call.now(), "button": button, "template_card": card}
    return {"invaliduser": [u for u in userids if u not in message["touser"]]}


@control("app_messages/click")
def app_message_click(call: Call) -> dict:
    """A member clicks a card's button (or submits a vote / multiple choice) in WeCom: {"userid", "msgid" or
    "task_id", "key", "selected_items": {question_key: [option ids]}}. WeCom answers with a template_card_event
    callback carrying a fresh ResponseCode for this click."""
    userid = call.arg("userid", required=True)
    message = _card_message(call, msgid=call.arg("msgid"), task_id=call.arg("task_id"))
    if userid not in message["touser"]:
        raise ApiError(INVALID_USERID, f"{userid} did not receive this card (not a recipient, or dropped)")
    card = message["template_card"]
    updated = message["cards"].get(userid)
    if updated and updated["button"].get("replace_name"):
        raise ApiError(INVALID_PARAMETER, f"the card's buttons were replaced by {updated['button']['replace_name']!r}: "
                       "nothing to click")
    key = call.arg("key", required=True)
    keys = [b.get("key") for b in card.get("button_list") or [] if int(b.get("type") or 0) == 0]
    keys += [(card.get("submit_button") or {}).get("key")]
    keys += [m.get("key") for m in (card.get("action_menu") or {}).get("action_list") or []]
    if key not in keys:
        raise ApiError(INVALID_PARAMETER, f"the card has no button with key {key!r}")
    response_code = _response_code_new(call, msgid=message["msgid"], userid=userid)
    fields: dict[str, Any] = {"EventKey": key, "TaskId": message["task_id"], "CardType": card["card_type"],
                              "ResponseCode": response_code, "AgentID": int(call.sandbox.corp.agent_id)}
    selected = call.arg("selected_items") or {}
    if selected:
        fields["SelectedItems"] = {"SelectedItem": [{"QuestionKey": question, "OptionIds": {"OptionId": list(ids)}}
                                                    for question, ids in selected.items()]}
    call.emit("template_card_event", from_user=userid, **fields)
    return {"response_code": response_code, "event": fields}


@control("app_messages", methods=("GET",))
def app_messages_list(call: Call) -> dict:
    """What members received from the app (?userid= narrows it to one member), and what WeCom silently
    dropped (``dropped``: {msgid, userid, at}, over a member's 30 a minute or 1,000 an hour)."""
    userid = call.query.get("userid")
    rows = sorted(call.state.table("app_messages").values(), key=lambda m: m["sent_at"])
    received = [m for m in rows if not userid or userid in m["touser"]]
    dropped = [{"msgid": m["msgid"], "userid": u, "at": m["sent_at"]} for m in rows for u in m.get("dropped", [])
               if not userid or u == userid]
    today = call.state.table("app_message_days").get(str(_day(call.now())), 0)
    return {"app_messages": received, "dropped": dropped,
            "today": {"recipients": today, "cap": app_message_daily_cap(call)}}


# -- OAuth for the mobile page ------------------------------------------------------------------------------
def _issue_code(call: Call, *, userid: str = "", external_userid: str = "") -> str:
    codes = call.state.table("oauth_codes")
    for old in [c for c, row in codes.items() if call.now() >= row["created_at"] + OAUTH_CODE_SECONDS]:
        del codes[old]
    code = _new_id(call, "", 32)
    codes[code] = {"userid": userid, "external_userid": external_userid, "created_at": call.now()}
    return code


@control("oauth/code")
def oauth_code(call: Call) -> dict:
    """A member (or a customer: {"external_userid"}) opens the app's page in WeCom: the code WeCom appends."""
    if call.arg("external_userid"):
        tables.customer_get_or_error(call, call.arg("external_userid"))
        return {"code": _issue_code(call, external_userid=call.arg("external_userid"))}
    member = addressbook.member_get_or_error(call, call.arg("userid", required=True))
    if not addressbook.member_is_active(member):
        raise ApiError(addressbook.USER_NOT_FOUND, "the member is disabled")
    return {"code": _issue_code(call, userid=member["userid"])}


def _redeem_code(call: Call) -> dict:
    """Codes are single-use and live 5 minutes; both failures are 40029."""
    code = call.arg("code")
    if not code:
        raise ApiError(MISSING_CODE, "missing code")
    row = call.state.table("oauth_codes").pop(code, None)
    if row is None or call.now() >= row["created_at"] + OAUTH_CODE_SECONDS:
        raise ApiError(INVALID_OAUTH_CODE, "invalid code")
    return row


def _openid(external_userid: str) -> str:
    return "o" + external_userid[-27:]


@endpoint("auth/getuserinfo", methods=("GET",))
def auth_getuserinfo(call: Call) -> dict:
    """The current API: {"userid"} for members, {"openid", "external_userid"} for others (no user_ticket:
    the sandbox only plays scope snsapi_base)."""
    row = _redeem_code(call)
    if row["userid"]:
        return {"userid": row["userid"]}
    return {"openid": _openid(row["external_userid"]), "external_userid": row["external_userid"]}


@endpoint("user/getuserinfo", methods=("GET",))
def user_getuserinfo(call: Call) -> dict:
    """The older path wechatpy 1.8.18's oauth.get_user_info calls: UserId / OpenId and DeviceId."""
    row = _redeem_code(call)
    device = "sbx-device-" + (row["userid"] or row["external_userid"])
    if row["userid"]:
        return {"UserId": row["userid"], "DeviceId": device}
    return {"OpenId": _openid(row["external_userid"]), "DeviceId": device, "external_userid": row["external_userid"]}


def _html(title: str, body: str, head: str = "") -> tuple[str, bytes]:
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{head}"
            f"<meta name='viewport' content='width=device-width'></head><body><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")
    return "text/html; charset=utf-8", page.encode()


@file_server("oauth")
def oauth_authorize(sandbox: Sandbox, name: str) -> tuple[str, bytes] | None:
    """WeCom's authorize page: /sandbox-file/oauth/authorize?redirect_uri=…&state=…[&userid=…]. Without
    userid it lists the active members to pick from; with it, it redirects to redirect_uri?code=…&state=…."""
    parts = urlsplit(name)
    if parts.path != "oauth/authorize":
        return None
    query = dict(parse_qsl(parts.query))
    if not query.get("redirect_uri"):
        return _html("redirect_uri 参数错误", "<p>redirect_uri is required.</p>")
    with sandbox.state.lock:  # file servers run outside the request lock
        page = _authorize_page(_tick_call(sandbox), query)
        sandbox.state.mark_dirty()
    return page


def _authorize_page(call: Call, query: dict) -> tuple[str, bytes]:
    members, userid = addressbook.members(call), query.get("userid", "")
    if userid in members and addressbook.member_is_active(members[userid]):
        redirect_uri = query["redirect_uri"]
        target = redirect_uri + ("&" if "?" in redirect_uri else "?") + urlencode(
            {"code": _issue_code(call, userid=userid), "state": query.get("state", "")})
        return _html("正在跳转", f"<p><a href='{html.escape(target)}'>继续</a></p>",
                     f"<meta http-equiv='refresh' content='0;url={html.escape(target)}'>")
    links = "".join(f"<li><a href='/sandbox-file/oauth/authorize?{html.escape(urlencode({**query, 'userid': u}))}'>"
                    f"{html.escape(m['name'])} ({html.escape(u)})</a></li>"
                    for u, m in sorted(members.items()) if addressbook.member_is_active(m))
    return _html("选择企业微信成员", f"<ul>{links or '<li>no active member</li>'}</ul>")

