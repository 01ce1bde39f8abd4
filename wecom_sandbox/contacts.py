"""Customer contact (客户联系): customers and their follows, corp tags, 「联系我」 contact ways, welcome messages
and behaviour data; and the people who scan, add, delete and edit (→ change_external_contact, change_external_tag).

Shared rows (customers, follows, tag_groups, tags) follow the layout in ``tables.py``. This module also owns:

    contact_ways    config_id → {config_id, type, scene, style, remark, skip_verify, state, user, party,
                                 create_time, rotation, ...}
    welcome_codes   code → {code, userid, external_userid, issued_at, used_at}
    welcome_messages "n" → what send_welcome_msg received (newest has the highest n)
    chat_stats      "userid|stat_time" → {chat_cnt, message_cnt, reply_percentage, avg_reply_time}

Error codes come from WeCom's global error code list (as generated into zsmhub/workweixin apis/api_error.go)
and the endpoint pages on developer.work.weixin.qq.com.
"""

from __future__ import annotations

import base64
import io
import secrets

import qrcode
from qrcode.image.pure import PyPNGImage

from wecom_sandbox import server, tables
from wecom_sandbox.addressbook import departments, member_is_active, members
from wecom_sandbox.server import INVALID_PARAMETER, ApiError, Call, control, endpoint, on_tick
from wecom_sandbox.tables import NOT_EXTERNAL_CONTACT, follow_active, follows_of_member

INVALID_USERID, DEPARTMENT_LIST_INVALID = 40003, 40066
TAG_NOT_FOUND, TAG_NAME_EXISTS, TAG_NAME_LENGTH = 40068, 40071, 40072
CUSTOMER_LIMIT_REACHED = 40099  # 外部联系人的数量已达上限
TAG_LIMIT_REACHED = 40126  # 企业标签个数达到上限，最多为3000个
WAY_TYPE_MISSING, WAY_SCENE_MISSING, WAY_TYPE_INVALID, WAY_SCENE_INVALID = 41037, 41038, 41039, 41040
WAY_TOO_MANY_USERS = 41041  # 「联系我」使用人数超过限制 (100, departments expanded)
WAY_CONFIG_MISSING, WAY_CONFIG_INVALID, WAY_LIMIT_REACHED = 41043, 41044, 41045
WELCOME_CODE_MISSING = 41049
WELCOME_CODE_INVALID = 41050  # unknown, or older than 20 s ("须在添加好友后20秒内使用")
WELCOME_ALREADY_SENT = 41051  # "externaluser has started chatting": the code was used
ATTACHMENT_TYPE_INVALID = 41065
NO_CONTACT_PERMISSION = 84074  # 没有外部联系人权限: a disabled member
INVALID_TIME_RANGE = 600018  # "invalid start endtime"

NAME_MAX = WAY_TEXT_MAX = 30  # tag and group names; a contact way's remark and state
REMARK_MAX, DESCRIPTION_MAX = 20, 150  # the remark page says 20 (WECOM.md says 30; the documentation wins)
WAY_MEMBERS_MAX, WAYS_PER_CORP, TAGS_PER_CORP = 100, 500_000, 3_000
WELCOME_SECONDS, WELCOME_ATTACHMENTS_MAX = 20, 9
ATTACHMENT_TYPES = ("image", "link", "miniprogram", "video", "file")
FOLLOW_USER_PAGE = 500  # externalcontact/get pages follow_user beyond 500 members
DAY, CST = 86_400, 8 * 3_600  # WeCom's days start at midnight China time
BEHAVIOR_SPAN_DAYS, BEHAVIOR_HISTORY_DAYS = 30, 180
MEMBER_ADD_WAY = 2  # 搜索手机号添加: the default way a member adds a customer


# -- small helpers ------------------------------------------------------------------------------
def _encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") if value else ""


def _decode_cursor(cursor: str | None) -> str:
    if not cursor:
        return ""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(INVALID_PARAMETER, "invalid cursor") from exc


def _text(call: Call, name: str, limit: int) -> str | None:
    value = call.arg(name)
    if value is not None and len(str(value)) > limit:
        raise ApiError(INVALID_PARAMETER, f"invalid {name}: at most {limit} characters")
    return None if value is None else str(value)


def _int(call: Call, name: str, default: int = 0) -> int:
    value = call.arg(name)
    try:
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, f"invalid {name}: {value!r}") from exc


def _id_list(value) -> list:
    if value in (None, ""):
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _member_or_error(call: Call, userid: str | None) -> dict:
    member = members(call).get(userid or "")
    if member is None:
        raise ApiError(INVALID_USERID, f"invalid userid: {userid}")
    return member


def _relationship_or_error(call: Call, userid: str | None, external_userid: str | None) -> dict:
    tables.customer_get_or_error(call, external_userid)
    _member_or_error(call, userid)
    row = follow_active(call, userid or "", external_userid or "")  # both checked just above
    if row is None:
        raise ApiError(NOT_EXTERNAL_CONTACT, f"not external contact: {userid} and {external_userid}")
    return row


def _day(timestamp: int) -> int:
    return (int(timestamp) + CST) // DAY * DAY - CST


# -- customers and follows as WeCom shows them --------------------------------------------------
def _customer_json(customer: dict) -> dict:
    shown = {k: customer[k] for k in ("external_userid", "name", "type", "gender", "avatar")}
    # WeCom leaves out what a customer does not have (WeChat users have no corp or position).
    shown.update({k: customer[k] for k in ("unionid", "position", "corp_name", "corp_full_name") if customer.get(k)})
    return shown


