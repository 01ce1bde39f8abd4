"""Succession: customers and customer group chats handed from one member to another (在职继承 / 离职继承).

Endpoints (WeCom's shapes): ``externalcontact/transfer_customer`` and ``transfer_result`` (on-job),
``get_unassigned_list``, ``resigned/transfer_customer`` and ``resigned/transfer_result`` (departed
members), the deprecated ``get_transfer_result`` (one customer; the only place WeCom documents status 5
for a customer with no record), and ``groupchat/list``, ``groupchat/get``, ``groupchat/transfer``
(departed owner), ``groupchat/onjob_transfer``. People: ``transfers/refuse``, ``groupchats/create``,
``groupchats/load``, ``groupchats/join``, ``groupchats/dismiss``; GET ``transfers`` shows the records.

How WeCom behaves, and what the sandbox chose where the documentation is silent:

* A transfer call answers per customer; 0 only starts it. It stays "waiting" (status 2, takeover_time =
  the future takeover) for 24 h by the sandbox clock, then a tick completes it (status 1): the
  handover's follow becomes ``transferred`` and the takeover gets an active follow with the same remark,
  description, tags and remark mobiles, ``add_way`` 202 (分配) and ``oper_userid`` the handover.
* Per-customer codes, from WeCom's global error code list: 40096 unknown customer, 40129 a transfer of
  this customer is already waiting, 40131 the handover does not follow this customer ("handover_userid
  并不是外部联系人的跟进人"; chosen over 84061, which means there is no relationship at all), 40128
  transferred twice in 90 days. Whole-request codes: 41035 no external_userid, 40058 more than 100 ids
  or transfer_success_msg over 200 characters, 40130 handover = takeover, 60111 unknown member, 40097
  resigned transfer of a member who has not left.
* "90个自然日内，在职成员的每位客户仅可被转接2次" is written for on-job transfers only (the resigned
  pages have no such rule), so only completed on-job transfers that started in the last 90 days count,
  and only on-job requests are refused for it. A refused or failed transfer moved nothing and does not count.
* The customer may refuse an on-job transfer within the 24 h (status 3). A departed member's customers
  are assigned without asking them (离职继承), so ``transfers/refuse`` rejects resigned transfers.
* At takeover, a successor already holding ``customer_limit`` (config, default 5,000) active customers
  makes it fail (status 4). Status 3 and 4 carry takeover_time 0, as in WeCom's example, and fire
  ``change_external_contact/transfer_fail`` with FailReason ``customer_refused`` /
  ``customer_limit_exceed`` and UserID the takeover (接替失败的成员).
* On success an on-job transfer fires ``del_external_contact`` for the handover with Source
  ``DELETE_BY_TRANSFER`` ("因在职继承自动被转接成员删除": on-job only, a departed member gets none), and
  both kinds fire ``add_external_contact`` for the takeover (no State, no WelcomeCode), except when, as
  the on-job page says, the takeover was already the customer's friend or had once handed this
  customer over itself.
* If the handover's relationship ended during the 24 h (the customer deleted the member, ...), there is
  nothing to take over: the record ends with status 5 (无接替记录), takeover_time 0, no callback.
* Cursors are opaque and key-based (the last key returned), so paging survives concurrent changes;
  a cursor the sandbox did not issue is 50100. transfer_result pages hold at most 1,000 customers.
* Group chats: 1–100 chat ids per call (else 40058); per chat, 40050 unknown chat, 49008 dismissed,
  90500 owner has not left (groupchat/transfer), 90508 already inherited, 90502 owner has left
  (onjob_transfer), 90504 same owner, 40128 an on-job chat transferred twice in 90 days (the onjob page
  states the rule; the code is the customers' one), and 45009 past "同一个人的群，限制每天最多分配300个
  给新群主" (300 chats of one former owner per natural day, Beijing time; WeCom documents no code).
  The new owner takes over at once (joining the chat if needed) and ``change_external_chat`` update
  ``change_owner`` fires. groupchat/list status: 0 normal, 1 owner left (离职待继承), 3 inherited
  (离职继承完成); the sandbox has no in-between 2 because it hands chats over immediately.
"""

from __future__ import annotations

import base64
import bisect

from wecom_sandbox import tables
from wecom_sandbox.server import INVALID_PARAMETER, ApiError, Call, Sandbox, control, endpoint, on_tick

