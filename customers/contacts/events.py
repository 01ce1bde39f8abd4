"""Incremental sync from WeCom callbacks: ``change_external_contact`` (add, half add, edit, delete by the
member, delete by the customer, transfer failed).

Each handler takes the customer's advisory lock, re-reads the customer from WeCom
(``externalcontact/get``) and applies it with the same upserts as the full sync; then the event adds
only what WeCom can no longer show (see customers/contacts/services.py for the convergence rules):

* an add WeCom no longer lists is recorded as a relationship that has ended since (dated by the event);
* a delete ends the relationship if it was added at or before the event and is not ended later;
  ``Source=DELETE_BY_TRANSFER`` means the customer went to another member: status ``transferred``;
* ``transfer_fail`` leaves the customer with its member (as WeCom shows) and records the failure as an
  audit event on the customer (``customers.transfer_fail``: takeover member, reason, time), which the
  customer page shows; relationships carry WeCom's own remark/description, which a note must not overwrite.

Only ``add_external_contact`` calls ``acquisition_on_add`` (attribution, auto-tags, welcome message),
and only for the add the event reports (a follow added later than the event is another add).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from customers.contacts.services import (
    customer_read,
    customers_refresh,
    read_apply,
    staff_counts_refresh,
)
from customers.lifecycle.services import stage_on_first_add
from customers.models import Customer, Relationship
from portal.audit import audit_record
from portal.locks import TextLock, xact_lock
from portal.models import AuditEvent
from stores.models import Staff

TRANSFER_FAIL = "customers.transfer_fail"  # the audit action the customer page lists
ADD_EVENT_TOLERANCE = 60  # seconds between an add event and the follow's createtime for "the same add"

ENDING = {"del_external_contact": Relationship.Status.DELETED_BY_STAFF,
          "del_follow_user": Relationship.Status.DELETED_BY_CUSTOMER}
ADDING = ("add_external_contact", "add_half_external_contact")

CUSTOMER_ENSURE_SQL = """
INSERT INTO customers_customer (external_userid, unionid, name, kind, gender, avatar, corp_name, stage, tag_ids,
                                active, created_at, updated_at)
VALUES (%(external_userid)s, '', '', 1, 0, '', '', 'fan', '{}', false, now(), now())
ON CONFLICT (external_userid) DO NOTHING
RETURNING id
"""

# An add WeCom no longer confirms: the relationship existed at the event's time and has ended since.
# A row made by a delete that arrived first (added_at = ended_at) learns its real add time.
ADDED_ENDED_SQL = """
INSERT INTO customers_relationship AS r (customer_id, staff_id, store_id, added_at, add_way, state, campaign_ref,
    remark, description, remark_mobiles, remark_mobile_hashes, tag_ids, status, ended_at, synced_at)
VALUES (%(customer_id)s, %(staff_id)s, %(store_id)s, %(at)s, 0, %(state)s, '', '', '', '{}', '{}', '{}',
        'deleted_by_staff', %(at)s, %(seen_at)s)
ON CONFLICT (staff_id, customer_id) DO UPDATE SET
    added_at = EXCLUDED.added_at, state = CASE WHEN r.state = '' THEN EXCLUDED.state ELSE r.state END
WHERE r.status <> 'active' AND r.added_at = r.ended_at AND r.added_at > EXCLUDED.added_at
RETURNING r.id
"""

END_SQL = """
UPDATE customers_relationship SET status = %(status)s, ended_at = %(at)s, synced_at = %(seen_at)s
WHERE staff_id = %(staff_id)s AND customer_id = %(customer_id)s AND added_at <= %(at)s
  AND (status = 'active' OR ended_at <= %(at)s)
"""

END_INSERT_SQL = """
INSERT INTO customers_relationship (customer_id, staff_id, store_id, added_at, add_way, state, campaign_ref, remark,
    description, remark_mobiles, remark_mobile_hashes, tag_ids, status, ended_at, synced_at)
VALUES (%(customer_id)s, %(staff_id)s, %(store_id)s, %(at)s, 0, '', '', '', '', '{}', '{}', '{}', %(status)s, %(at)s,
        %(seen_at)s)
ON CONFLICT (staff_id, customer_id) DO NOTHING
"""


def event_time(fields: dict) -> datetime:
    created = str(fields.get("CreateTime") or "")
    return datetime.fromtimestamp(int(created), tz=UTC) if created.isdigit() else timezone.now()


def _staff_for(userid: str) -> Staff | None:
    """The event's member; one we have not synced yet is fetched from the address book first."""
    staff = Staff.objects.filter(userid=userid).first()
    if staff is None and userid:
        from stores.org.addressbook import member_sync_one

        member_sync_one(userid=userid)
        staff = Staff.objects.filter(userid=userid).first()
    return staff