def _live_tag_ids(call: Call, row: dict) -> list[str]:
    tags = call.state.table("tags")
    return [t for t in row["tag_ids"] if t in tags and not tags[t]["deleted"]]


def _follow_common(row: dict) -> dict:
    shown = {k: row[k] for k in ("userid", "remark", "description", "createtime")}
    if row.get("remark_corp_name"):
        shown["remark_corp_name"] = row["remark_corp_name"]
    shown.update(remark_mobiles=row["remark_mobiles"], oper_userid=row["oper_userid"], add_way=row["add_way"])
    if row["state"]:  # only present when the customer came through a contact way with a state
        shown["state"] = row["state"]
    return shown


def _follow_user_json(call: Call, row: dict) -> dict:
    tags, groups = call.state.table("tags"), call.state.table("tag_groups")
    return {**_follow_common(row), "tags": [{"group_name": groups[tags[t]["group_id"]]["group_name"],
                                             "tag_name": tags[t]["name"], "tag_id": t, "type": 1}
                                            for t in _live_tag_ids(call, row)]}


@endpoint("externalcontact/get_follow_user_list", methods=("GET",))
def follow_user_list(call: Call) -> dict:
    """Members with customer contact enabled: in the sandbox, every active member."""
    return {"follow_user": sorted(u for u, m in members(call).items() if member_is_active(m))}


@endpoint("externalcontact/list", methods=("GET",))
def external_contact_list(call: Call) -> dict:
    userid = call.arg("userid", required=True)
    _member_or_error(call, userid)
    rows = sorted(follows_of_member(call, userid), key=lambda f: (f["createtime"], f["external_userid"]))
    if not rows:  # WeCom answers a member without customers with 84061, not with an empty list
        raise ApiError(NOT_EXTERNAL_CONTACT, "not external contact")
    return {"external_userid": [f["external_userid"] for f in rows]}


@endpoint("externalcontact/get", methods=("GET",))
def external_contact_get(call: Call) -> dict:
    customer = tables.customer_get_or_error(call, call.arg("external_userid", required=True))
    rows = sorted(tables.follows_of_customer(call, customer["external_userid"]), key=lambda f: f["createtime"])
    if not rows:
        raise ApiError(NOT_EXTERNAL_CONTACT, "not external contact")
    cursor = _decode_cursor(call.arg("cursor"))
    start = int(cursor) if cursor.isdigit() else 0
    page = rows[start:start + FOLLOW_USER_PAGE]
    more = start + FOLLOW_USER_PAGE < len(rows)
    return {"external_contact": _customer_json(customer), "follow_user": [_follow_user_json(call, r) for r in page],
            "next_cursor": _encode_cursor(str(start + FOLLOW_USER_PAGE)) if more else ""}


@endpoint("externalcontact/batch/get_by_user")
def external_contact_batch(call: Call) -> dict:
    """Keyset paging over "userid|external_userid" keys: stable, and rows added meanwhile never repeat one."""
    userids = _id_list(call.arg("userid_list"))
    if not userids or len(userids) > 100:
        raise ApiError(INVALID_PARAMETER, "invalid userid_list: 1 to 100 userids")
    for userid in userids:
        _member_or_error(call, userid)
    limit = min(max(_int(call, "limit", 50), 1), 100)  # WeCom clamps a limit above 100 to 100
    after, wanted = _decode_cursor(call.arg("cursor")), set(userids)
    keys = sorted(k for k, f in call.state.table("follows").items()
                  if k > after and f["status"] == "active" and f["userid"] in wanted)
    follows, customers = call.state.table("follows"), call.state.table("customers")
    page = keys[:limit]
    return {"external_contact_list": [
        {"external_contact": _customer_json(customers[follows[k]["external_userid"]]),
         "follow_info": {**_follow_common(follows[k]), "tag_id": _live_tag_ids(call, follows[k])}} for k in page],
        "next_cursor": _encode_cursor(page[-1]) if len(keys) > limit else ""}


@endpoint("externalcontact/remark")
def external_contact_remark(call: Call) -> dict:
    row = _relationship_or_error(call, call.arg("userid"), call.arg("external_userid"))
    remark, description = _text(call, "remark", REMARK_MAX), _text(call, "description", DESCRIPTION_MAX)
    company, mobiles = _text(call, "remark_company", REMARK_MAX), call.arg("remark_mobiles")
    if all(v is None for v in (remark, description, company, mobiles, call.arg("remark_pic_mediaid"))):
        raise ApiError(INVALID_PARAMETER, "remark, description, remark_company, remark_mobiles and "
                                          "remark_pic_mediaid cannot all be empty")
    row.update({k: v for k, v in (("remark", remark), ("description", description)) if v is not None})
    if company is not None:
        row["remark_corp_name"] = company
    if mobiles is not None:  # replaces the old numbers; [""] clears them
        row["remark_mobiles"] = [m for m in _id_list(mobiles) if m]
    return {}


# -- corp tags ------------------------------------------------------------------------------------
def _name_or_error(name, what: str) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise ApiError(TAG_NAME_LENGTH, f"invalid {what} name: 1 to {NAME_MAX} characters")
    return name


def _live_tags(call: Call) -> dict[str, dict]:
    return {t: row for t, row in call.state.table("tags").items() if not row["deleted"]}


