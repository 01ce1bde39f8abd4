"""Acquisition: the ``state`` codec, contact-way codes (渠道活码 / 一人一码) and welcome messages.

A code's ``state`` (≤ 30 chars, WeCom's limit) names the channel, store, staff member and campaign,
so a customer who scans it is attributed even if the code's row is gone. Codes are created in
WeCom one call at a time (WeCom has no batch call) after their rows are inserted set-based, so a
rerun never creates a code twice. ``acquisition_on_add`` is called by the ``add_external_contact``
handler: it attributes the relationship, sends the welcome message inside WeCom's 20-second
window and records a WelcomeDelivery every time, then applies the channel's auto-tags.
"""

from __future__ import annotations

import logging
import re
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import qrcode
import requests
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Channel, ContactWay, Relationship, WelcomeDelivery, WelcomeMessage
from portal.audit import audit_record
from portal.tasks import enqueue_after_commit
from portal.wecom.gateway import WeComError, WeComRateLimited, WeComUnavailable, wecom_call
from portal.wecom.models import SyncRun
from stores.models import Region, Staff, Store
from stores.scoping import region_ids_with_descendants

logger = logging.getLogger(__name__)


class AcquisitionError(ValueError):
    """Bad input for an acquisition action, with a message a user can read."""


# -- the state codec ------------------------------------------------------------------------------
STATE_MAX = 30
STATE_PREFIX = "X"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHANNEL_RE = re.compile(r"[A-Za-z0-9]{0,8}")
_CAMPAIGN_RE = re.compile(r"[A-Za-z0-9_-]{0,16}")
_ID_RE = re.compile(r"[1-9A-Za-z][0-9A-Za-z]{0,10}")  # canonical base62: no leading zero, < 62**11


class StateTooLong(AcquisitionError):
    pass


@dataclass(frozen=True)
class DecodedState:
    channel_code: str  # "" when the code has no channel
    store_id: int
    staff_id: int | None
    campaign_ref: str