def _customer_id_ensure(external_userid: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(CUSTOMER_ENSURE_SQL, {"external_userid": external_userid})
        row = cursor.fetchone()
    if row:
        stage_on_first_add(customer_ids=[row[0]])
        return row[0]
    return Customer.objects.filter(external_userid=external_userid).values_list("pk", flat=True).get()


def contact_event_apply(*, change_type: str, fields: dict) -> str:
    """Apply one change_external_contact event (add, half add, edit, delete by staff or customer).

    WeCom's current view of the customer is read and applied first; then the event adds what only it
    knows (an add WeCom can no longer show, a delete's cause and time). Returns what happened.
    """
    userid, external_userid = fields.get("UserID") or "", fields.get("ExternalUserID") or ""
    if not external_userid:
        return "ignored: no ExternalUserID"
    with transaction.atomic():
        xact_lock(TextLock.CUSTOMER, external_userid)  # taken before WeCom is read
        return _contact_event_locked(change_type, fields, userid, external_userid)


def _contact_event_locked(change_type: str, fields: dict, userid: str, external_userid: str) -> str:
    at = event_time(fields)
    read = customer_read(external_userid=external_userid, caller=f"customers.event.{change_type}")
    result = read_apply(read, refresh=False)  # refreshed once below, after the time-critical welcome
    staff = _staff_for(userid)
    outcome = "applied"
    if staff is not None and change_type in ADDING and read.follow_of(userid) is None:
        outcome = _added_but_ended(staff, external_userid, at, fields.get("State") or "")
    elif staff is not None and change_type in ENDING:
        status = ENDING[change_type]
        if change_type == "del_external_contact" and fields.get("Source") == "DELETE_BY_TRANSFER":
            status = Relationship.Status.TRANSFERRED
        outcome = _relationship_end(staff, external_userid, status, at)
    customer_id = _customer_id_ensure(external_userid)
    if staff is not None and change_type == "add_external_contact":
        _acquisition(staff, customer_id, fields, at)
    # One refresh for everything above, auto-tags included (they may advance the stage).
    customers_refresh(customer_ids=result.customer_ids | {customer_id})
    staff_counts_refresh(staff_ids=result.staff_ids | ({staff.pk} if staff else set()))
    return outcome


def _added_but_ended(staff: Staff, external_userid: str, at: datetime, state: str) -> str:
    customer_id = _customer_id_ensure(external_userid)
    with connection.cursor() as cursor:
        cursor.execute(ADDED_ENDED_SQL, {"customer_id": customer_id, "staff_id": staff.pk,
                                         "store_id": staff.store_id, "at": at, "state": state[:30],
                                         "seen_at": timezone.now()})
        return "recorded an add WeCom no longer lists" if cursor.rowcount else "stale add"


def _relationship_end(staff: Staff, external_userid: str, status: str, at: datetime) -> str:
    customer_id = _customer_id_ensure(external_userid)
    params = {"customer_id": customer_id, "staff_id": staff.pk, "store_id": staff.store_id, "status": status,
              "at": at, "seen_at": timezone.now()}
    with connection.cursor() as cursor:
        cursor.execute(END_SQL, params)
        if cursor.rowcount:
            return f"ended: {status}"
        cursor.execute(END_INSERT_SQL, params)  # a delete that arrived before its add
        return f"ended: {status}" if cursor.rowcount else "stale delete"


def _acquisition(staff: Staff, customer_id: int, fields: dict, at: datetime) -> None:
    """Attribution, auto-tags and the welcome message, for the add this event reports (not an older one)."""
    from customers.acquisition.attribution import acquisition_on_add

    relationship = Relationship.objects.select_related("customer", "staff__store", "store").filter(
        staff=staff, customer_id=customer_id).first()
    if relationship is None or abs((relationship.added_at - at).total_seconds()) > ADD_EVENT_TOLERANCE:
        return
    acquisition_on_add(relationship=relationship, state=fields.get("State") or "",
                       welcome_code=fields.get("WelcomeCode") or "", event_at=at)


def transfer_failed_record(*, fields: dict) -> str:
    """transfer_fail: the customer stays with the member who handed it over (re-read from WeCom); the
    failure (takeover member, reason, time) is recorded once as an audit event on the customer."""
    external_userid = fields.get("ExternalUserID") or ""
    if not external_userid:
        return "ignored: no ExternalUserID"
    detail = {"takeover_userid": fields.get("UserID") or "", "reason": fields.get("FailReason") or "",
              "at": event_time(fields).isoformat()}
    with transaction.atomic():
        xact_lock(TextLock.CUSTOMER, external_userid)  # taken before WeCom is read
        read_apply(customer_read(external_userid=external_userid, caller="customers.event.transfer_fail"))
        customer_id = _customer_id_ensure(external_userid)
        recorded = AuditEvent.objects.filter(action=TRANSFER_FAIL, target_ids__contains=[customer_id],
                                             detail__contains=detail)
        if recorded.exists():  # the same event replayed from the inbox
            return "already recorded"
        audit_record(action=TRANSFER_FAIL, target_type="customers.customer", target_ids=[customer_id], detail=detail)
    return "recorded"