def _live_groups(call: Call) -> dict[str, dict]:
    return {g: row for g, row in call.state.table("tag_groups").items() if not row["deleted"]}


def _live_group(call: Call, group_id: str | None) -> dict:
    group = _live_groups(call).get(group_id or "")
    if group is None:
        raise ApiError(TAG_NOT_FOUND, f"invalid tag group id: {group_id}")
    return group


def _tag_group_create(call: Call, name: str, order: int = 0) -> dict:
    group_id = call.state.random_id("et", 30)
    group = {"group_id": group_id, "group_name": name, "create_time": call.now(), "order": order, "deleted": False}
    call.state.table("tag_groups")[group_id] = group
    return group


def _tag_create(call: Call, group_id: str, name: str, order: int = 0) -> dict:
    tag_id = call.state.random_id("et", 30)
    tag = {"id": tag_id, "name": name, "group_id": group_id, "create_time": call.now(), "order": order,
           "deleted": False}
    call.state.table("tags")[tag_id] = tag
    return tag


def _tags_new_or_error(call: Call, group_id: str | None, names: list[str]) -> None:
    """The same name twice in a group is 40071; past 3,000 live tags per corp is 40126."""
    existing = {t["name"] for t in _live_tags(call).values() if t["group_id"] == group_id}
    if len(set(names)) < len(names) or existing & set(names):
        raise ApiError(TAG_NAME_EXISTS, "invalid tag name: tag name already exists in this group")
    if len(_live_tags(call)) + len(names) > TAGS_PER_CORP:
        raise ApiError(TAG_LIMIT_REACHED, f"corp tag count reaches the limit of {TAGS_PER_CORP}")


def _tags_delete(call: Call, tag_ids: set[str]) -> None:
    tags = call.state.table("tags")
    for tag_id in tag_ids:
        tags[tag_id]["deleted"] = True
    # Customers lose a deleted tag (other areas read follow tag_ids directly, e.g. mass-send tag filters).
    for row in call.state.table("follows").values():
        if row["tag_ids"] and not tag_ids.isdisjoint(row["tag_ids"]):
            row["tag_ids"] = [t for t in row["tag_ids"] if t not in tag_ids]
    # "如果一个标签组下所有的标签均被删除，则标签组会被自动删除"
    live_groups = {t["group_id"] for t in _live_tags(call).values()}
    for group_id in {tags[t]["group_id"] for t in tag_ids} - live_groups:
        call.state.table("tag_groups")[group_id]["deleted"] = True


def _groups_delete(call: Call, group_ids: set[str]) -> None:
    for group_id in group_ids:
        call.state.table("tag_groups")[group_id]["deleted"] = True
    _tags_delete(call, {t for t, row in _live_tags(call).items() if row["group_id"] in group_ids})


def _group_json(group: dict, tags: list[dict]) -> dict:
    ordered = sorted(tags, key=lambda t: (-t["order"], t["create_time"], t["id"]))  # larger order first
    return {**{k: group[k] for k in ("group_id", "group_name", "create_time", "order", "deleted")},
            "tag": [{k: t[k] for k in ("id", "name", "create_time", "order", "deleted")} for t in ordered]}


@endpoint("externalcontact/get_corp_tag_list", methods=("GET", "POST"))
def corp_tag_list(call: Call) -> dict:
    """No filter: live tags. group_id wins over tag_id; filtered answers include deleted ones (deleted: true)."""
    groups, tags = call.state.table("tag_groups"), call.state.table("tags")
    group_ids, tag_ids = _id_list(call.arg("group_id")), _id_list(call.arg("tag_id"))
    if group_ids:
        chosen = [t for t in tags.values() if t["group_id"] in set(group_ids)]
        wanted_groups = [g for g in group_ids if g in groups]
    elif tag_ids:
        chosen = [tags[t] for t in tag_ids if t in tags]
        wanted_groups = list(dict.fromkeys(t["group_id"] for t in chosen))
    else:
        chosen = list(_live_tags(call).values())
        wanted_groups = [g for g, row in groups.items() if not row["deleted"]]
    ordered = sorted(wanted_groups, key=lambda g: (-groups[g]["order"], groups[g]["create_time"], g))
    return {"tag_group": [_group_json(groups[g], [t for t in chosen if t["group_id"] == g]) for g in ordered]}


@endpoint("externalcontact/add_corp_tag")
def corp_tag_add(call: Call) -> dict:
    """Into group_id, or into the live group named group_name (created if none): WeCom reuses a same-named group."""
    specs = _id_list(call.arg("tag"))
    if not specs or not all(isinstance(s, dict) for s in specs):
        raise ApiError(INVALID_PARAMETER, "invalid parameter, tag is required")
    names = [_name_or_error(s.get("name"), "tag") for s in specs]
    group: dict | None
    if call.arg("group_id"):
        group = _live_group(call, call.arg("group_id"))
    else:
        group_name = _name_or_error(call.arg("group_name"), "tag group")
        group = next((g for g in _live_groups(call).values() if g["group_name"] == group_name), None)
    _tags_new_or_error(call, group["group_id"] if group else None, names)
    group = group or _tag_group_create(call, call.arg("group_name"), _int(call, "order"))
    created = [_tag_create(call, group["group_id"], name, int(spec.get("order") or 0))
               for name, spec in zip(names, specs, strict=True)]
    shown = _group_json(group, created)
    shown.pop("deleted")
    for tag in shown["tag"]:
        tag.pop("deleted")
    return {"tag_group": shown}


