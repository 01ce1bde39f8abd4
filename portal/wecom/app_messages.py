"""WeCom app messages (应用消息, ``message/send``) and template cards, kept within WeCom's limits.

Any app may call this (portal is infrastructure); campaigns uses it to notify stores and staff of tasks.

    message = app_message_card_buttons(title="新任务：雨天陈列", description="今天 18:00 前完成",
                                       task_id="task-42-a1", buttons=[CardButton(key="confirm", text="收到")],
                                       url=mobile_url("tasks/42/"))
    result = app_message_send(userids=[...], message=message, purpose="task.notify", key="task-42:notify")
    result.sent / result.deferred (userid → when to retry) / result.failed / result.invalid / result.skipped

What WeCom does and what this module does about it (WECOM.md, app messages):
- ``touser`` takes at most 1,000 members: recipients go out in the fewest batches of 1,000.
- Per app, each member receives at most 30 messages a minute and 1,000 an hour, and WeCom *silently drops*
  the excess (errcode 0, nothing delivered). So the portal keeps a per-member budget in Redis (sliding
  windows, one Lua script per batch: atomic across processes) and never sends what WeCom would drop: a
  member over budget is ``deferred`` with the time the budget frees, never sent.
- Per app and day at most 账号上限数 × 200 recipients (WECOM_APP_MESSAGE_PER_DAY): counted in the same script;
  past it members are deferred to the next Beijing day.
- The gateway retries rate limits and WeCom's bad moments; a batch that still fails releases its budget and
  its claims, and its members come back as ``failed``: nothing is lost, and a retry with the same key sends
  to them only.
- Idempotency is the caller's ``key``: a key reaches a member at most once (AppMessageReceipt, a table, see
  its docstring for why not Redis). Claims are written before the call and removed if it fails, so a crash
  in between errs towards not notifying twice. Call it outside a transaction (a Celery task does): a caller's
  rollback would forget receipts of messages already delivered.
- A template card that calls back returns a ``response_code`` (one update of the card, within 24 h); each
  click arrives as a ``template_card_event`` callback with a fresh one. ``template_card_listen`` routes clicks
  by task_id prefix to the app that sent the card (portal never imports campaigns).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from portal.errors import DomainError
from portal.registry import registry_add
from portal.wecom.events import event_handler
from portal.wecom.gateway import WeComError, WeComRateLimited, _redis, wecom_call
from portal.wecom.models import AppMessageReceipt

BATCH_SIZE = 1000  # message/send: "touser … 最多支持1000个"
ALL_INVALID = 81013  # every recipient unknown or without permission
# update_template_card with a used or expired response_code: 40058 in the sandbox (WeCom's page states the
# rule, not the code; see wecom_sandbox/messaging.py). Other errcodes stay WeComErrors.
RESPONSE_CODE_REFUSED = 40058
BEIJING = ZoneInfo("Asia/Shanghai")
# One second of margin on each window: our clock and WeCom's are not the same clock.
WINDOW_MARGIN = 1.0
TASK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-@")
TASK_ID_MAX = 128
BUTTONS_MAX = 6


class AppMessageInvalid(DomainError):
    """A message WeCom would refuse (an empty title, a task_id with other characters, seven buttons)."""


class CardUpdateRefused(DomainError):
    """WeCom refused to update the card: its response_code was used already or is older than 24 h."""

    def __init__(self, message: str, *, errcode: int | None):
        super().__init__(message)
        self.errcode = errcode


# -- messages -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AppMessage:
    """What ``message/send`` carries besides the recipients: ``msgtype`` and its body."""

    msgtype: str
    body: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"msgtype": self.msgtype, self.msgtype: self.body}

    @property
    def task_id(self) -> str:
        return str(self.body.get("task_id") or "") if self.msgtype == "template_card" else ""


@dataclass(frozen=True)
class CardButton:
    key: str  # comes back as the click's EventKey
    text: str
    style: int = 1  # WeCom's button styles 1–4


def mobile_url(path: str = "") -> str:
    """An absolute link into the mobile page (/m/…), as members' phones reach the portal."""
    if path.startswith(("http://", "https://")):
        return path
    return f"{settings.XIAOER_PUBLIC_URL.rstrip('/')}/m/{path.lstrip('/')}"