def _b62(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits or "0"


def _b62_decode(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + BASE62.index(char)
    return number


def _checksum(body: str) -> str:
    # Two base62 chars of a CRC: a foreign state that happens to look like ours passes 1 time in 3,844.
    value = zlib.crc32(body.encode()) % (62 * 62)
    return BASE62[value // 62] + BASE62[value % 62]


def _pk(value) -> int | None:
    if value is None:
        return None
    return int(getattr(value, "pk", value))


def contact_state_encode(*, channel, store, staff, campaign_ref: str = "") -> str:
    """``X`` + checksum + ``channel.store.staff.campaign`` (ids in base62), at most 30 characters.

    ``channel`` is a Channel, its code, or None; ``store`` and ``staff`` are instances or ids.
    """
    code = channel.code if isinstance(channel, Channel) else (channel or "")
    campaign_ref = campaign_ref or ""
    if not _CHANNEL_RE.fullmatch(code):
        raise AcquisitionError(_("渠道编码只能是最多 8 位字母或数字：%(code)s") % {"code": code})
    if not _CAMPAIGN_RE.fullmatch(campaign_ref):
        raise AcquisitionError(_("活动编码只能是最多 16 位字母、数字、- 或 _：%(ref)s") % {"ref": campaign_ref})
    store_id, staff_id = _pk(store), _pk(staff)
    if not store_id or store_id < 1 or (staff_id is not None and staff_id < 1):
        raise AcquisitionError(_("活码必须属于一个门店"))
    body = f"{code}.{_b62(store_id)}.{_b62(staff_id) if staff_id else ''}.{campaign_ref}"
    state = STATE_PREFIX + _checksum(body) + body
    if len(state) > STATE_MAX:
        raise StateTooLong(_("活码参数 state 超过企业微信的 30 个字符上限（%(n)d 个）：请缩短渠道编码或活动编码")
                           % {"n": len(state)})
    return state


def contact_state_decode(state) -> DecodedState | None:
    """The attribution in a state we made; None for anything else (other tools' states, garbage)."""
    if not isinstance(state, str) or not (3 < len(state) <= STATE_MAX) or not state.startswith(STATE_PREFIX):
        return None
    check, body = state[1:3], state[3:]
    parts = body.split(".")
    if len(parts) != 4 or _checksum(body) != check:
        return None
    code, store, staff, campaign = parts
    if not (_CHANNEL_RE.fullmatch(code) and _ID_RE.fullmatch(store) and _CAMPAIGN_RE.fullmatch(campaign)):
        return None
    if staff and not _ID_RE.fullmatch(staff):
        return None
    return DecodedState(channel_code=code, store_id=_b62_decode(store),
                        staff_id=_b62_decode(staff) if staff else None, campaign_ref=campaign)


# -- WeCom's error codes in plain Chinese ---------------------------------------------------------
WECOM_ERRORS = {
    40003: "员工账号（userid）在企业微信中不存在",
    40058: "参数不合法",
    40096: "外部联系人 ID 无效",
    40098: "成员尚未实名认证，无法使用客户联系",
    40099: "员工的客户数已达上限",
    41041: "活码的接待成员超过 100 人",
    41044: "活码在企业微信中不存在（可能已被删除）",
    41045: "企业的活码数量已达上限",
    41049: "缺少欢迎语 code",
    41050: "欢迎语 code 无效或已过期：必须在客户添加后 20 秒内发送",
    41051: "欢迎语 code 已被使用或客户已开始聊天（每个 code 只能用一次）",
    41065: "欢迎语附件类型无效",
    45009: "企业微信接口调用频率超限",
    45033: "企业微信接口并发调用超限",
    60111: "员工账号（userid）在企业微信中不存在",
    84061: "客户已不是该员工的好友",
    84074: "员工没有客户联系权限（可能已停用）",
}


def wecom_error_text(exc: WeComError) -> str:
    """A reason a store manager can read, with WeCom's own code and message after it."""
    if isinstance(exc, WeComUnavailable):
        plain = _("企业微信暂时无法访问")
    else:
        plain = WECOM_ERRORS.get(exc.errcode, _("企业微信返回错误"))
    return f"{plain}（{exc.errcode}: {exc.errmsg}）"[:255]


# -- contact-way codes -----------------------------------------------------------------------------
WAY_MEMBERS_MAX = 100  # WeCom: at most 100 members per contact way
WAY_TYPE = {ContactWay.Kind.STAFF: 1, ContactWay.Kind.STORE: 2, ContactWay.Kind.CHANNEL_STORE: 2}
PROGRESS_EVERY = 20
RUN_KIND = "contact_ways.region"

# The members a store code rotates among: the store's active staff, least-loaded first, at most 100.
STORE_MEMBERS_SQL = """
SELECT store_id, id, userid FROM (
    SELECT s.store_id, s.id, s.userid,
           row_number() OVER (PARTITION BY s.store_id ORDER BY s.customer_count, s.id) AS n
    FROM stores_staff s
    WHERE s.store_id = ANY(%(store_ids)s) AND s.status = 'active' AND s.position <> 'hq'
) ranked WHERE n <= %(limit)s ORDER BY store_id, n
"""


def store_members(*, store_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """{store_id: [(staff_id, userid), ...]} for many stores in one query."""
    found: dict[int, list[tuple[int, str]]] = {store_id: [] for store_id in store_ids}
    if not store_ids:
        return found
    with connection.cursor() as cursor:
        cursor.execute(STORE_MEMBERS_SQL, {"store_ids": list(store_ids), "limit": WAY_MEMBERS_MAX})
        for store_id, staff_id, userid in cursor.fetchall():
            found[store_id].append((staff_id, userid))
    return found


def _way_name(*, kind: str, store: Store, staff: Staff | None, channel: Channel | None) -> str:
    if kind == ContactWay.Kind.STAFF:
        name = f"{store.name}·{staff.name}"
    elif kind == ContactWay.Kind.STORE:
        name = _("%(store)s·门店码") % {"store": store.name}
    else:
        name = f"{channel.name}·{store.name}"
    if channel is not None and kind == ContactWay.Kind.STAFF:
        name = f"{channel.name}·{name}"
    return name[:64]


def _kind_channel_validate(*, kind: str, channel: Channel | None) -> None:
    # A store code with a channel would share its state with that channel's store code.
    if kind == ContactWay.Kind.CHANNEL_STORE and channel is None:
        raise AcquisitionError(_("渠道门店码必须指定渠道"))
    if kind == ContactWay.Kind.STORE and channel is not None:
        raise AcquisitionError(_("门店码不带渠道；按渠道为门店生成活码请选“渠道门店码”"))


def contact_way_validate(*, kind: str, store: Store, staff: Staff | None, channel: Channel | None) -> None:
    if kind not in ContactWay.Kind.values:
        raise AcquisitionError(_("未知的活码类型：%(kind)s") % {"kind": kind})
    if kind == ContactWay.Kind.STAFF:
        if staff is None:
            raise AcquisitionError(_("员工码必须指定员工"))
        if staff.store_id != store.pk or staff.status != Staff.Status.ACTIVE:
            raise AcquisitionError(_("%(staff)s 不是 %(store)s 的在职员工") % {"staff": staff, "store": store})
    elif staff is not None:
        raise AcquisitionError(_("门店码由门店在职员工轮流接待，不能指定单个员工"))
    _kind_channel_validate(kind=kind, channel=channel)
    if store.status != Store.Status.OPEN:
        raise AcquisitionError(_("门店已关店：%(store)s") % {"store": store})


def contact_way_create(*, kind: str, store: Store, staff: Staff | None = None, channel: Channel | None = None,
                       campaign_ref: str = "", welcome: WelcomeMessage | None = None, by=None) -> ContactWay:
    """One code, created in WeCom now. Idempotent: the same kind/store/staff/channel/campaign is the same code.

    A WeCom refusal is recorded on the row's ``last_error`` (and returned), not raised.
    """
    contact_way_validate(kind=kind, store=store, staff=staff, channel=channel)
    state = contact_state_encode(channel=channel, store=store, staff=staff, campaign_ref=campaign_ref)
    way, created = ContactWay.objects.get_or_create(state=state, defaults={
        "kind": kind, "store": store, "staff": staff, "channel": channel, "campaign_ref": campaign_ref,
        "welcome": welcome, "name": _way_name(kind=kind, store=store, staff=staff, channel=channel)})
    if created:
        audit_record(action="contact_way.create", target_type="customers.contactway", target_ids=[way.pk], by=by)
    if way.config_id is None and way.active:
        members = store_members(store_ids=[store.pk])[store.pk]
        contact_way_provision(way=way, members=members)
        way.refresh_from_db()
    return way


def _way_members_for(way: ContactWay, members: list[tuple[int, str]]) -> list[tuple[int, str]]:
    if way.kind == ContactWay.Kind.STAFF:
        return [(way.staff_id, way.staff.userid)]
    return members[:WAY_MEMBERS_MAX]


def contact_way_provision(*, way: ContactWay, members: list[tuple[int, str]]) -> bool:
    """Create a pending code in WeCom. The row is locked meanwhile, so two workers never create it twice.

    Returns True when created; a WeCom refusal is written to ``last_error``. Rate limits and outages
    are raised (the task retries later, and the row is still pending).
    """
    chosen = _way_members_for(way, members)
    with transaction.atomic():
        locked = ContactWay.objects.select_for_update(skip_locked=True).filter(
            pk=way.pk, config_id__isnull=True, active=True).first()
        if locked is None:
            return False  # created meanwhile, being created by another worker, or deactivated
        if not chosen:
            locked.last_error = _("门店没有在职员工，无法生成门店码")
            locked.save(update_fields=["last_error"])
            return False
        data = {"type": WAY_TYPE[way.kind], "scene": 2, "remark": way.name[:30], "skip_verify": True,
                "state": way.state, "user": [userid for _id, userid in chosen]}
        try:
            result = wecom_call("externalcontact/add_contact_way", data=data, caller="acquisition.way_create")
        except (WeComRateLimited, WeComUnavailable):
            raise
        except WeComError as exc:
            locked.last_error = wecom_error_text(exc)
            locked.save(update_fields=["last_error"])
            return False
        locked.config_id, locked.qr_code, locked.last_error = result["config_id"], result.get("qr_code", ""), ""
        locked.save(update_fields=["config_id", "qr_code", "last_error"])
        locked.members.set([staff_id for staff_id, _userid in chosen])
    return True


@dataclass(frozen=True)
class RegionCodes:
    run: SyncRun
    stores: int
    new_codes: int
    pending: int


def _region_rows(*, store_ids: list[int], kind: str, channel: Channel | None) -> list[ContactWay]:
    """The codes a region needs, built from one read of stores (and staff for 一人一码)."""
    stores = {s.pk: s for s in Store.objects.filter(pk__in=store_ids).only("pk", "name")}
    rows = []
    channel_id = channel.pk if channel else None
    if kind == ContactWay.Kind.STAFF:
        staff_rows = Staff.objects.active().filter(store_id__in=store_ids).exclude(
            position=Staff.Position.HQ).only("pk", "name", "store_id")
        pairs = [(stores[s.store_id], s) for s in staff_rows]
    else:
        pairs = [(store, None) for store in stores.values()]
    for store, staff in pairs:
        state = contact_state_encode(channel=channel, store=store, staff=staff)
        rows.append(ContactWay(kind=kind, store=store, staff=staff, channel_id=channel_id, state=state,
                               name=_way_name(kind=kind, store=store, staff=staff, channel=channel)))
    return rows


def _region_ways(progress: dict):
    store_ids = Store.objects.open().filter(
        region_id__in=region_ids_with_descendants(region_ids=[progress["region_id"]])).values("pk")
    ways = ContactWay.objects.filter(store_id__in=store_ids, kind=progress["kind"])
    return ways.filter(channel_id=progress["channel_id"]) if progress["channel_id"] else ways.filter(
        channel__isnull=True)


def contact_ways_create_for_region(*, region: Region, channel: Channel | None, kind: str, by=None) -> RegionCodes:
    """Codes for every open store of a region and its sub-regions, in one action.

    The rows are inserted here (set-based; existing codes are kept, never created twice); a Celery
    job then creates them in WeCom one by one with progress on a SyncRun.
    """
    if kind not in ContactWay.Kind.values:
        raise AcquisitionError(_("未知的活码类型：%(kind)s") % {"kind": kind})
    _kind_channel_validate(kind=kind, channel=channel)
    region_ids = region_ids_with_descendants(region_ids=[region.pk])
    store_ids = list(Store.objects.open().filter(region_id__in=region_ids).values_list("pk", flat=True))
    rows = _region_rows(store_ids=store_ids, kind=kind, channel=channel)
    before = ContactWay.objects.filter(state__in=[r.state for r in rows]).count() if rows else 0
    with transaction.atomic():
        ContactWay.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        progress = {"region_id": region.pk, "region": region.name, "channel_id": channel.pk if channel else None,
                    "kind": kind, "by": getattr(by, "pk", None), "stores": len(store_ids), "codes": len(rows),
                    "new": len(rows) - before, "done": 0, "created": 0, "failed": 0, "stage": "queued"}
        progress["pending"] = _region_ways(progress).filter(config_id__isnull=True, active=True).count()
        run = SyncRun.objects.create(kind=RUN_KIND, progress=progress)
        audit_record(action="contact_way.create_for_region", target_type="stores.region", target_ids=[region.pk],
                     by=by, detail={"kind": kind, "channel": progress["channel_id"], "run": run.pk})
        from customers.tasks.acquisition import contact_ways_provision_task

        enqueue_after_commit(contact_ways_provision_task, run_id=run.pk)
    return RegionCodes(run=run, stores=len(store_ids), new_codes=progress["new"], pending=progress["pending"])


def contact_ways_provision_run(*, run_id: int) -> SyncRun:
    """The job: create the region's pending codes in WeCom, 200 rows read at a time. Safe to run twice."""
    run = SyncRun.objects.get(pk=run_id)
    if run.status != SyncRun.Status.RUNNING:
        return run
    pending = _region_ways(run.progress).filter(config_id__isnull=True, active=True)
    # A retried job (after a rate limit) starts counting again from what is still pending.
    progress = dict(run.progress, stage="creating", done=0, failed=0, pending=pending.count())
    SyncRun.objects.filter(pk=run.pk).update(progress=progress)
    last_id = 0
    while True:
        batch = list(pending.filter(pk__gt=last_id).select_related("staff").order_by("pk")[:200])
        if not batch:
            break
        members = store_members(store_ids=list({w.store_id for w in batch if w.kind != ContactWay.Kind.STAFF}))
        for way in batch:
            created = contact_way_provision(way=way, members=members.get(way.store_id, []))
            progress["done"] += 1
            progress["created" if created else "failed"] += 1
            if progress["done"] % PROGRESS_EVERY == 0:
                SyncRun.objects.filter(pk=run.pk).update(progress=progress)
        last_id = batch[-1].pk
    progress["failed"] = _region_ways(progress).filter(config_id__isnull=True, active=True).count()
    progress["stage"] = "done"
    SyncRun.objects.filter(pk=run.pk).update(progress=progress, status=SyncRun.Status.DONE,
                                             finished_at=timezone.now())
    run.refresh_from_db()
    return run


def contact_way_members_refresh(*, store: Store) -> int:
    """After staff join or leave a store: store codes rotate among its current active staff (≤ 100),
    and codes of staff no longer active there are deactivated. Returns the codes changed in WeCom."""
    changed = 0
    current = store_members(store_ids=[store.pk])[store.pk]
    wanted = [staff_id for staff_id, _userid in current]
    ways = ContactWay.objects.filter(store=store, active=True, config_id__isnull=False).exclude(
        kind=ContactWay.Kind.STAFF).prefetch_related("members")
    for way in ways:
        if sorted(m.pk for m in way.members.all()) == sorted(wanted) or not wanted:
            continue  # WeCom refuses a way without members: an empty store keeps its last members
        try:
            wecom_call("externalcontact/update_contact_way", caller="acquisition.members_refresh",
                       data={"config_id": way.config_id, "user": [userid for _id, userid in current]})
        except (WeComRateLimited, WeComUnavailable):
            raise
        except WeComError as exc:
            ContactWay.objects.filter(pk=way.pk).update(last_error=wecom_error_text(exc))
            continue
        way.members.set(wanted)
        ContactWay.objects.filter(pk=way.pk).update(last_error="")
        changed += 1
    gone = ContactWay.objects.filter(store=store, kind=ContactWay.Kind.STAFF, active=True).filter(
        ~Q(staff__store=store) | ~Q(staff__status=Staff.Status.ACTIVE))
    changed += contact_ways_deactivate(ways=gone)
    return changed


def _way_delete_in_wecom(way: ContactWay) -> None:
    try:
        wecom_call("externalcontact/del_contact_way", data={"config_id": way.config_id},
                   caller="acquisition.way_delete")
    except WeComError as exc:
        if exc.errcode != 41044:  # already gone from WeCom: the goal is reached
            raise


def contact_ways_deactivate(*, ways, by=None) -> int:
    """Stop codes: deleted in WeCom (a scan then fails there), kept here so past adds stay attributed."""
    stopped = []
    for way in ways.filter(active=True):
        if way.config_id:
            try:
                _way_delete_in_wecom(way)
            except WeComError as exc:
                ContactWay.objects.filter(pk=way.pk).update(last_error=wecom_error_text(exc))
                continue
        ContactWay.objects.filter(pk=way.pk).update(active=False, last_error="")
        stopped.append(way.pk)
    if stopped:
        audit_record(action="contact_way.deactivate", target_type="customers.contactway", target_ids=stopped, by=by)
    return len(stopped)


def contact_ways_delete(*, ways, by=None) -> int:
    """Delete codes in WeCom and here (relationships keep their channel and campaign)."""
    deleted_ids = []
    for way in ways:
        if way.config_id and way.active:
            try:
                _way_delete_in_wecom(way)
            except WeComError as exc:
                ContactWay.objects.filter(pk=way.pk).update(last_error=wecom_error_text(exc))
                continue
        deleted_ids.append(way.pk)
    ContactWay.objects.filter(pk__in=deleted_ids).delete()
    if deleted_ids:
        audit_record(action="contact_way.delete", target_type="customers.contactway", target_ids=deleted_ids, by=by)
    return len(deleted_ids)


QR_FETCH_TIMEOUT = 5


def qr_png_render(text: str, *, scale: int = 8) -> bytes:
    """``text`` as a QR code in a greyscale PNG (qrcode's matrix, encoded here: no Pillow needed)."""
    code = qrcode.QRCode(border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    rows = b"".join((b"\x00" + bytes(0 if dark else 255 for dark in line for _ in range(scale))) * scale
                    for line in matrix)
    size = len(matrix) * scale

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def qr_png_fetch_or_render(url: str) -> bytes:
    """The code's QR image from WeCom; if it cannot be fetched in time, the same URL drawn as a QR here."""
    try:
        response = requests.get(url, timeout=QR_FETCH_TIMEOUT)
        if response.status_code == 200 and response.content.startswith(b"\x89PNG"):
            return response.content
    except requests.RequestException:
        logger.warning("QR image %s could not be fetched; drawing it", url)
    return qr_png_render(url)


# -- welcome messages -------------------------------------------------------------------------------
WELCOME_WINDOW = timedelta(seconds=20)
WELCOME_VARIABLES = ("{客户昵称}", "{员工姓名}", "{门店名称}")
SAMPLE_VALUES = {"{客户昵称}": "小明", "{员工姓名}": "李导购", "{门店名称}": "上海徐汇店"}
ATTACHMENT_FIELDS = {
    WelcomeMessage.Attachment.IMAGE: ("pic_url",),
    WelcomeMessage.Attachment.LINK: ("title", "url"),
    WelcomeMessage.Attachment.MINIPROGRAM: ("title", "appid", "page", "pic_media_id"),
}
ATTACHMENT_OPTIONAL = {WelcomeMessage.Attachment.LINK: ("picurl", "desc")}


def welcome_attachment_validate(*, attachment: str, data) -> dict:
    """The attachment's fields as WeCom wants them, or a clear error naming what is missing."""
    if not attachment:
        return {}
    if attachment not in ATTACHMENT_FIELDS:
        raise AcquisitionError(_("未知的附件类型：%(kind)s") % {"kind": attachment})
    if not isinstance(data, dict):
        raise AcquisitionError(_("附件内容必须是 JSON 对象"))
    required = ATTACHMENT_FIELDS[attachment]
    missing = [name for name in required if not str(data.get(name) or "").strip()]
    if missing:
        raise AcquisitionError(_("附件缺少字段：%(fields)s") % {"fields": "、".join(missing)})
    allowed = required + ATTACHMENT_OPTIONAL.get(attachment, ())
    return {name: str(data[name]) for name in allowed if data.get(name)}


def welcome_text_validate(*, text: str) -> str:
    """Only our three variables: a typo such as {客户名称} would reach the customer as it is."""
    unknown = sorted(set(re.findall(r"\{[^{}]*\}", text)) - set(WELCOME_VARIABLES))
    if unknown:
        raise AcquisitionError(_("欢迎语里有无法识别的变量：%(unknown)s；可用变量：%(known)s") % {
            "unknown": "、".join(unknown), "known": " ".join(WELCOME_VARIABLES)})
    return text


def channel_code_validate(*, code: str) -> str:
    if not _CHANNEL_RE.fullmatch(code or "") or not code:
        raise AcquisitionError(_("渠道编码须为 1 到 8 位字母或数字（它会写进活码的 state）"))
    return code


def welcome_text_render(*, text: str, values: dict[str, str]) -> str:
    # Plain replacement, not str.format: copy may contain other braces.
    for variable in WELCOME_VARIABLES:
        text = text.replace(variable, values.get(variable, ""))
    return text


def welcome_payload(*, welcome: WelcomeMessage, values: dict[str, str]) -> dict:
    """What send_welcome_msg receives (without the code): text with variables filled, one attachment."""
    payload: dict = {}
    content = welcome_text_render(text=welcome.text, values=values).strip()
    if content:
        payload["text"] = {"content": content}
    fields = welcome_attachment_validate(attachment=welcome.attachment, data=welcome.attachment_data)
    if fields:
        payload["attachments"] = [{"msgtype": welcome.attachment, welcome.attachment: fields}]
    return payload


def welcome_preview(*, welcome: WelcomeMessage) -> str:
    return welcome_text_render(text=welcome.text, values=SAMPLE_VALUES)


@dataclass(frozen=True)
class Attribution:
    contact_way: ContactWay | None
    channel: Channel | None
    campaign_ref: str


def acquisition_attribute(*, state: str) -> Attribution:
    """Our code with this state, else what the state itself says (a code deleted since), else nothing."""
    way = ContactWay.objects.select_related("channel", "welcome", "channel__welcome").filter(
        state=state).first() if state else None
    if way is not None:
        return Attribution(contact_way=way, channel=way.channel, campaign_ref=way.campaign_ref)
    decoded = contact_state_decode(state)
    if decoded is None:
        return Attribution(contact_way=None, channel=None, campaign_ref="")
    channel = Channel.objects.select_related("welcome").filter(code=decoded.channel_code).first() \
        if decoded.channel_code else None
    return Attribution(contact_way=None, channel=channel, campaign_ref=decoded.campaign_ref)


ATTRIBUTE_SQL = """
WITH relationship AS (
    UPDATE customers_relationship SET channel_id = %(channel)s::bigint, contact_way_id = %(way)s::bigint,
                                      campaign_ref = %(campaign)s
    WHERE id = %(id)s RETURNING customer_id
)
UPDATE customers_customer c SET channel_id = %(channel)s::bigint FROM relationship r
WHERE c.id = r.customer_id AND c.channel_id IS NULL AND %(channel)s::bigint IS NOT NULL
"""


def _attribution_store(*, relationship: Relationship, found: Attribution) -> None:
    """One statement: the relationship's channel, code and campaign, and the customer's first channel."""
    with connection.cursor() as cursor:
        cursor.execute(ATTRIBUTE_SQL, {"id": relationship.pk, "channel": found.channel.pk if found.channel else None,
                                       "way": found.contact_way.pk if found.contact_way else None,
                                       "campaign": found.campaign_ref})
    relationship.channel, relationship.contact_way, relationship.campaign_ref = (
        found.channel, found.contact_way, found.campaign_ref)


def _welcome_for(found: Attribution) -> WelcomeMessage | None:
    for welcome in (found.contact_way and found.contact_way.welcome, found.channel and found.channel.welcome):
        if welcome is not None and welcome.active:
            return welcome
    return None


CLAIM_SQL = """
INSERT INTO customers_welcomedelivery (relationship_id, welcome_id, status, reason, event_at, sent_at)
VALUES (%s, %s, 'skipped', %s, %s, now())
ON CONFLICT (relationship_id) DO NOTHING
RETURNING id
"""


def _delivery_claim(*, relationship: Relationship, welcome: WelcomeMessage | None, event_at: datetime) -> int | None:
    """Insert the delivery row first: a second run for the same relationship finds it and sends nothing."""
    with connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, [relationship.pk, welcome.pk if welcome else None, _("发送中"), event_at])
        row = cursor.fetchone()
    return row[0] if row else None


def _delivery_finish(delivery_id: int, *, relationship: Relationship, welcome: WelcomeMessage | None,
                     event_at: datetime, status: str, reason: str, latency_ms: int | None) -> WelcomeDelivery:
    fields = {"status": status, "reason": reason[:255], "latency_ms": latency_ms, "sent_at": timezone.now()}
    WelcomeDelivery.objects.filter(pk=delivery_id).update(**fields)
    return WelcomeDelivery(pk=delivery_id, relationship=relationship, welcome=welcome, event_at=event_at, **fields)


def _welcome_values(relationship: Relationship) -> dict[str, str]:
    store = relationship.store or relationship.staff.store
    return {"{客户昵称}": relationship.customer.name, "{员工姓名}": relationship.staff.name,
            "{门店名称}": store.name if store else ""}


def welcome_send(*, relationship: Relationship, welcome: WelcomeMessage | None, welcome_code: str,
                 event_at: datetime) -> WelcomeDelivery:
    """Send once, inside the 20-second window, and record why whenever it is not sent."""
    delivery_id = _delivery_claim(relationship=relationship, welcome=welcome, event_at=event_at)
    if delivery_id is None:
        return WelcomeDelivery.objects.get(relationship=relationship)  # handled before: never twice
    age = timezone.now() - event_at
    status, reason, latency = WelcomeDelivery.Status.SKIPPED, "", None
    if welcome is None:
        reason = _("渠道和活码都没有配置欢迎语")
    elif not welcome_code:
        reason = _("添加事件中没有欢迎语 code（活码在企业微信里自带欢迎语，或客户并非新添加）")
    elif age > WELCOME_WINDOW:
        reason = _("处理时距客户添加已过 %(s)d 秒，超过企业微信 20 秒的发送时限，未调用企业微信") % {
            "s": age.total_seconds()}
    else:
        try:
            payload = welcome_payload(welcome=welcome, values=_welcome_values(relationship))
            wecom_call("externalcontact/send_welcome_msg", data={"welcome_code": welcome_code, **payload},
                       caller="acquisition.welcome")
            status = WelcomeDelivery.Status.SENT
            latency = max(0, int((timezone.now() - event_at).total_seconds() * 1000))
        except AcquisitionError as exc:
            status, reason = WelcomeDelivery.Status.FAILED, _("欢迎语配置有误：%(error)s") % {"error": exc}
        except WeComError as exc:
            status, reason = WelcomeDelivery.Status.FAILED, wecom_error_text(exc)
    return _delivery_finish(delivery_id, relationship=relationship, welcome=welcome, event_at=event_at,
                            status=status, reason=reason, latency_ms=latency)


TAG_IDS_ADD_SQL = """
WITH relationship AS (
    UPDATE customers_relationship
    SET tag_ids = ARRAY(SELECT DISTINCT t FROM unnest(tag_ids || %(tags)s::integer[]) t ORDER BY t)
    WHERE id = %(relationship)s AND NOT (tag_ids @> %(tags)s::integer[])
)
UPDATE customers_customer
SET tag_ids = ARRAY(SELECT DISTINCT t FROM unnest(tag_ids || %(tags)s::integer[]) t ORDER BY t)
WHERE id = %(customer)s AND NOT (tag_ids @> %(tags)s::integer[])
"""


def channel_tags_apply(*, relationship: Relationship, channel: Channel | None) -> list[int]:
    """The channel's auto-tags: marked in WeCom, then added to our tag id arrays. Returns the tags added."""
    if channel is None:
        return []
    tags = list(channel.auto_tags.filter(deleted=False, wecom_tag_id__isnull=False).values_list("pk", "wecom_tag_id"))
    if not tags:
        return []
    try:
        wecom_call("externalcontact/mark_tag", caller="acquisition.auto_tags", data={
            "userid": relationship.staff.userid, "external_userid": relationship.customer.external_userid,
            "add_tag": [wecom_id for _pk, wecom_id in tags]})
    except WeComError as exc:
        # The tags can be applied again later; the add itself and its welcome message stand.
        logger.warning("auto-tags for relationship %s failed: %s", relationship.pk, exc)
        return []
    ids = [pk for pk, _wecom_id in tags]
    with connection.cursor() as cursor:
        cursor.execute(TAG_IDS_ADD_SQL, {"tags": ids, "relationship": relationship.pk,
                                         "customer": relationship.customer_id})
    return ids


def acquisition_on_add(*, relationship: Relationship, state: str, welcome_code: str,
                       event_at: datetime) -> WelcomeDelivery:
    """A customer added a staff member: attribute, welcome (time-critical, so first), then auto-tags.

    Called by the ``add_external_contact`` handler after the relationship is stored. Safe to run twice:
    attribution and tags converge, and the WelcomeDelivery claim lets the message go out once.
    """
    if not all(f.is_cached(relationship) for f in (Relationship.customer.field, Relationship.staff.field)):
        relationship = Relationship.objects.select_related("customer", "staff__store", "store").get(pk=relationship.pk)
    found = acquisition_attribute(state=state or "")
    # The send has a 20-second deadline: it goes first; what only concerns our own tables follows.
    delivery = welcome_send(relationship=relationship, welcome=_welcome_for(found), welcome_code=welcome_code or "",
                            event_at=event_at)
    _attribution_store(relationship=relationship, found=found)
    channel_tags_apply(relationship=relationship, channel=found.channel)
    return delivery