DAY = 86_400
TAKEOVER_DELAY = DAY
RULE_WINDOW = 90 * DAY
TRANSFERS_PER_WINDOW = 2
MAX_PER_CALL = 100
RESULT_PAGE = 1000
MAX_TRANSFER_MSG = 200
CHATS_PER_OWNER_PER_DAY = 300
BEIJING_OFFSET = 8 * 3600  # WeCom's "per day" is a natural day in China

ONJOB, RESIGNED = "onjob", "resigned"
DONE, WAITING, REFUSED, SUCCESSOR_FULL, NO_RECORD = 1, 2, 3, 4, 5
ADD_WAY_ASSIGNED = 202  # 管理员/负责人分配

# WeCom's global error codes.
USER_NOT_FOUND = 60111
MISSING_EXTERNAL_USERID = 41035
NOT_RESIGNED = 40097
TOO_FREQUENT = 40128
IN_PROGRESS = 40129
SAME_MEMBER = 40130
NOT_FOLLOWER = 40131
INVALID_CURSOR = 50100
CHAT_NOT_FOUND = 40050
CHAT_DISMISSED = 49008
OWNER_NOT_RESIGNED = 90500
OWNER_RESIGNED = 90502
OWNER_UNCHANGED = 90504
CHAT_INHERITED = 90508
DAILY_CAP = 45009


# -- shared helpers ------------------------------------------------------------------------------
def _records(call: Call) -> dict[str, dict]:
    return call.state.table("transfers")


def _waiting(call: Call) -> dict[str, str]:
    """external_userid → id of its waiting transfer (WeCom allows one at a time: 40129)."""
    return call.state.table("transfers_waiting")


def _history(call: Call, external_userid: str) -> list[dict]:
    ids = call.state.table("transfer_history").get(external_userid, [])
    return [_records(call)[record_id] for record_id in ids]


def _members(call: Call) -> dict[str, dict]:
    return call.state.table("users")


def _departed(call: Call) -> dict[str, dict]:
    """Members who left and did not come back."""
    users = _members(call)
    return {u: row for u, row in call.state.table("departed_users").items() if u not in users}


_CURSOR_PREFIX = "sbx1:"


def _cursor_encode(key: str) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{key}".encode()).decode().rstrip("=")


