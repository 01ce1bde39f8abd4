"""Address-book sync: WeCom members → Staff, WeCom departments → stores' links.

Full sync (beat) loads every member into a temporary table and applies one upsert and one
departure UPDATE. Incremental sync (``change_contact`` callbacks) reads the member's current
state with ``user/get`` and applies the same upsert to one row, so duplicate or out-of-order
events converge on WeCom's state. A sync never deletes portal rows: a member who left becomes
departed and is flagged for customer inheritance.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.wecom.gateway import WeComError, wecom_call
from portal.wecom.models import SyncRun

WECOM_MEMBER_EXITED = 5
MEMBER_NOT_FOUND = 60111
SAFETY_MIN_SHARE = 0.5  # a full list with under half of our active members is treated as an API fault
AUDIT_DETAIL_ROWS = 200  # per audit event, the before/after of at most this many rows (all ids are listed)


class AddressBookSyncError(RuntimeError):
    pass


@dataclass(frozen=True)
class Member:
    userid: str
    name: str
    mobile: str
    main_department: int | None
    position: str
    active: bool

    @classmethod
    def from_wecom(cls, data: dict) -> Member:
        departments = data.get("department") or []
        main = data.get("main_department") or (departments[0] if departments else None)
        return cls(userid=data["userid"], name=(data.get("name") or data["userid"])[:64],
                   mobile=(data.get("mobile") or "")[:20], main_department=int(main) if main else None,
                   position=data.get("position") or "", active=int(data.get("status", 1)) != WECOM_MEMBER_EXITED)


STAFF_UPSERT_SQL = """
WITH incoming(userid, name, mobile, main_department, position_text) AS (
    SELECT * FROM unnest(%(userids)s::text[], %(names)s::text[], %(mobiles)s::text[], %(depts)s::bigint[],
                         %(positions)s::text[])
), resolved AS (
    SELECT i.userid, i.name, i.mobile, s.id AS store_id,
           CASE WHEN s.id IS NULL THEN 'hq'
                WHEN i.position_text LIKE '%%店长%%' THEN 'store_manager'
                WHEN i.position_text LIKE '%%客服%%' THEN 'service'
                ELSE 'guide' END AS position
    FROM incoming i LEFT JOIN stores_store s ON s.wecom_department_id = i.main_department
), before AS (  -- the statement's snapshot: the rows as they were
    SELECT userid, store_id, position FROM stores_staff WHERE userid = ANY(%(userids)s::text[])
), written AS (
INSERT INTO stores_staff (userid, name, mobile, store_id, position, status, departed_at, customer_count,
                          inheritance_pending, wecom_synced_at)
SELECT userid, name, mobile, store_id, position, 'active', NULL, 0, false, now() FROM resolved
ON CONFLICT (userid) DO UPDATE SET
    name = EXCLUDED.name, mobile = EXCLUDED.mobile, store_id = EXCLUDED.store_id, position = EXCLUDED.position,
    status = 'active', departed_at = NULL, wecom_synced_at = now()
WHERE (stores_staff.name, stores_staff.mobile, stores_staff.store_id, stores_staff.position, stores_staff.status)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.mobile, EXCLUDED.store_id, EXCLUDED.position, 'active')
RETURNING id, userid, store_id, position, (xmax = 0) AS inserted
)
SELECT w.id, w.inserted, b.store_id, w.store_id, b.position, w.position
FROM written w LEFT JOIN before b USING (userid)
"""

STAFF_DEPART_SQL = """
UPDATE stores_staff SET status = 'departed', departed_at = now(), inheritance_pending = true
WHERE status = 'active' AND userid = ANY(%(userids)s::text[])
RETURNING id
"""

STAFF_DEPART_MISSING_SQL = """
UPDATE stores_staff SET status = 'departed', departed_at = now(), inheritance_pending = true
WHERE status = 'active' AND NOT (userid = ANY(%(present)s::text[]))
RETURNING id
"""


def staff_upsert_members(*, members: list[Member]) -> tuple[int, int]:
    """Apply active members in one statement. Returns (created, updated).

    A member's store and position decide what their login sees: every change the sync makes to them (WeCom's
    department membership and job title) is audited, in one event per statement."""
    active = [m for m in members if m.active]
    if not active:
        return 0, 0
    with connection.cursor() as cursor:
        cursor.execute(STAFF_UPSERT_SQL, {
            "userids": [m.userid for m in active], "names": [m.name for m in active],
            "mobiles": [m.mobile for m in active], "depts": [m.main_department for m in active],
            "positions": [m.position for m in active],
        })
        rows = cursor.fetchall()
    created = sum(1 for row in rows if row[1])
    moved = {row[0]: {"store": [row[2], row[3]], "position": [row[4], row[5]]} for row in rows
             if not row[1] and (row[2], row[4]) != (row[3], row[5])}
    if moved:
        audit_record(action="addressbook.staff_scope_change", target_type="stores.staff", target_ids=sorted(moved),
                     detail={"changes": {str(pk): change for pk, change in sorted(moved.items())[:AUDIT_DETAIL_ROWS]}})
    return created, len(rows) - created


@transaction.atomic
def staff_depart_userids(*, userids: list[str]) -> int:
    """Members WeCom says left: departed, and their logins locked out, in one transaction."""
    with connection.cursor() as cursor:
        cursor.execute(STAFF_DEPART_SQL, {"userids": userids})
        ids = [row[0] for row in cursor.fetchall()]
    _departures_apply(ids)
    return len(ids)


def _departures_apply(staff_ids: list[int]) -> None:
    from stores.org.services import staff_departures_apply

    staff_departures_apply(staff_ids=staff_ids, via="addressbook")


def _members_fetch_all() -> list[Member]:
    result = wecom_call("user/list", method="get", params={"department_id": 1, "fetch_child": 1},
                        caller="addressbook.full", secret_kind="contact")
    return [Member.from_wecom(row) for row in result.get("userlist", [])]


def _departments_unlink_missing(department_ids: list[int]) -> int:
    from stores.models import Store

    gone = Store.objects.exclude(wecom_department_id__isnull=True).exclude(wecom_department_id__in=department_ids)
    return store_departments_unlink(stores=gone)


def store_departments_unlink(*, stores) -> int:
    """Stores whose WeCom department no longer exists lose the link (members then resolve to no store). Audited."""
    from stores.models import Store

    unlinked = dict(stores.values_list("pk", "wecom_department_id"))
    if not unlinked:
        return 0
    Store.objects.filter(pk__in=list(unlinked)).update(wecom_department_id=None)
    audit_record(action="addressbook.department_unlink", target_type="stores.store", target_ids=sorted(unlinked),
                 detail={"departments": {str(pk): dept for pk, dept in sorted(unlinked.items())[:AUDIT_DETAIL_ROWS]}})
    return len(unlinked)


def addressbook_sync_full(*, force: bool = False) -> SyncRun:
    """Pull every department and member from WeCom and apply them set-based. Resumable: it is one pass."""
    from stores.models import Staff

    run = SyncRun.objects.create(kind="addressbook.full", progress={"stage": "fetching"})
    try:
        departments = wecom_call("department/list", method="get", caller="addressbook.full",
                                 secret_kind="contact").get("department", [])
        members = _members_fetch_all()
        present = [m.userid for m in members if m.active]
        active_now = Staff.objects.active().count()
        if not force and active_now and len(present) < active_now * SAFETY_MIN_SHARE:
            message = _("企业微信只返回了 %(got)d 名在职成员（系统中有 %(have)d 名），"
                        "为防误判离职已中止；确认无误后可强制同步")
            raise AddressBookSyncError(message % {"got": len(present), "have": active_now})
        with transaction.atomic():
            created, updated = staff_upsert_members(members=members)
            with connection.cursor() as cursor:
                cursor.execute(STAFF_DEPART_MISSING_SQL, {"present": present})
                departed_ids = [row[0] for row in cursor.fetchall()]
            _departures_apply(departed_ids)
            departed = len(departed_ids)
            unlinked = _departments_unlink_missing([int(d["id"]) for d in departments])
        run.progress = {"members": len(members), "created": created, "updated": updated, "departed": departed,
                        "departments": len(departments), "stores_unlinked": unlinked}
        run.status = SyncRun.Status.DONE
    except (WeComError, AddressBookSyncError) as exc:
        run.status, run.error = SyncRun.Status.FAILED, str(exc)
    run.finished_at = timezone.now()
    run.save(update_fields=["progress", "status", "error", "finished_at"])
    return run


@transaction.atomic
def staff_userid_rename(*, old: str, new: str) -> bool:
    """WeCom let an admin rename a member's userid (once): keep the row and its history under the new id.

    The only path that changes a userid (stores/access/field_policy.py); audited. If a row already holds the new
    userid nothing is renamed (the old row then departs with the next full sync)."""
    from stores.models import Staff

    if Staff.objects.filter(userid=new).exists():
        return False
    ids = list(Staff.objects.filter(userid=old).values_list("pk", flat=True))
    if not ids:
        return False
    Staff.objects.filter(pk__in=ids).update(userid=new)
    audit_record(action="addressbook.userid_rename", target_type="stores.staff", target_ids=ids,
                 detail={"from": old, "to": new})
    return True


def member_event_apply(*, fields: dict) -> str:
    """A ``change_contact`` create_user/update_user event. A member whose userid WeCom renamed (``NewUserID``)
    keeps their row under the new id (staff_userid_rename), then is synced under it; anyone else is synced
    under ``UserID``. Returns member_sync_one's answer."""
    userid, new_userid = fields["UserID"], fields.get("NewUserID")
    if new_userid and new_userid != userid:
        staff_userid_rename(old=userid, new=new_userid)
        userid = new_userid
    return member_sync_one(userid=userid)


def member_sync_one(*, userid: str) -> str:
    """Bring one member in line with WeCom's current state. Returns 'upserted', 'departed' or 'unchanged'."""
    try:
        data = wecom_call("user/get", method="get", params={"userid": userid}, caller="addressbook.event",
                          secret_kind="contact")
    except WeComError as exc:
        if exc.errcode != MEMBER_NOT_FOUND:
            raise
        return "departed" if staff_depart_userids(userids=[userid]) else "unchanged"
    member = Member.from_wecom(data)
    if not member.active:
        return "departed" if staff_depart_userids(userids=[userid]) else "unchanged"
    created, updated = staff_upsert_members(members=[member])
    return "upserted" if created or updated else "unchanged"
