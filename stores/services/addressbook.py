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

from portal.wecom.gateway import WeComError, wecom_call
from portal.wecom.models import SyncRun

WECOM_MEMBER_EXITED = 5
MEMBER_NOT_FOUND = 60111
SAFETY_MIN_SHARE = 0.5  # a full list with under half of our active members is treated as an API fault


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
)
INSERT INTO stores_staff (userid, name, mobile, store_id, position, status, departed_at, customer_count,
                          inheritance_pending, wecom_synced_at)
SELECT userid, name, mobile, store_id, position, 'active', NULL, 0, false, now() FROM resolved
ON CONFLICT (userid) DO UPDATE SET
    name = EXCLUDED.name, mobile = EXCLUDED.mobile, store_id = EXCLUDED.store_id, position = EXCLUDED.position,
    status = 'active', departed_at = NULL, wecom_synced_at = now()
WHERE (stores_staff.name, stores_staff.mobile, stores_staff.store_id, stores_staff.position, stores_staff.status)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.mobile, EXCLUDED.store_id, EXCLUDED.position, 'active')
RETURNING (xmax = 0) AS inserted
"""

STAFF_DEPART_SQL = """
UPDATE stores_staff SET status = 'departed', departed_at = now(), inheritance_pending = true
WHERE status = 'active' AND userid = ANY(%(userids)s::text[])
"""

STAFF_DEPART_MISSING_SQL = """
UPDATE stores_staff SET status = 'departed', departed_at = now(), inheritance_pending = true
WHERE status = 'active' AND NOT (userid = ANY(%(present)s::text[]))
RETURNING id
"""


def staff_upsert_members(*, members: list[Member]) -> tuple[int, int]:
    """Apply active members in one statement. Returns (created, updated)."""
    active = [m for m in members if m.active]
    if not active:
        return 0, 0
    with connection.cursor() as cursor:
        cursor.execute(STAFF_UPSERT_SQL, {
            "userids": [m.userid for m in active], "names": [m.name for m in active],
            "mobiles": [m.mobile for m in active], "depts": [m.main_department for m in active],
            "positions": [m.position for m in active],
        })
        flags = [row[0] for row in cursor.fetchall()]
    return sum(flags), len(flags) - sum(flags)


def staff_depart_userids(*, userids: list[str]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(STAFF_DEPART_SQL, {"userids": userids})
        return cursor.rowcount


def _members_fetch_all() -> list[Member]:
    result = wecom_call("user/list", method="get", params={"department_id": 1, "fetch_child": 1},
                        caller="addressbook.full", secret_kind="contact")
    return [Member.from_wecom(row) for row in result.get("userlist", [])]


def _departments_unlink_missing(department_ids: list[int]) -> int:
    from stores.models import Store

    return Store.objects.exclude(wecom_department_id__isnull=True).exclude(
        wecom_department_id__in=department_ids).update(wecom_department_id=None)


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
                departed = cursor.rowcount
            unlinked = _departments_unlink_missing([int(d["id"]) for d in departments])
        run.progress = {"members": len(members), "created": created, "updated": updated, "departed": departed,
                        "departments": len(departments), "stores_unlinked": unlinked}
        run.status = SyncRun.Status.DONE
    except (WeComError, AddressBookSyncError) as exc:
        run.status, run.error = SyncRun.Status.FAILED, str(exc)
    run.finished_at = timezone.now()
    run.save(update_fields=["progress", "status", "error", "finished_at"])
    return run


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