def _required(value: str, what: str) -> str:
    if not str(value or "").strip():
        raise AppMessageInvalid(_("应用消息缺少%(what)s") % {"what": what})
    return value


def app_message_text(*, content: str) -> AppMessage:
    return AppMessage("text", {"content": _required(content, _("正文"))})


def app_message_textcard(*, title: str, description: str, url: str, btntxt: str = "") -> AppMessage:
    """A text card: title, description (WeCom renders a few HTML classes), a link, its button's text."""
    body = {"title": _required(title, pgettext("a missing part", "标题")), "description": description or title,
            "url": mobile_url(_required(url, _("链接")))}
    if btntxt:
        body["btntxt"] = btntxt
    return AppMessage("textcard", body)


def app_message_card_buttons(*, title: str, description: str, task_id: str, buttons: list[CardButton],
                             url: str) -> AppMessage:
    """A button_interaction template card: tapping the card opens ``url`` (the mobile page), tapping a button
    calls back (template_card_event with that button's key). ``task_id`` must be unique for the app, for
    ever: build it from ids (``task-42-store-7``)."""
    _required(title, pgettext("a missing part", "标题"))
    if not task_id or len(task_id.encode()) > TASK_ID_MAX or not set(task_id) <= TASK_ID_CHARS:
        raise AppMessageInvalid(_("卡片任务ID只能由字母、数字和 _-@ 组成，最长 128 个字符"))
    if not 1 <= len(buttons) <= BUTTONS_MAX:
        raise AppMessageInvalid(_("卡片需要 1 到 6 个按钮"))
    keys = [_required(button.key, _("按钮键值")) for button in buttons]
    if len(set(keys)) != len(keys):
        raise AppMessageInvalid(_("卡片按钮的键值不能重复"))
    return AppMessage("template_card", {
        "card_type": "button_interaction",
        "main_title": {"title": title, "desc": description},
        "card_action": {"type": 1, "url": mobile_url(_required(url, _("链接")))},
        "task_id": task_id,
        "button_list": [{"text": _required(b.text, _("按钮文字")), "style": b.style, "key": b.key} for b in buttons],
    })


# -- the per-member budget (Redis) ------------------------------------------------------------------------
# KEYS: one sorted set per member (scores: send times), then the day's counter. ARGV: now, per minute, per
# hour, the day's cap, a token for this reservation, the day key's TTL, the minute and hour windows.
# Returns per member: 0 reserved, -1 over the day's cap, else the Unix second its budget frees.
RESERVE_LUA = """
local now, per_minute, per_hour = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local cap, token, day_ttl = tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local minute, hour = tonumber(ARGV[7]), tonumber(ARGV[8])
local day_key = KEYS[#KEYS]
local used = tonumber(redis.call('GET', day_key) or '0')
local granted, result = 0, {}
for i = 1, #KEYS - 1 do
  local key = KEYS[i]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - hour)
  local in_hour = redis.call('ZCARD', key)
  local in_minute = redis.call('ZCOUNT', key, '(' .. (now - minute), '+inf')
  if used + granted >= cap then
    result[i] = -1
  elseif in_minute >= per_minute then
    local oldest = redis.call('ZRANGEBYSCORE', key, '(' .. (now - minute), '+inf', 'WITHSCORES', 'LIMIT',
                              in_minute - per_minute, 1)
    result[i] = math.floor(tonumber(oldest[2]) + minute) + 1
  elseif in_hour >= per_hour then
    local oldest = redis.call('ZRANGE', key, in_hour - per_hour, in_hour - per_hour, 'WITHSCORES')
    result[i] = math.floor(tonumber(oldest[2]) + hour) + 1
  else
    redis.call('ZADD', key, now, token .. ':' .. i)
    redis.call('EXPIRE', key, math.ceil(hour) + 60)
    granted = granted + 1
    result[i] = 0
  end
end
if granted > 0 then
  redis.call('INCRBY', day_key, granted)
  redis.call('EXPIRE', day_key, day_ttl)
end
return result
"""