@endpoint("externalcontact/edit_corp_tag")
def corp_tag_edit(call: Call) -> dict:
    item_id, name, order = call.arg("id", required=True), call.arg("name"), call.arg("order")
    tag, group = _live_tags(call).get(item_id), _live_groups(call).get(item_id)
    if tag is None and group is None:
        raise ApiError(TAG_NOT_FOUND, f"invalid tag id: {item_id}")
    if name is not None:
        _rename_or_error(call, tag, group, _name_or_error(name, "tag"))
    if order is not None:
        item = tag if tag is not None else group
        assert item is not None  # one of them, checked above
        item["order"] = _int(call, "order")
    return {}


def _rename_or_error(call: Call, tag: dict | None, group: dict | None, name: str) -> None:
    if tag is not None:
        siblings = [t["name"] for t in _live_tags(call).values() if t["group_id"] == tag["group_id"] and t is not tag]
    else:
        siblings = [g["group_name"] for g in _live_groups(call).values() if g is not group]
    if name in siblings:
        raise ApiError(TAG_NAME_EXISTS, "invalid tag name: tag name already exists")
    if tag is not None:
        tag["name"] = name
    elif group is not None:
        group["group_name"] = name


@endpoint("externalcontact/del_corp_tag")
def corp_tag_delete(call: Call) -> dict:
    tag_ids, group_ids = set(_id_list(call.arg("tag_id"))), set(_id_list(call.arg("group_id")))
    if not tag_ids and not group_ids:
        raise ApiError(INVALID_PARAMETER, "tag_id and group_id cannot both be empty")
    unknown = (tag_ids - set(_live_tags(call))) or (group_ids - set(_live_groups(call)))
    if unknown:
        raise ApiError(TAG_NOT_FOUND, f"invalid tag id: {sorted(unknown)[0]}")
    _groups_delete(call, group_ids)
    _tags_delete(call, tag_ids)
    return {}


def _tags_apply(call: Call, row: dict, add: list, remove: list) -> None:
    live = _live_tags(call)
    for tag_id in add + remove:
        if tag_id not in live:
            raise ApiError(TAG_NOT_FOUND, f"invalid tag id: {tag_id}")
    kept = [t for t in row["tag_ids"] if t not in set(remove)]
    row["tag_ids"] = kept + [t for t in dict.fromkeys(add) if t not in kept]


@endpoint("externalcontact/mark_tag")
def corp_tag_mark(call: Call) -> dict:
    row = _relationship_or_error(call, call.arg("userid"), call.arg("external_userid"))
    add, remove = _id_list(call.arg("add_tag")), _id_list(call.arg("remove_tag"))
    if not add and not remove:
        raise ApiError(INVALID_PARAMETER, "add_tag and remove_tag cannot both be empty")
    _tags_apply(call, row, add, remove)
    return {}


# -- contact ways (「联系我」) --------------------------------------------------------------------
WAY_PASSTHROUGH = ("is_temp", "expires_in", "chat_expires_in", "unionid", "is_exclusive", "conclusions",
                   "mark_source")
WAY_SHOWN = ("type", "scene", "style", "remark", "skip_verify", "state", "user", "party", *WAY_PASSTHROUGH)


def _way_or_error(call: Call, config_id: str | None) -> dict:
    if not config_id:
        raise ApiError(WAY_CONFIG_MISSING, "missing contact way config_id")
    way = call.state.table("contact_ways").get(config_id)
    if way is None:
        raise ApiError(WAY_CONFIG_INVALID, f"invalid contact way config_id: {config_id}")
    return way


def _way_json(call: Call, way: dict) -> dict:
    shown = {"config_id": way["config_id"], **{k: way[k] for k in WAY_SHOWN if k in way}}
    if way["scene"] == 2:  # QR ways only; built when read, so it follows the sandbox to another port
        shown["qr_code"] = f"{call.sandbox.public_url}/sandbox-file/qr/{way['config_id']}.png"
    return shown


def _choice(call: Call, name: str, missing: int, invalid: int) -> int:
    value = call.arg(name)
    if value in (None, ""):
        raise ApiError(missing, f"missing contact way {name}")
    if str(value) not in ("1", "2"):
        raise ApiError(invalid, f"invalid contact way {name}: {value}")
    return int(value)


def _way_members(call: Call, way: dict) -> list[str]:
    """The way's users, then members of its departments, active ones only: the rotation order of a multi way."""
    parties, book = set(way["party"]), members(call)
    extra = sorted(u for u, m in book.items() if parties & set(m["department"]) and u not in way["user"])
    return [u for u in [*way["user"], *extra] if u in book and member_is_active(book[u])]


def _way_members_or_error(call: Call, way: dict) -> None:
    if way["type"] == 1 and len(way["user"]) != 1:
        raise ApiError(INVALID_PARAMETER, "invalid user: a single-member contact way (type 1) needs exactly one user")
    if way["type"] == 2 and not way["user"] and not way["party"]:
        raise ApiError(INVALID_PARAMETER, "invalid parameter: user and party cannot both be empty")
    for userid in way["user"]:
        if not member_is_active(_member_or_error(call, userid)):
            raise ApiError(NO_CONTACT_PERMISSION, f"no external contact permission: {userid}")
    for party in way["party"]:
        if str(party) not in departments(call):
            raise ApiError(DEPARTMENT_LIST_INVALID, f"invalid party: {party}")
    if len(_way_members(call, way)) > WAY_MEMBERS_MAX:
        raise ApiError(WAY_TOO_MANY_USERS, f"contact way user count exceeds {WAY_MEMBERS_MAX}")