def _cursor_decode(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(str(cursor) + "=" * (-len(str(cursor)) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith(_CURSOR_PREFIX):
        raise ApiError(INVALID_CURSOR, "invalid cursor")
    return text[len(_CURSOR_PREFIX):]


def _page(keys: list[str], cursor: str | None, size: int) -> tuple[list[str], str]:
    """One page of sorted ``keys`` after the cursor's key, and the next cursor ("" on the last page)."""
    after = _cursor_decode(cursor)
    start = bisect.bisect_right(keys, after) if after is not None else 0
    page = keys[start:start + size]
    return page, _cursor_encode(page[-1]) if start + size < len(keys) else ""


def _int_arg(call: Call, name: str, default: int, low: int, high: int) -> int:
    value = call.arg(name, default)
    try:
        value = int(default if value in (None, "") else value)
    except (TypeError, ValueError) as exc:
        raise ApiError(INVALID_PARAMETER, f"invalid {name}") from exc
    if not low <= value <= high:
        raise ApiError(INVALID_PARAMETER, f"invalid {name}: must be {low}~{high}")
    return value


def _id_list(call: Call, name: str, *, missing: int = INVALID_PARAMETER) -> list[str]:
    ids = call.body.get(name)
    if not isinstance(ids, list) or not ids:
        raise ApiError(missing, f"invalid parameter, {name} is required")
    if len(ids) > MAX_PER_CALL:
        raise ApiError(INVALID_PARAMETER, f"invalid parameter, {name} exceeds {MAX_PER_CALL}")
    return [str(i) for i in ids]


def _tick_call(sandbox: Sandbox) -> Call:
    """A Call for time-driven work, so the shared table helpers (which take a Call) work from a tick."""
    return Call(sandbox=sandbox, method="TICK", path="tick", query={}, body={})


# -- customers: starting a transfer ------------------------------------------------------------------
def _check_members(call: Call, kind: str, handover: str, takeover: str) -> None:
    if handover == takeover:
        raise ApiError(SAME_MEMBER, "handover_userid and takeover_userid are the same")
    if takeover not in _members(call):
        raise ApiError(USER_NOT_FOUND, f"userid not found: {takeover}")
    if kind == RESIGNED and handover in _members(call):
        raise ApiError(NOT_RESIGNED, f"user has not resigned: {handover}")
    if kind == RESIGNED and handover not in _departed(call):
        raise ApiError(USER_NOT_FOUND, f"userid not found: {handover}")
    if kind == ONJOB and handover not in _members(call):
        raise ApiError(USER_NOT_FOUND, f"userid not found: {handover} (a departed member: use resigned/)")


def _recent_done(call: Call, external_userid: str) -> int:
    since = call.now() - RULE_WINDOW
    return sum(1 for r in _history(call, external_userid)
               if r["kind"] == ONJOB and r["status"] == DONE and r["started_at"] > since)


def _customer_errcode(call: Call, kind: str, handover: str, external_userid: str) -> int:
    if external_userid not in call.state.table("customers"):
        return tables.INVALID_EXTERNAL_USERID
    if external_userid in _waiting(call):
        return IN_PROGRESS
    if tables.follow_active(call, handover, external_userid) is None:
        return NOT_FOLLOWER
    if kind == ONJOB and _recent_done(call, external_userid) >= TRANSFERS_PER_WINDOW:
        return TOO_FREQUENT
    return 0


def _record_start(call: Call, kind: str, handover: str, takeover: str, external_userid: str,
                  message: str) -> dict:
    record_id = f"t{call.state.next_id('transfer')}"
    record = {"id": record_id, "kind": kind, "handover_userid": handover, "takeover_userid": takeover,
              "external_userid": external_userid, "status": WAITING, "started_at": call.now(),
              "takeover_time": call.now() + TAKEOVER_DELAY, "transfer_success_msg": message, "ended_at": None}
    _records(call)[record_id] = record
    _waiting(call)[external_userid] = record_id
    call.state.table("transfer_history").setdefault(external_userid, []).append(record_id)
    return record


def _transfer(call: Call, kind: str, message: str = "") -> dict:
    handover = call.arg("handover_userid", required=True)
    takeover = call.arg("takeover_userid", required=True)
    external_userids = _id_list(call, "external_userid", missing=MISSING_EXTERNAL_USERID)
    _check_members(call, kind, handover, takeover)
    answers = []
    for external_userid in external_userids:
        errcode = _customer_errcode(call, kind, handover, external_userid)
        if errcode == 0:
            _record_start(call, kind, handover, takeover, external_userid, message)
        answers.append({"external_userid": external_userid, "errcode": errcode})
    return {"customer": answers}


@endpoint("externalcontact/transfer_customer")
def transfer_customer(call: Call) -> dict:
    message = call.arg("transfer_success_msg") or ""
    if len(str(message)) > MAX_TRANSFER_MSG:
        raise ApiError(INVALID_PARAMETER, f"transfer_success_msg exceeds {MAX_TRANSFER_MSG} characters")
    return _transfer(call, ONJOB, str(message))


@endpoint("externalcontact/resigned/transfer_customer")
def resigned_transfer_customer(call: Call) -> dict:
    return _transfer(call, RESIGNED)


# -- customers: results --------------------------------------------------------------------------------
def _result_row(record: dict) -> dict:
    return {"external_userid": record["external_userid"], "status": record["status"],
            "takeover_time": record["takeover_time"]}


def _transfer_result(call: Call, kind: str) -> dict:
    handover = call.arg("handover_userid", required=True)
    takeover = call.arg("takeover_userid", required=True)
    latest: dict[str, dict] = {}
    for record in _records(call).values():  # in creation order: a later record replaces an earlier one
        if (record["kind"], record["handover_userid"], record["takeover_userid"]) == (kind, handover, takeover):
            latest[record["external_userid"]] = record
    page, next_cursor = _page(sorted(latest), call.arg("cursor"), RESULT_PAGE)
    return {"customer": [_result_row(latest[k]) for k in page], "next_cursor": next_cursor}


@endpoint("externalcontact/transfer_result")
def transfer_result(call: Call) -> dict:
    return _transfer_result(call, ONJOB)


@endpoint("externalcontact/resigned/transfer_result")
def resigned_transfer_result(call: Call) -> dict:
    return _transfer_result(call, RESIGNED)


@endpoint("externalcontact/get_transfer_result")
def get_transfer_result(call: Call) -> dict:
    """The deprecated one-customer query (doc 92973): status 5 when there is no record."""
    wanted = tuple(call.arg(k, required=True) for k in ("handover_userid", "takeover_userid", "external_userid"))
    matches = [r for r in _history(call, wanted[2]) if (r["handover_userid"], r["takeover_userid"]) == wanted[:2]]
    if not matches:
        return {"status": NO_RECORD, "takeover_time": 0}
    return {"status": matches[-1]["status"], "takeover_time": matches[-1]["takeover_time"]}


def _unassigned(call: Call) -> list[tuple[str, dict]]:
    """(sort key, info) of every departed member's customer not yet assigned, oldest departure first."""
    departed, waiting, records = _departed(call), _waiting(call), _records(call)
    rows = []
    for follow in call.state.table("follows").values():
        userid, external_userid = follow["userid"], follow["external_userid"]
        if follow["status"] != "active" or userid not in departed:
            continue
        if external_userid in waiting and records[waiting[external_userid]]["handover_userid"] == userid:
            continue  # assigned, waiting for the 24 h
        dimission_time = int(departed[userid].get("departed_at", 0))
        rows.append((f"{dimission_time:012d}\t{userid}\t{external_userid}",
                     {"handover_userid": userid, "external_userid": external_userid,
                      "dimission_time": dimission_time}))
    return sorted(rows, key=lambda row: row[0])


@endpoint("externalcontact/get_unassigned_list")
def get_unassigned_list(call: Call) -> dict:
    """page_id/page_size (page_id * page_size < 50,000, no next_cursor) or a cursor; page_size ≤ 1,000."""
    rows = _unassigned(call)
    size = _int_arg(call, "page_size", 1000, 1, 1000)
    cursor, page_id = call.arg("cursor"), call.arg("page_id")
    if cursor or page_id in (None, ""):
        keys = [key for key, _ in rows]
        page, next_cursor = _page(keys, cursor, size)
        infos = dict(rows)
        return {"info": [infos[k] for k in page], "is_last": next_cursor == "", "next_cursor": next_cursor}
    page_id = _int_arg(call, "page_id", 0, 0, 50_000 // size - 1)
    chunk = rows[page_id * size:(page_id + 1) * size]
    return {"info": [info for _, info in chunk], "is_last": (page_id + 1) * size >= len(rows)}


# -- customers: the takeover 24 h later ---------------------------------------------------------------
def _finish(call: Call, record: dict, status: int) -> None:
    _waiting(call).pop(record["external_userid"], None)
    record["status"], record["ended_at"] = status, call.now()
    if status != DONE:
        record["takeover_time"] = 0


def _follow_copy(call: Call, old: dict, takeover: str) -> None:
    """The takeover's follow keeps what the handover knew of the customer."""
    row = tables.follow_create(call, userid=takeover, external_userid=old["external_userid"],
                               add_way=ADD_WAY_ASSIGNED, oper_userid=old["userid"])
    for field in ("remark", "description", "remark_mobiles"):
        row[field] = old.get(field, row[field])
    row["tag_ids"] = list(old.get("tag_ids") or [])


def _takeover_quietly(call: Call, record: dict) -> bool:
    """WeCom sends no add event if the takeover already had the customer, or once handed it over itself."""
    if tables.follow_active(call, record["takeover_userid"], record["external_userid"]) is not None:
        return True
    return any(r["handover_userid"] == record["takeover_userid"] and r["status"] == DONE
               for r in _history(call, record["external_userid"]) if r is not record)


def _fail(call: Call, record: dict, status: int, reason: str) -> None:
    _finish(call, record, status)
    call.emit("change_external_contact", "transfer_fail", FailReason=reason, UserID=record["takeover_userid"],
              ExternalUserID=record["external_userid"])


def _complete(call: Call, record: dict, counts: dict[str, int]) -> None:
    external_userid, takeover = record["external_userid"], record["takeover_userid"]
    old = tables.follow_active(call, record["handover_userid"], external_userid)
    if old is None:
        return _finish(call, record, NO_RECORD)
    quiet = _takeover_quietly(call, record)
    already = tables.follow_active(call, takeover, external_userid) is not None
    if takeover not in counts:
        counts[takeover] = len(tables.follows_of_member(call, takeover))
    if not already and counts[takeover] >= int(call.state.config.get("customer_limit", 5000)):
        return _fail(call, record, SUCCESSOR_FULL, "customer_limit_exceed")
    tables.follow_end(call, old, status="transferred")
    if not already:
        _follow_copy(call, old, takeover)
        counts[takeover] += 1
    _finish(call, record, DONE)
    if record["kind"] == ONJOB:
        call.emit("change_external_contact", "del_external_contact", UserID=record["handover_userid"],
                  ExternalUserID=external_userid, Source="DELETE_BY_TRANSFER")
    if not quiet:
        call.emit("change_external_contact", "add_external_contact", UserID=takeover, ExternalUserID=external_userid)


@on_tick
def transfers_take_over(sandbox: Sandbox) -> None:
    call = _tick_call(sandbox)
    records, now = _records(call), call.now()
    due = [records[i] for i in _waiting(call).values() if records[i]["takeover_time"] <= now]
    counts: dict[str, int] = {}  # active customers per takeover, counted once per tick
    for record in sorted(due, key=lambda r: int(r["id"][1:])):
        _complete(call, record, counts)


# -- customers: people and the control view -----------------------------------------------------------
@control("transfers/refuse")
def transfer_refuse(call: Call) -> dict:
    """The customer refuses a waiting on-job transfer within its 24 h: {"external_userid", "handover_userid"?}."""
    external_userid = call.arg("external_userid", required=True)
    record = _records(call).get(_waiting(call).get(external_userid, ""))
    handover = call.arg("handover_userid")
    if record is None or (handover and record["handover_userid"] != handover):
        raise ApiError(IN_PROGRESS, f"no waiting transfer of {external_userid}")
    if record["kind"] == RESIGNED:
        raise ApiError(INVALID_PARAMETER, "a departed member's customers are assigned without asking them")
    _fail(call, record, REFUSED, "customer_refused")
    return {"transfer": record}


@control("transfers", methods=("GET",))
def transfers_list(call: Call) -> dict:
    """Transfer records, filtered by kind / handover_userid / takeover_userid / external_userid / status;
    with external_userid, also every follow of that customer (ended ones included)."""
    keys = ("kind", "handover_userid", "takeover_userid", "external_userid", "status")
    wanted = {k: call.query[k] for k in keys if call.query.get(k)}
    rows = [r for r in _records(call).values() if all(str(r[k]) == v for k, v in wanted.items())]
    result: dict = {"transfers": rows[-int(call.query.get("limit", 1000)):]}
    if "external_userid" in wanted:
        result["follows"] = [f for f in call.state.table("follows").values()
                             if f["external_userid"] == wanted["external_userid"]]
    return result


# -- group chats -----------------------------------------------------------------------------------------
def _chats(call: Call) -> dict[str, dict]:
    return call.state.table("groupchats")


def _chat_or_error(call: Call, chat_id: str) -> dict:
    chat = _chats(call).get(str(chat_id))
    if chat is None:
        raise ApiError(CHAT_NOT_FOUND, f"chat_id not exists: {chat_id}")
    if chat["dismissed"]:
        raise ApiError(CHAT_DISMISSED, "chat has been dismissed")
    return chat


def _chat_status(call: Call, chat: dict) -> int:
    if chat["owner"] in _departed(call):
        return 1  # 离职待继承
    return 3 if chat.get("inherited") else 0


@endpoint("externalcontact/groupchat/list")
def groupchat_list(call: Call) -> dict:
    status_filter = _int_arg(call, "status_filter", 0, 0, 3)
    limit = _int_arg(call, "limit", 0, 1, 1000)
    owners = (call.body.get("owner_filter") or {}).get("userid_list") or []
    if len(owners) > MAX_PER_CALL:
        raise ApiError(INVALID_PARAMETER, "owner_filter.userid_list exceeds 100")
    statuses = {chat_id: _chat_status(call, chat) for chat_id, chat in _chats(call).items()
                if not chat["dismissed"] and (not owners or chat["owner"] in owners)}
    keys = sorted(c for c, status in statuses.items() if not status_filter or status == status_filter)
    page, next_cursor = _page(keys, call.arg("cursor"), limit)
    return {"group_chat_list": [{"chat_id": c, "status": statuses[c]} for c in page], "next_cursor": next_cursor}


def _member_name(call: Call, member: dict) -> str:
    if member["type"] == 1:
        person = _members(call).get(member["userid"]) or call.state.table("departed_users").get(member["userid"])
    else:
        person = call.state.table("customers").get(member["userid"])
    return (person or {}).get("name", "")


def _member_view(call: Call, member: dict, need_name: bool) -> dict:
    view = {k: member[k] for k in ("userid", "type", "join_time", "join_scene", "group_nickname")}
    if member.get("invitor"):
        view["invitor"] = {"userid": member["invitor"]}
    if need_name:
        view["name"] = _member_name(call, member)
    return view


@endpoint("externalcontact/groupchat/get")
def groupchat_get(call: Call) -> dict:
    chat = _chat_or_error(call, call.arg("chat_id", required=True))
    need_name = str(call.arg("need_name", 0)) == "1"
    return {"group_chat": {
        "chat_id": chat["chat_id"], "name": chat["name"], "owner": chat["owner"], "create_time": chat["create_time"],
        "notice": chat["notice"], "member_list": [_member_view(call, m, need_name) for m in chat["members"]],
        "admin_list": [{"userid": u} for u in chat["admin_list"]], "member_version": str(chat["member_version"])}}


def _day_key(call: Call, owner: str) -> str:
    return f"{owner}|{(call.now() + BEIJING_OFFSET) // DAY}"


def _chat_transfer_error(call: Call, kind: str, chat_id: str, new_owner: str) -> tuple[int, str]:
    chat = _chats(call).get(chat_id)
    if chat is None:
        return CHAT_NOT_FOUND, "chat_id not exists"
    owner_left = chat["owner"] in _departed(call)
    recent = [t for t in chat["transfers"] if t["kind"] == ONJOB and t["at"] > call.now() - RULE_WINDOW]
    checks = [
        (chat["dismissed"], CHAT_DISMISSED, "chat has been dismissed"),
        (kind == RESIGNED and not owner_left and chat.get("inherited"), CHAT_INHERITED, "chat already inherited"),
        (kind == RESIGNED and not owner_left, OWNER_NOT_RESIGNED, "the owner of this chat is not resigned"),
        (kind == ONJOB and owner_left, OWNER_RESIGNED, "the owner of this chat is resigned"),
        (chat["owner"] == new_owner, OWNER_UNCHANGED, "the owner is not changed"),
        (kind == ONJOB and len(recent) >= TRANSFERS_PER_WINDOW, TOO_FREQUENT, "chat transferred twice in 90 days"),
        (call.state.table("chat_transfer_days").get(_day_key(call, chat["owner"]), 0) >= CHATS_PER_OWNER_PER_DAY,
         DAILY_CAP, "at most 300 chats of one owner can be assigned per day"),
    ]
    return next(((code, message) for failed, code, message in checks if failed), (0, ""))


def _member_add(chat: dict, userid: str, member_type: int, join_scene: int, invitor: str, now: int) -> None:
    chat["members"].append({"userid": userid, "type": member_type, "join_time": now, "join_scene": join_scene,
                            "invitor": invitor, "group_nickname": ""})
    chat["member_version"] += 1


def _chat_hand_over(call: Call, kind: str, chat: dict, new_owner: str) -> None:
    days = call.state.table("chat_transfer_days")
    key = _day_key(call, chat["owner"])
    days[key] = days.get(key, 0) + 1
    chat["transfers"].append({"kind": kind, "from": chat["owner"], "to": new_owner, "at": call.now()})
    chat["owner"] = new_owner
    chat["inherited"] = chat.get("inherited") or kind == RESIGNED
    chat["admin_list"] = [u for u in chat["admin_list"] if u != new_owner]
    if all(m["userid"] != new_owner for m in chat["members"]):
        _member_add(chat, new_owner, 1, 1, "", call.now())
    call.emit("change_external_chat", "update", ChatId=chat["chat_id"], UpdateDetail="change_owner")


def _chat_transfer(call: Call, kind: str) -> dict:
    chat_ids = _id_list(call, "chat_id_list")
    new_owner = call.arg("new_owner", required=True)
    if new_owner not in _members(call):
        raise ApiError(USER_NOT_FOUND, f"userid not found: {new_owner}")
    failed = []
    for chat_id in chat_ids:
        errcode, errmsg = _chat_transfer_error(call, kind, chat_id, new_owner)
        if errcode:
            failed.append({"chat_id": chat_id, "errcode": errcode, "errmsg": errmsg})
        else:
            _chat_hand_over(call, kind, _chats(call)[chat_id], new_owner)
    return {"failed_chat_list": failed}


@endpoint("externalcontact/groupchat/transfer")
def groupchat_transfer(call: Call) -> dict:
    """Chats whose owner has left (分配离职成员的客户群)."""
    return _chat_transfer(call, RESIGNED)


@endpoint("externalcontact/groupchat/onjob_transfer")
def groupchat_onjob_transfer(call: Call) -> dict:
    """Chats whose owner is still employed (分配在职成员的客户群)."""
    return _chat_transfer(call, ONJOB)


# -- group chats: people ------------------------------------------------------------------------------
def _chat_new(call: Call, data: dict) -> dict:
    owner, joiners = data.get("owner"), data.get("members") or []
    if not isinstance(joiners, list):
        raise ApiError(INVALID_PARAMETER, "members must be a list of userids / external_userids")
    if owner not in _members(call):
        raise ApiError(USER_NOT_FOUND, f"owner not found: {owner}")
    chat_id = str(data.get("chat_id") or call.state.random_id("wr", 30))
    if chat_id in _chats(call):
        raise ApiError(INVALID_PARAMETER, f"chat_id exists: {chat_id}")
    now = call.now()
    chat = {"chat_id": chat_id, "name": data.get("name", ""), "owner": owner, "create_time": now,
            "notice": data.get("notice", ""), "members": [], "admin_list": list(data.get("admin_list", [])),
            "member_version": 0, "dismissed": False, "inherited": False, "transfers": []}
    _member_add(chat, owner, 1, 1, "", now)
    for member in dict.fromkeys(str(m) for m in joiners if m != owner):
        _member_add(chat, member, 1 if member in _members(call) else 2, 1, owner, now)
    _chats(call)[chat_id] = chat
    return chat


@control("groupchats/create")
def groupchat_create(call: Call) -> dict:
    """A member creates a customer group: {"owner", "name", "members": [userid or external_userid], "notice",
    "admin_list", "chat_id"?}. Ids of current members join as type 1, anything else as external (type 2)."""
    chat = _chat_new(call, call.body)
    call.emit("change_external_chat", "create", ChatId=chat["chat_id"])
    return {"group_chat": chat}


@control("groupchats/load")
def groupchat_load(call: Call) -> dict:
    """Bulk-create chats quietly (no callbacks): {"chats": [{"owner", "name", "members", ...}]}."""
    created = [_chat_new(call, data)["chat_id"] for data in call.body.get("chats", [])]
    return {"chat_ids": created}


@control("groupchats/join")
def groupchat_join(call: Call) -> dict:
    """Someone joins: {"chat_id", "external_userid" | "userid", "join_scene": 1 invited, 2 link, 3 QR code
    (default), "invitor"?}."""
    chat = _chat_or_error(call, call.arg("chat_id", required=True))
    joiner = call.arg("external_userid") or call.arg("userid", required=True)
    if any(m["userid"] == joiner for m in chat["members"]):
        raise ApiError(INVALID_PARAMETER, f"already in the chat: {joiner}")
    join_scene = int(call.arg("join_scene", 3))
    invitor = call.arg("invitor") or (chat["owner"] if join_scene in (1, 2) else "")
    last_version = chat["member_version"]
    _member_add(chat, joiner, 1 if joiner in _members(call) else 2, join_scene, invitor, call.now())
    # The event's JoinScene: 0 invited by a member (directly or by link), 3 by scanning the group QR code.
    call.emit("change_external_chat", "update", ChatId=chat["chat_id"], UpdateDetail="add_member",
              JoinScene=3 if join_scene == 3 else 0, MemChangeCnt=1, MemChangeList={"Item": joiner},
              LastMemVer=str(last_version), CurMemVer=str(chat["member_version"]))
    return {"group_chat": chat}


@control("groupchats/dismiss")
def groupchat_dismiss(call: Call) -> dict:
    """The owner dismisses the chat: gone from groupchat/list, groupchat/get answers 49008."""
    chat = _chat_or_error(call, call.arg("chat_id", required=True))
    chat["dismissed"] = True
    call.emit("change_external_chat", "dismiss", ChatId=chat["chat_id"])
    return {"dismissed": chat["chat_id"]}