def _member_key(userid: str) -> str:
    return f"xiaoer:wecom:appmsg:{settings.WECOM_AGENT_ID}:member:{userid}"


def _day_key(day: str) -> str:
    return f"xiaoer:wecom:appmsg:{settings.WECOM_AGENT_ID}:day:{day}"


def _now() -> float:
    return time.time()


@dataclass
class _Reservation:
    token: str
    day: str
    members: dict[str, str] = field(default_factory=dict)  # userid → its entry in the member's sorted set


def _budget_reserve(userids: list[str]) -> tuple[_Reservation, dict[str, datetime]]:
    """Reserve one message for each member within budget: (the reservation, deferred userid → retry time)."""
    now = _now()
    today = datetime.fromtimestamp(now, BEIJING)
    reservation = _Reservation(token=uuid.uuid4().hex, day=today.strftime("%Y%m%d"))
    if not userids:
        return reservation, {}
    tomorrow = datetime.combine(today.date() + timedelta(days=1), datetime.min.time(), BEIJING)
    keys = [_member_key(u) for u in userids] + [_day_key(reservation.day)]
    answers = _redis().eval(RESERVE_LUA, len(keys), *keys, now, settings.WECOM_APP_MESSAGE_PER_MEMBER_MINUTE,
                            settings.WECOM_APP_MESSAGE_PER_MEMBER_HOUR, settings.WECOM_APP_MESSAGE_PER_DAY,
                            reservation.token, 2 * 86400, 60 + WINDOW_MARGIN, 3600 + WINDOW_MARGIN)
    deferred: dict[str, datetime] = {}
    for index, (userid, answer) in enumerate(zip(userids, answers, strict=True), start=1):
        if answer == 0:
            reservation.members[userid] = f"{reservation.token}:{index}"
        elif answer == -1:
            deferred[userid] = tomorrow.astimezone(UTC)
        else:
            deferred[userid] = datetime.fromtimestamp(int(answer), UTC)
    return reservation, deferred


def _budget_release(reservation: _Reservation, userids: Iterable[str]) -> None:
    """Give back what was reserved for members who got nothing (a failed call, an invalid userid)."""
    entries = [(u, reservation.members.pop(u)) for u in list(userids) if u in reservation.members]
    if not entries:
        return
    pipe = _redis().pipeline()
    for userid, entry in entries:
        pipe.zrem(_member_key(userid), entry)
    pipe.decrby(_day_key(reservation.day), len(entries))
    pipe.execute()


# -- receipts (idempotency) ---------------------------------------------------------------------------------
CLAIM_SQL = """
INSERT INTO wecom_appmessagereceipt (key, userid, purpose, msgid, response_code, sent_at)
SELECT %(key)s, u, %(purpose)s, '', '', now() FROM unnest(%(userids)s::text[]) AS u
ON CONFLICT (key, userid) DO NOTHING
RETURNING userid
"""


def _receipts_claim(*, key: str, purpose: str, userids: list[str]) -> set[str]:
    if not userids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, {"key": key, "purpose": purpose[:64], "userids": userids})
        return {row[0] for row in cursor.fetchall()}


def _receipts_forget(*, key: str, userids: list[str]) -> None:
    if userids:
        AppMessageReceipt.objects.filter(key=key, userid__in=userids).delete()


# -- sending ----------------------------------------------------------------------------------------------
@dataclass
class AppSendResult:
    sent: list[str] = field(default_factory=list)
    deferred: dict[str, datetime] = field(default_factory=dict)  # over budget: not sent, retry at that time
    failed: list[str] = field(default_factory=list)  # the call failed after the gateway's retries: not sent
    invalid: list[str] = field(default_factory=list)  # WeCom does not know them (or they may not use the app)
    skipped: list[str] = field(default_factory=list)  # this key reached them before: not sent again
    msgids: list[str] = field(default_factory=list)  # one per call
    response_codes: list[str] = field(default_factory=list)  # interactive cards: one per call
    errors: list[str] = field(default_factory=list)  # why batches failed (redacted by the gateway)

    @property
    def complete(self) -> bool:
        """Nothing left for the caller to retry."""
        return not self.deferred and not self.failed