def _way_settings(call: Call, way: dict) -> dict:
    """Apply the request's settings to ``way`` (type and scene cannot change after creation)."""
    for name in ("remark", "state"):
        value = _text(call, name, WAY_TEXT_MAX)
        if value is not None:
            way[name] = value
    if call.arg("skip_verify") is not None:
        way["skip_verify"] = bool(call.arg("skip_verify"))
    if call.arg("style") is not None:
        way["style"] = _int(call, "style", 1)
    if call.arg("user") is not None:
        way["user"] = list(dict.fromkeys(_id_list(call.arg("user"))))
    if call.arg("party") is not None:
        way["party"] = [int(p) for p in _id_list(call.arg("party"))] if way["type"] == 2 else []
    way.update({k: call.arg(k) for k in WAY_PASSTHROUGH if call.arg(k) is not None})
    _way_members_or_error(call, way)
    return way


@endpoint("externalcontact/add_contact_way")
def contact_way_add(call: Call) -> dict:
    way_type = _choice(call, "type", WAY_TYPE_MISSING, WAY_TYPE_INVALID)
    scene = _choice(call, "scene", WAY_SCENE_MISSING, WAY_SCENE_INVALID)
    if len(call.state.table("contact_ways")) >= WAYS_PER_CORP:
        raise ApiError(WAY_LIMIT_REACHED, f"contact ways added by API reach the limit of {WAYS_PER_CORP}")
    way = _way_settings(call, {"config_id": secrets.token_hex(16), "type": way_type, "scene": scene, "style": 1,
                               "remark": "", "skip_verify": True, "state": "", "user": [], "party": [],
                               "create_time": call.now(), "rotation": 0})
    call.state.table("contact_ways")[way["config_id"]] = way
    return {k: v for k, v in _way_json(call, way).items() if k in ("config_id", "qr_code")}


@endpoint("externalcontact/get_contact_way")
def contact_way_get(call: Call) -> dict:
    return {"contact_way": _way_json(call, _way_or_error(call, call.arg("config_id")))}


@endpoint("externalcontact/update_contact_way")
def contact_way_update(call: Call) -> dict:
    way = _way_or_error(call, call.arg("config_id"))
    # Settle a copy: a refused update changes nothing.
    call.state.table("contact_ways")[way["config_id"]] = _way_settings(call, dict(way))
    return {}


@endpoint("externalcontact/del_contact_way")
def contact_way_delete(call: Call) -> dict:
    way = _way_or_error(call, call.arg("config_id"))
    del call.state.table("contact_ways")[way["config_id"]]
    return {}


@endpoint("externalcontact/list_contact_way")
def contact_way_list(call: Call) -> dict:
    """Ways created in [start_time, end_time] (default: the last 90 days), keyset-paged, limit ≤ 1,000."""
    end = _int(call, "end_time", call.now())
    start = _int(call, "start_time", end - 90 * DAY)
    limit = min(max(_int(call, "limit", 100), 1), 1000)
    after, ways = _decode_cursor(call.arg("cursor")), call.state.table("contact_ways")
    keys = sorted(k for c, w in ways.items() if start <= w["create_time"] <= end
                  if (k := f"{w['create_time']:012d}|{c}") > after)
    page = keys[:limit]
    return {"contact_way": [{"config_id": k.split("|", 1)[1]} for k in page],
            "next_cursor": _encode_cursor(page[-1]) if len(keys) > limit else ""}


def qr_png(text: str, *, scale: int = 8) -> bytes:
    """``text`` as a QR code in a PNG, drawn and written by the qrcode library (its pypng backend)."""
    code = qrcode.QRCode(box_size=scale, border=4, image_factory=PyPNGImage)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()


@server.file_server("qr")
def contact_way_qr(sandbox: server.Sandbox, name: str) -> tuple[str, bytes] | None:
    """/sandbox-file/qr/<config_id>.png: scanning it with a phone opens customers/scan (GET) on the sandbox."""
    config_id = name.split("/", 1)[-1].removesuffix(".png")
    with sandbox.state.lock:
        way = sandbox.state.table("contact_ways").get(config_id)
    if way is None or way["scene"] != 2:
        return None
    return "image/png", qr_png(f"{sandbox.public_url}/sandbox/customers/scan?config_id={config_id}")


# -- welcome messages ---------------------------------------------------------------------------------
def _welcome_code_or_error(call: Call, code: str | None) -> dict:
    if not code:
        raise ApiError(WELCOME_CODE_MISSING, "missing welcome code")
    issued = call.state.table("welcome_codes").get(code)
    if issued is not None and issued["used_at"] is not None:
        raise ApiError(WELCOME_ALREADY_SENT, "externaluser has started chatting")
    if issued is None or call.now() > issued["issued_at"] + WELCOME_SECONDS:
        raise ApiError(WELCOME_CODE_INVALID, "invalid welcome code: unknown, or older than 20 seconds")
    return issued


def _attachments_or_error(attachments: list) -> list:
    if len(attachments) > WELCOME_ATTACHMENTS_MAX:
        raise ApiError(INVALID_PARAMETER, f"invalid attachments: at most {WELCOME_ATTACHMENTS_MAX}")
    for item in attachments:
        kind = item.get("msgtype") if isinstance(item, dict) else None
        if kind not in ATTACHMENT_TYPES or not isinstance(item.get(kind), dict):
            raise ApiError(ATTACHMENT_TYPE_INVALID, f"invalid attachment type: {kind}")
    return attachments


