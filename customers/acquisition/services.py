"""Contact ways (渠道活码 / 一人一码): created, provisioned in WeCom, refreshed and retired.

Codes are created in WeCom one call at a time (WeCom has no batch call) after their rows are inserted
set-based, so a rerun never creates a code twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.acquisition.errors import AcquisitionError, wecom_error_text
from customers.acquisition.selectors import WAY_MEMBERS_MAX, store_members
from customers.acquisition.state import _CHANNEL_RE, contact_state_encode
from customers.acquisition.tasks import contact_ways_provision_task
from customers.models import Channel, ContactWay, WelcomeMessage
from portal.audit import audit_record
from portal.tasks import enqueue_after_commit
from portal.wecom.gateway import WeComError, WeComRateLimited, WeComUnavailable, wecom_call
from portal.wecom.models import SyncRun
from stores.access.scoping import region_ids_with_descendants
from stores.models import Region, Staff, Store

if TYPE_CHECKING:
    from portal.models import User

logger = logging.getLogger(__name__)


# -- contact-way codes -----------------------------------------------------------------------------
WAY_TYPE: dict[str, int] = {ContactWay.Kind.STAFF: 1, ContactWay.Kind.STORE: 2, ContactWay.Kind.CHANNEL_STORE: 2}
PROGRESS_EVERY = 20
RUN_KIND = "contact_ways.region"


def _way_name(*, kind: str, store: Store, staff: Staff | None, channel: Channel | None) -> str:
    if kind == ContactWay.Kind.STAFF:
        assert staff is not None  # contact_way_validate: a staff code names its member
        name = f"{store.name}·{staff.name}"
    elif kind == ContactWay.Kind.STORE:
        name = _("%(store)s·门店码") % {"store": store.name}
    else:
        assert channel is not None  # contact_way_validate: a channel store code names its channel
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
                       campaign_ref: str = "", welcome: WelcomeMessage | None = None,
                       by: User | None = None) -> ContactWay:
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
        assert way.staff is not None  # a staff code always has its member (contact_way_validate)
        return [(way.staff.pk, way.staff.userid)]
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
        locked.qr_payload = ""  # a new image: read again when a poster needs it
        locked.save(update_fields=["config_id", "qr_code", "qr_payload", "last_error"])
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
        pairs: list[tuple[Store, Staff | None]] = [(stores[s.store_id], s) for s in staff_rows if s.store_id]
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


def contact_ways_create_for_region(*, region: Region, channel: Channel | None, kind: str,
                                   by: User | None = None) -> RegionCodes:
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
        progress: dict[str, Any] = {"region_id": region.pk, "region": region.name,
                                    "channel_id": channel.pk if channel else None,
                    "kind": kind, "by": getattr(by, "pk", None), "stores": len(store_ids), "codes": len(rows),
                    "new": len(rows) - before, "done": 0, "created": 0, "failed": 0, "stage": "queued"}
        progress["pending"] = _region_ways(progress).filter(config_id__isnull=True, active=True).count()
        run = SyncRun.objects.create(kind=RUN_KIND, progress=progress)
        audit_record(action="contact_way.create_for_region", target_type="stores.region", target_ids=[region.pk],
                     by=by, detail={"kind": kind, "channel": progress["channel_id"], "run": run.pk})
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


def contact_ways_deactivate(*, ways, by: User | None = None) -> int:
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


def contact_ways_delete(*, ways, by: User | None = None) -> int:
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


def channel_code_validate(*, code: str) -> str:
    if not _CHANNEL_RE.fullmatch(code or "") or not code:
        raise AcquisitionError(_("渠道编码须为 1 到 8 位字母或数字（它会写进活码的 state）"))
    return code


# -- each guide's own code on their posters (materials asks; customers answers through a registered provider) --

QR_PAYLOAD_READ_MAX = 200  # QR images fetched in one call at most; the others are read by a later call


def staff_qr_payloads(*, staff_ids: list[int]) -> dict[int, str]:
    """What each staff member's own 一人一码 encodes (their newest active plain staff code made in WeCom), for
    those that have one: the poster QR provider (materials.posters.services.poster_qr_provider_register).

    The payload is read once from WeCom's QR image and kept on the code; a code whose image cannot be read
    now is left out (its poster is drawn without a QR code, and redrawn once the image can be read).
    """
    from portal.qr import qr_payload_read

    ways = list(ContactWay.objects.filter(staff_id__in=staff_ids, kind=ContactWay.Kind.STAFF, channel__isnull=True,
                                          active=True, config_id__isnull=False).exclude(qr_code="")
                .order_by("staff_id", "-created_at", "-pk").distinct("staff_id")
                .only("pk", "staff_id", "qr_code", "qr_payload"))
    unread = [way for way in ways if not way.qr_payload][:QR_PAYLOAD_READ_MAX]
    for way in unread:
        payload = qr_payload_read(url=way.qr_code) or ""
        way.qr_payload = payload if len(payload) <= 512 else ""
        if way.qr_payload:  # only if the code did not change meanwhile
            ContactWay.objects.filter(pk=way.pk, qr_code=way.qr_code).update(qr_payload=way.qr_payload)
    return {way.staff_id: way.qr_payload for way in ways if way.qr_payload and way.staff_id is not None}