def _unique(userids: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for userid in userids:
        userid = str(userid or "").strip()
        if userid and userid != "@all":
            seen.setdefault(userid, None)
    return list(seen)


def app_message_send(*, userids: list[str], message: AppMessage, purpose: str, key: str) -> AppSendResult:
    """Send ``message`` to ``userids`` once per ``key``, within WeCom's limits; see the module docstring.

    Returns who got it (``sent``), who must wait (``deferred``), whom the calls failed for (``failed``),
    unknown members (``invalid``) and those this key reached before (``skipped``).
    """
    if not key:
        raise AppMessageInvalid(_("发送应用消息需要幂等键"))
    result = AppSendResult()
    wanted = _unique(userids)
    if message.msgtype == "template_card" and len(wanted) > BATCH_SIZE:
        # A card's task_id is single-use: a second batch would carry it again and WeCom refuses that.
        raise AppMessageInvalid(_("一张模板卡片最多发给 %(n)d 人，请按人数分批并为每批生成新的卡片")
                                % {"n": BATCH_SIZE})
    done = set(AppMessageReceipt.objects.filter(key=key, userid__in=wanted).values_list("userid", flat=True))
    result.skipped = [u for u in wanted if u in done]
    reservation, result.deferred = _budget_reserve([u for u in wanted if u not in done])
    allowed = list(reservation.members)
    claimed = _receipts_claim(key=key, purpose=purpose, userids=allowed)
    raced = [u for u in allowed if u not in claimed]  # another sender claimed them meanwhile
    _budget_release(reservation, raced)
    result.skipped += raced
    ours = [u for u in allowed if u in claimed]
    batches = [ours[i:i + BATCH_SIZE] for i in range(0, len(ours), BATCH_SIZE)]
    rate_limited = False
    for batch in batches:
        if rate_limited:  # WeCom said "slow down" even after the retries: leave the rest for later
            _batch_failed(result, reservation, key=key, batch=batch, error="")
            continue
        try:
            answer = wecom_call("message/send", data={"touser": "|".join(batch), "agentid": _agent_id(),
                                                      **message.payload()}, caller=f"app_message:{purpose}"[:96])
        except WeComError as exc:
            if exc.errcode == ALL_INVALID:
                _batch_invalid(result, reservation, key=key, invalid=batch)
                continue
            rate_limited = isinstance(exc, WeComRateLimited)
            _batch_failed(result, reservation, key=key, batch=batch, error=str(exc))
            continue
        invalid = _invalid_of(answer, batch)
        _batch_invalid(result, reservation, key=key, invalid=invalid)
        delivered = [u for u in batch if u not in set(invalid)]
        msgid, code = str(answer.get("msgid") or ""), str(answer.get("response_code") or "")
        AppMessageReceipt.objects.filter(key=key, userid__in=delivered).update(msgid=msgid, response_code=code)
        result.sent += delivered
        result.msgids.append(msgid)
        if code:
            result.response_codes.append(code)
    return result


def _agent_id() -> int | str:
    agent = str(settings.WECOM_AGENT_ID)
    return int(agent) if agent.isdigit() else agent


def _invalid_of(answer: dict, batch: list[str]) -> list[str]:
    """The batch's members WeCom reports invalid or unlicensed ("a|b"; WeCom lowercases userids)."""
    reported = {u.lower() for name in ("invaliduser", "unlicenseduser")
                for u in str(answer.get(name) or "").split("|") if u}
    return [u for u in batch if u.lower() in reported]


def _batch_failed(result: AppSendResult, reservation: _Reservation, *, key: str, batch: list[str],
                  error: str) -> None:
    _budget_release(reservation, batch)
    _receipts_forget(key=key, userids=batch)
    result.failed += batch
    if error:
        result.errors.append(error)


def _batch_invalid(result: AppSendResult, reservation: _Reservation, *, key: str, invalid: list[str]) -> None:
    _budget_release(reservation, invalid)
    _receipts_forget(key=key, userids=invalid)  # a member who joins later can still get this key
    result.invalid += invalid


# -- cards: updates and clicks ----------------------------------------------------------------------------
def template_card_update(*, response_code: str, userids: list[str], replace_name: str = "") -> list[str]:
    """Grey out the card's buttons for ``userids`` with ``replace_name`` (default "已确认"). A response_code
    works once, within 24 h: afterwards CardUpdateRefused. Returns the userids WeCom called invalid."""
    data = {"userids": _unique(userids), "agentid": _agent_id(), "response_code": response_code,
            "button": {"replace_name": replace_name or _("已确认")}}
    try:
        answer = wecom_call("message/update_template_card", data=data, caller="app_message:card_update")
    except WeComError as exc:
        if exc.errcode == RESPONSE_CODE_REFUSED:  # used already, expired or unknown
            raise CardUpdateRefused(_("卡片已更新过或已超过 24 小时，无法再更新"), errcode=exc.errcode) from exc
        raise
    invalid = answer.get("invaliduser") or []
    return [str(u) for u in (invalid if isinstance(invalid, list) else str(invalid).split("|")) if u]


@dataclass(frozen=True)
class CardClick:
    """A member's click on a template card (a template_card_event callback)."""

    userid: str
    task_id: str
    key: str
    response_code: str  # fresh for this click: updates this member's card once, within 24 h
    card_type: str
    created_at: int | None
    selected: dict[str, list[str]]  # vote / multiple choice: question_key → option ids


CardListener = Callable[[CardClick], None]
_LISTENERS: dict[str, CardListener] = {}


def template_card_listen(*, task_id_prefix: str, handler: CardListener) -> None:
    """Route clicks on cards whose task_id starts with ``task_id_prefix`` to ``handler`` (the longest prefix
    wins). Call it from an AppConfig.ready(); the handler runs in the callback's task, in a transaction, once
    per delivered click (a repeated callback is stored once), and must be idempotent (a replay runs it again)."""
    if not task_id_prefix:
        raise ValueError("a task_id prefix is required")
    registry_add(_LISTENERS, task_id_prefix, handler, what="template card listener")


def template_card_listener_for(task_id: str) -> CardListener | None:
    matches = [prefix for prefix in _LISTENERS if task_id.startswith(prefix)]
    return _LISTENERS[max(matches, key=len)] if matches else None


def _as_list(value: Any) -> list:
    if value in (None, ""):
        return []
    return value if isinstance(value, list) else [value]


def card_click_parse(fields: dict) -> CardClick:
    """A template_card_event's fields (portal.wecom.callbacks.event_parse) as a CardClick."""
    selected: dict[str, list[str]] = {}
    items = fields.get("SelectedItems") or {}
    for item in _as_list(items.get("SelectedItem") if isinstance(items, dict) else None):
        options = item.get("OptionIds") or {}
        selected[str(item.get("QuestionKey") or "")] = [
            str(o) for o in _as_list(options.get("OptionId") if isinstance(options, dict) else None)]
    created = str(fields.get("CreateTime") or "")
    return CardClick(userid=str(fields.get("FromUserName") or ""), task_id=str(fields.get("TaskId") or ""),
                     key=str(fields.get("EventKey") or ""), response_code=str(fields.get("ResponseCode") or ""),
                     card_type=str(fields.get("CardType") or ""),
                     created_at=int(created) if created.isdigit() else None, selected=selected)


@event_handler("template_card_event")
def template_card_clicked(fields: dict) -> None:
    click = card_click_parse(fields)
    listener = template_card_listener_for(click.task_id)
    if listener is not None:
        listener(click)