@endpoint("externalcontact/send_welcome_msg")
def welcome_send(call: Call) -> dict:
    issued = _welcome_code_or_error(call, call.arg("welcome_code"))
    text = call.arg("text") if isinstance(call.arg("text"), dict) else {}
    attachments = _attachments_or_error(_id_list(call.arg("attachments")))
    if not text.get("content") and not attachments:
        raise ApiError(INVALID_PARAMETER, "text and attachments cannot both be empty")
    if follow_active(call, issued["userid"], issued["external_userid"]) is None:
        raise ApiError(NOT_EXTERNAL_CONTACT, "not external contact")
    issued["used_at"] = call.now()
    number = call.state.next_id("welcome_message")
    call.state.table("welcome_messages")[str(number)] = {
        "welcome_code": issued["code"], "userid": issued["userid"], "external_userid": issued["external_userid"],
        "text": text, "attachments": attachments, "sent_at": call.now()}
    return {}


@control("welcome_messages", methods=("GET",))
def welcome_messages(call: Call) -> dict:
    """What send_welcome_msg received, newest last."""
    table = call.state.table("welcome_messages")
    return {"messages": [table[k] for k in sorted(table, key=int)]}


@on_tick
def welcome_codes_forget(sandbox: server.Sandbox) -> None:
    """Forget codes an hour old: they can only fail by then, and a busy benchmark would pile them up."""
    codes, now = sandbox.state.table("welcome_codes"), sandbox.state.now_int()
    for code in [c for c, row in codes.items() if row["issued_at"] < now - 3600]:
        del codes[code]


# -- behaviour data ---------------------------------------------------------------------------------
def _behavior_users(call: Call) -> set[str]:
    userids, parties = _id_list(call.arg("userid")), {int(p) for p in _id_list(call.arg("partyid"))}
    if not userids and not parties:
        raise ApiError(INVALID_PARAMETER, "userid and partyid cannot both be empty")
    if len(userids) > 100 or len(parties) > 100:
        raise ApiError(INVALID_PARAMETER, "at most 100 userids and 100 partyids")
    for userid in userids:
        _member_or_error(call, userid)
    return set(userids) | {u for u, m in members(call).items() if parties & set(m["department"])}


def _behavior_days(call: Call) -> list[int]:
    """Whole days (China time, floored as WeCom does), at most 30 days apart, within the last 180."""
    try:
        start, end = _day(call.arg("start_time", required=True)), _day(call.arg("end_time", required=True))
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_TIME_RANGE, "invalid start endtime") from exc
    today = _day(call.now())
    if start > end or end - start > BEHAVIOR_SPAN_DAYS * DAY or start < today - BEHAVIOR_HISTORY_DAYS * DAY:
        raise ApiError(INVALID_TIME_RANGE, "invalid start endtime")
    return list(range(start, min(end, today) + 1, DAY))


def _behavior_counts(call: Call, users: set[str], days: list[int]) -> dict[int, dict]:
    """From follows: new contacts, member-initiated adds (applications) and customers who deleted the member."""
    counts = {d: {"new_contact_cnt": 0, "negative_feedback_cnt": 0, "new_apply_cnt": 0} for d in days}
    for row in call.state.table("follows").values():
        if row["userid"] not in users:
            continue
        created = counts.get(_day(row["createtime"]))
        if created is not None:
            created["new_contact_cnt"] += 1
            created["new_apply_cnt"] += row["oper_userid"] == row["userid"]
        if row["status"] == "deleted_by_customer" and row["ended_at"] is not None:
            ended = counts.get(_day(row["ended_at"]))
            if ended is not None:
                ended["negative_feedback_cnt"] += 1
    return counts


def _chat_counts(call: Call, users: set[str], day: int) -> dict:
    rows = [r for u in users if (r := call.state.table("chat_stats").get(f"{u}|{day}"))]
    chats = sum(r["chat_cnt"] for r in rows)
    shown = {"chat_cnt": chats, "message_cnt": sum(r["message_cnt"] for r in rows)}
    if chats:  # "仅在确有聊天时返回": the two averages only appear on days with chats, weighted by chats
        shown["reply_percentage"] = round(sum(r["reply_percentage"] * r["chat_cnt"] for r in rows) / chats, 2)
        shown["avg_reply_time"] = round(sum(r["avg_reply_time"] * r["chat_cnt"] for r in rows) / chats)
    return shown


@endpoint("externalcontact/get_user_behavior_data")
def behavior_data(call: Call) -> dict:
    users, days = _behavior_users(call), _behavior_days(call)
    counts = _behavior_counts(call, users, days)
    return {"behavior_data": [{"stat_time": d, **_chat_counts(call, users, d), **counts[d]} for d in days]}


@control("members/chat_stats")
def member_chat_stats(call: Call) -> dict:
    """How a member chatted on a day (default today): {userid, chat_cnt, message_cnt, reply_percentage,
    avg_reply_time, day?}. WeCom measures this from chats; the sandbox is told."""
    userid = call.arg("userid", required=True)
    _member_or_error(call, userid)
    day = _day(_int(call, "day", call.now()))
    row = {"chat_cnt": _int(call, "chat_cnt"), "message_cnt": _int(call, "message_cnt"),
           "reply_percentage": float(call.arg("reply_percentage") or 0), "avg_reply_time": _int(call, "avg_reply_time")}
    call.state.table("chat_stats")[f"{userid}|{day}"] = row
    return {"stat_time": day, **row}


# -- people: customers add and leave, members edit, admins edit tags ----------------------------------
def _customer_for(call: Call) -> dict:
    """The request's customer: by external_userid, else by unionid (one WeChat user, one id per corp), else new."""
    table, data = call.state.table("customers"), call.arg("customer")
    if not isinstance(data, dict):  # a phone scanning the QR code opens customers/scan?config_id=… (GET, no body)
        data = {k: v for k in ("name", "unionid", "gender", "avatar", "type") if (v := call.arg(k)) not in (None, "")}
    external_userid = call.arg("external_userid") or data.get("external_userid")
    if external_userid in table:
        return table[external_userid]
    unionid = data.get("unionid") or ""
    if unionid and not external_userid:
        found = next((c for c in table.values() if c.get("unionid") == unionid), None)
        if found:
            return found
    while not external_userid or external_userid in table:
        external_userid = call.state.random_id("wm", 30)
    table[external_userid] = _customer_row(external_userid, data)
    return table[external_userid]


def _customer_row(external_userid: str, data: dict) -> dict:
    return {"external_userid": external_userid, "name": data.get("name") or f"客户{external_userid[-4:]}",
            "type": int(data.get("type", 1)), "gender": int(data.get("gender", 0)), "avatar": data.get("avatar", ""),
            "unionid": data.get("unionid", ""), "corp_name": data.get("corp_name", ""),
            "corp_full_name": data.get("corp_full_name", ""), "position": data.get("position", "")}


def _at_limit(call: Call, userid: str) -> bool:
    return len(follows_of_member(call, userid)) >= int(call.state.config.get("customer_limit", 5000))


def _limit_error(userid: str) -> ApiError:
    return ApiError(CUSTOMER_LIMIT_REACHED, f"{userid} has reached the customer limit (customer_limit): "
                                            "WeCom refuses the add, nothing happens")


def _adding_member(call: Call) -> str:
    """The member a customer is being added to; refused at the limit before a customer row is made for nothing."""
    userid = call.arg("userid", required=True)
    _member_or_error(call, userid)
    if _at_limit(call, userid) and not follow_active(call, userid, call.arg("external_userid") or ""):
        raise _limit_error(userid)
    return userid


def _add(call: Call, *, userid: str, customer: dict, add_way: int, state: str, oper_userid: str,
         change_type: str = "add_external_contact") -> dict:
    """A new relationship (callers checked the customer limit): the follow, a welcome code valid 20 s, the event.
    An existing one: nothing."""
    external_userid = customer["external_userid"]
    if follow_active(call, userid, external_userid):
        return {"external_userid": external_userid, "userid": userid, "welcome_code": "", "already": True}
    tables.follow_create(call, userid=userid, external_userid=external_userid, add_way=add_way, state=state,
                         oper_userid=oper_userid)
    code = call.state.random_id("", 43)
    call.state.table("welcome_codes")[code] = {"code": code, "userid": userid, "external_userid": external_userid,
                                               "issued_at": call.now(), "used_at": None}
    fields = {"UserID": userid, "ExternalUserID": external_userid}
    if state:
        fields["State"] = state
    call.emit("change_external_contact", change_type, **fields, WelcomeCode=code)
    return {"external_userid": external_userid, "userid": userid, "welcome_code": code}


def _pick_member(call: Call, way: dict) -> str:
    """Rotation over the way's members (one for a single way), passing over members at the customer limit."""
    candidates = _way_members(call, way)
    if not candidates:
        raise ApiError(NO_CONTACT_PERMISSION, "the contact way has no active member")
    start = way["rotation"] % len(candidates)
    for step in range(len(candidates)):
        userid = candidates[(start + step) % len(candidates)]
        if not _at_limit(call, userid):
            way["rotation"] = start + step + 1
            return userid
    raise _limit_error(candidates[start])


@control("customers/scan", methods=("GET", "POST"))
def customer_scans(call: Call) -> dict:
    """A customer scans a way: {config_id, customer?: {name, unionid, gender, avatar, type}, external_userid?}."""
    way = _way_or_error(call, call.arg("config_id"))
    userid = _pick_member(call, way)
    customer = _customer_for(call)
    return _add(call, userid=userid, customer=customer, add_way=1, state=way["state"],
                oper_userid=customer["external_userid"])


@control("customers/add")
def member_adds_customer(call: Call) -> dict:
    """The member adds a customer (searching a phone number by default): {userid, customer?, external_userid?,
    state?, add_way?}."""
    userid = _adding_member(call)
    customer = _customer_for(call)
    return _add(call, userid=userid, customer=customer, add_way=_int(call, "add_way", MEMBER_ADD_WAY),
                state=call.arg("state") or "", oper_userid=userid)


@control("customers/half_add")
def customer_half_adds(call: Call) -> dict:
    """A customer adds a member who needs no verification, before the member confirms (add_half_external_contact).
    The relationship already exists from the customer's side, so WeCom lists it."""
    userid = _adding_member(call)
    customer = _customer_for(call)
    return _add(call, userid=userid, customer=customer, add_way=_int(call, "add_way", 1),
                state=call.arg("state") or "", oper_userid=customer["external_userid"],
                change_type="add_half_external_contact")


@control("customers/delete_member")
def customer_deletes_member(call: Call) -> dict:
    """The customer deletes or blocks the member (del_follow_user); it counts as negative feedback that day."""
    return _end(call, "deleted_by_customer", "del_follow_user")


@control("members/delete_customer")
def member_deletes_customer(call: Call) -> dict:
    """The member deletes the customer (del_external_contact; Source only appears for transfers)."""
    return _end(call, "deleted_by_member", "del_external_contact")


def _end(call: Call, status: str, change_type: str) -> dict:
    row = _relationship_or_error(call, call.arg("userid"), call.arg("external_userid"))
    tables.follow_end(call, row, status=status)
    call.emit("change_external_contact", change_type, UserID=row["userid"], ExternalUserID=row["external_userid"])
    return {"follow": row}


@control("customers/edit")
def member_edits_customer(call: Call) -> dict:
    """The member edits remark, description or tags in the WeCom app: {userid, external_userid, remark?,
    description?, add_tag_ids?, remove_tag_ids?} (edit_external_contact)."""
    row = _relationship_or_error(call, call.arg("userid"), call.arg("external_userid"))
    remark, description = _text(call, "remark", REMARK_MAX), _text(call, "description", DESCRIPTION_MAX)
    _tags_apply(call, row, _id_list(call.arg("add_tag_ids")), _id_list(call.arg("remove_tag_ids")))
    row.update({k: v for k, v in (("remark", remark), ("description", description)) if v is not None})
    call.emit("change_external_contact", "edit_external_contact", UserID=row["userid"],
              ExternalUserID=row["external_userid"])
    return {"follow": row}


@control("tags/edit_in_wecom")
def admin_edits_tags(call: Call) -> dict:
    """An admin edits corp tags in WeCom: {action: create|update|delete, tag_type: tag|tag_group, id?, name?,
    group_id?, tags?: [names for a new group]} (change_external_tag). ``change_type`` may stand for ``action``
    (SandboxControl.do takes the action name as its first argument, so it cannot send a field called action)."""
    action = call.arg("action") or call.arg("change_type")
    tag_type = call.arg("tag_type", "tag")
    if action not in ("create", "update", "delete") or tag_type not in ("tag", "tag_group"):
        raise ApiError(INVALID_PARAMETER, "action is create|update|delete, tag_type is tag|tag_group")
    item_id = _admin_create(call, tag_type) if action == "create" else _admin_change(call, tag_type, action)
    call.emit("change_external_tag", action, Id=item_id, TagType=tag_type, StrategyId="")
    return {"id": item_id, "tag_type": tag_type, "change_type": action}


def _admin_create(call: Call, tag_type: str) -> str:
    if tag_type == "tag":
        group = _live_group(call, call.arg("group_id"))
        name = _name_or_error(call.arg("name"), "tag")
        _tags_new_or_error(call, group["group_id"], [name])
        return _tag_create(call, group["group_id"], name)["id"]
    name = _name_or_error(call.arg("name"), "tag group")
    if any(g["group_name"] == name for g in _live_groups(call).values()):
        raise ApiError(TAG_NAME_EXISTS, "invalid tag group name: already exists")
    tag_names = [_name_or_error(n, "tag") for n in _id_list(call.arg("tags"))]
    _tags_new_or_error(call, None, tag_names)
    group = _tag_group_create(call, name)
    for tag_name in tag_names:
        _tag_create(call, group["group_id"], tag_name)
    return group["group_id"]


def _admin_change(call: Call, tag_type: str, action: str) -> str:
    item_id = call.arg("id", required=True)
    tag = _live_tags(call).get(item_id) if tag_type == "tag" else None
    group = _live_group(call, item_id) if tag_type == "tag_group" else None
    if tag is None and group is None:
        raise ApiError(TAG_NOT_FOUND, f"invalid tag id: {item_id}")
    if action == "update":
        _rename_or_error(call, tag, group, _name_or_error(call.arg("name"), tag_type.replace("_", " ")))
    elif tag is not None:
        _tags_delete(call, {item_id})
    else:
        _groups_delete(call, {item_id})
    return item_id


@control("customers/load")
def customers_load(call: Call) -> dict:
    """Bulk-load customers and follows quietly (no callbacks, no limits): benchmarks and demo seeding.
    {customers: [{external_userid?, name, unionid?, ...}], follows: [{userid, external_userid, createtime?,
    state?, tag_ids?, remark?, add_way?, oper_userid?}]}; answers the customers' external_userids in order."""
    table, now = call.state.table("customers"), call.now()
    ids = []
    for data in _id_list(call.arg("customers")):
        external_userid = data.get("external_userid") or call.state.random_id("wm", 30)
        table[external_userid] = _customer_row(external_userid, data)
        ids.append(external_userid)
    follows = call.state.table("follows")
    for data in _id_list(call.arg("follows")):
        if not data.get("userid") or data.get("external_userid") not in table:
            raise ApiError(tables.INVALID_EXTERNAL_USERID, f"invalid follow (userid, known external_userid): {data}")
        row = tables.follow_create(call, userid=data["userid"], external_userid=data["external_userid"],
                                   add_way=int(data.get("add_way", 1)), state=data.get("state", ""),
                                   oper_userid=data.get("oper_userid"))
        row.update(createtime=int(data.get("createtime", now)), tag_ids=list(data.get("tag_ids", [])),
                   remark=data.get("remark", ""), description=data.get("description", ""))
    return {"external_userids": ids, "customers": len(table), "follows": len(follows),
            "loaded_follows": len(_id_list(call.arg("follows")))}

