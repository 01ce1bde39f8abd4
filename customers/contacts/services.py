"""Customers and relationships synced from WeCom: full sync, incremental callbacks, nightly reconciliation.

Everything WeCom tells us about customers goes through one set-based apply (``contacts_apply``): one
``INSERT … ON CONFLICT … DO UPDATE`` for the customers of a page and one for its relationships, then
one UPDATE recomputing the affected customers' denormalised fields (``customers_refresh``).

Rules that make duplicate, late and out-of-order information converge (follow and event times are WeCom's):

* A relationship WeCom lists is written as WeCom shows it, except that an ended relationship is only
  re-activated when WeCom's ``createtime`` is *later* than its end: WeCom keeps listing a customer who
  deleted or blocked the member (one-way friends), and a page read just before a delete event was
  processed must not resurrect it. A re-add always has a new createtime.
* A delete event at time t ends the relationship only if it was added at or before t and is active or
  ended at or before t: a delete older than a later re-add never ends the new one, the newest cause wins.
* Callback handlers (customers/contacts/events.py) re-read the customer (``externalcontact/get``)
  instead of trusting the event, under a per-customer advisory lock taken before the read, so two workers
  never interleave on one customer.
* Events that WeCom can no longer confirm (the customer is gone) are recorded from the event itself: an
  add creates the row (ended, dated by the event) and a delete ends it, whichever arrives first.

Full sync and reconciliation end relationships WeCom no longer lists with status ``deleted_by_staff``:
WeCom keeps listing a customer who deleted or blocked the member (that case arrives as
``del_follow_user``), so disappearing from the member's own list means the member's side removed it
(a deletion, or a transfer, which its own callback records as ``transferred``). Such an ending is
dated when we last saw the relationship (``synced_at``), so a delete callback that arrives later still
corrects the cause and date. ``deleted_by_customer`` only ever comes from callbacks.

The full sync is resumable: each page is applied in one transaction together with its progress
(current batch of ≤ 100 userids, WeCom's cursor, the last finished staff id) in the ``SyncRun`` row
(kind ``customers.full``); a rerun within RESUME_WINDOW continues from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.lifecycle.services import customer_stage_set, stage_on_first_add
from customers.members.services import remark_mobile_hashes
from customers.members.tasks import members_unify_task
from customers.models import STAGE_ORDER, Customer, Member, Relationship, StageChange, Tag
from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import TextLock, session_lock_try, xact_lock
from portal.tasks import enqueue_after_commit
from portal.wecom.gateway import WeComError, wecom_call
from portal.wecom.models import SyncRun
from stores.models import Staff

if TYPE_CHECKING:
    from portal.models import User

FULL_KIND, RECONCILE_KIND = "customers.full", "customers.reconcile"
BATCH_USERIDS = 100  # batch/get_by_user takes at most 100 userids
PAGE_LIMIT = 100  # and at most 100 rows a page
RESUME_WINDOW = timedelta(hours=20)  # a rerun the same day resumes; the next night starts afresh
RECONCILE_SAMPLES = 20
NOT_EXTERNAL_CONTACT, INVALID_EXTERNAL_USERID = 84061, 40096
CORP_TAG = 1  # follow_user tags: 1 corp tag, 2 personal tag, 3 rule tag


# -- what WeCom says, normalised --------------------------------------------------------------------
def customer_from_wecom(data: dict) -> dict:
    return {"external_userid": data["external_userid"], "unionid": data.get("unionid") or "",
            "name": (data.get("name") or "")[:128], "kind": int(data.get("type") or 1),
            "gender": int(data.get("gender") or 0), "avatar": (data.get("avatar") or "")[:512],
            "corp_name": (data.get("corp_name") or "")[:128]}


def follow_from_wecom(external_userid: str, data: dict) -> dict:
    """A follow from batch/get_by_user's follow_info (tag_id) or externalcontact/get's follow_user (tags).
    Remark mobiles come with their hashes (what unification matches members on), computed here so the
    HMAC key stays in the application."""
    tag_ids = data.get("tag_id")
    if tag_ids is None:
        tag_ids = [t["tag_id"] for t in data.get("tags") or [] if int(t.get("type") or CORP_TAG) == CORP_TAG]
    mobiles = [str(m)[:32] for m in data.get("remark_mobiles") or [] if m]
    return {"userid": data["userid"], "external_userid": external_userid, "createtime": int(data["createtime"]),
            "remark": data.get("remark") or "", "description": data.get("description") or "",
            "remark_mobiles": mobiles, "remark_mobile_hashes": remark_mobile_hashes(mobiles),
            "add_way": int(data.get("add_way") or 0), "state": data.get("state") or "", "tag_ids": list(tag_ids)}


# -- the set-based apply ------------------------------------------------------------------------------
CUSTOMERS_UPSERT_SQL = """
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS x(external_userid text, unionid text, name text, kind int, gender int, avatar text, corp_name text)
)
INSERT INTO customers_customer AS c (external_userid, unionid, name, kind, gender, avatar, corp_name, stage, tag_ids,
                                     active, created_at, updated_at)
SELECT external_userid, unionid, name, kind, gender, avatar, corp_name, 'fan', '{}', false, now(), now()
FROM incoming
ON CONFLICT (external_userid) DO UPDATE SET
    unionid = COALESCE(NULLIF(EXCLUDED.unionid, ''), c.unionid), name = EXCLUDED.name, kind = EXCLUDED.kind,
    gender = EXCLUDED.gender, avatar = EXCLUDED.avatar, corp_name = EXCLUDED.corp_name, updated_at = now()
WHERE (c.unionid, c.name, c.kind, c.gender, c.avatar, c.corp_name)
      IS DISTINCT FROM (COALESCE(NULLIF(EXCLUDED.unionid, ''), c.unionid), EXCLUDED.name, EXCLUDED.kind,
                        EXCLUDED.gender, EXCLUDED.avatar, EXCLUDED.corp_name)
RETURNING c.id, (xmax = 0) AS inserted
"""

RELATIONSHIP_FINGERPRINT = ("ROW({t}.status, {t}.store_id, {t}.added_at, {t}.add_way, {t}.state, {t}.remark, "
                            "{t}.description, {t}.remark_mobiles, {t}.tag_ids)::text")

RELATIONSHIPS_UPSERT_SQL = f"""
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS x(userid text, external_userid text, createtime bigint, remark text, description text,
             remark_mobiles jsonb, remark_mobile_hashes jsonb, add_way int, state text, tag_ids jsonb)
), resolved AS (
    SELECT c.id AS customer_id, s.id AS staff_id, s.store_id, to_timestamp(i.createtime) AS added_at, i.add_way,
           left(i.state, 30) AS state, left(i.remark, 30) AS remark, left(i.description, 150) AS description,
           ARRAY(SELECT left(m, 32) FROM jsonb_array_elements_text(i.remark_mobiles) m)::varchar(32)[]
               AS remark_mobiles,
           ARRAY(SELECT jsonb_array_elements_text(i.remark_mobile_hashes))::varchar(64)[] AS remark_mobile_hashes,
           ARRAY(SELECT t.id FROM customers_tag t
                 WHERE t.wecom_tag_id IN (SELECT jsonb_array_elements_text(i.tag_ids)) AND NOT t.deleted
                 ORDER BY t.id) AS tag_ids
    FROM incoming i
    JOIN customers_customer c ON c.external_userid = i.external_userid
    JOIN stores_staff s ON s.userid = i.userid
), prior AS (
    SELECT r.id, {RELATIONSHIP_FINGERPRINT.format(t="r")} AS fingerprint, r.remark_mobile_hashes
    FROM customers_relationship r JOIN resolved x ON r.customer_id = x.customer_id AND r.staff_id = x.staff_id
), upserted AS (
    INSERT INTO customers_relationship AS r (customer_id, staff_id, store_id, added_at, add_way, state, campaign_ref,
                                             remark, description, remark_mobiles, remark_mobile_hashes, tag_ids,
                                             status, ended_at, synced_at)
    SELECT customer_id, staff_id, store_id, added_at, add_way, state, '', remark, description, remark_mobiles,
           remark_mobile_hashes, tag_ids, 'active', NULL, %(seen_at)s
    FROM resolved
    ON CONFLICT (staff_id, customer_id) DO UPDATE SET
        store_id = EXCLUDED.store_id, added_at = EXCLUDED.added_at, add_way = EXCLUDED.add_way,
        state = EXCLUDED.state, remark = EXCLUDED.remark, description = EXCLUDED.description,
        remark_mobiles = EXCLUDED.remark_mobiles, remark_mobile_hashes = EXCLUDED.remark_mobile_hashes,
        tag_ids = EXCLUDED.tag_ids, status = 'active', ended_at = NULL,
        synced_at = EXCLUDED.synced_at
    WHERE r.status = 'active' OR EXCLUDED.added_at > r.ended_at
    RETURNING r.id, r.customer_id, r.staff_id, (xmax = 0) AS inserted,
              {RELATIONSHIP_FINGERPRINT.format(t="r")} AS fingerprint, r.remark_mobile_hashes
)
SELECT u.customer_id, u.staff_id, u.inserted, u.fingerprint IS DISTINCT FROM p.fingerprint AS changed,
       ARRAY(SELECT unnest(u.remark_mobile_hashes) EXCEPT SELECT unnest(p.remark_mobile_hashes)) AS new_hashes
FROM upserted u LEFT JOIN prior p ON p.id = u.id
"""

REFRESH_SQL = """
WITH target AS (
    SELECT DISTINCT unnest(%(ids)s::bigint[]) AS id
), primary_rel AS (
    SELECT DISTINCT ON (r.customer_id) r.customer_id, r.staff_id, r.store_id
    FROM customers_relationship r JOIN target t ON t.id = r.customer_id
    ORDER BY r.customer_id, (r.status = 'active') DESC,
             CASE WHEN r.status = 'active' THEN r.added_at END ASC NULLS LAST, r.ended_at DESC NULLS LAST, r.id
), computed AS (
    SELECT t.id, p.staff_id, p.store_id, st.region_id, st.franchisee_id, COALESCE(a.active, false) AS active,
           a.first_added,
           ARRAY(SELECT DISTINCT x FROM customers_relationship r2 CROSS JOIN LATERAL unnest(r2.tag_ids) x
                 WHERE r2.customer_id = t.id AND r2.status = 'active' ORDER BY x) AS tag_ids
    FROM target t
    LEFT JOIN primary_rel p ON p.customer_id = t.id
    LEFT JOIN stores_store st ON st.id = p.store_id
    LEFT JOIN LATERAL (SELECT bool_or(r.status = 'active') AS active, min(r.added_at) AS first_added
                       FROM customers_relationship r WHERE r.customer_id = t.id) a ON true
)
UPDATE customers_customer c SET
    staff_id = x.staff_id, store_id = x.store_id, region_id = x.region_id, franchisee_id = x.franchisee_id,
    active = x.active, tag_ids = x.tag_ids, first_added_at = LEAST(c.first_added_at, x.first_added),
    updated_at = now()
FROM computed x
WHERE c.id = x.id
  AND (c.staff_id, c.store_id, c.region_id, c.franchisee_id, c.active, c.tag_ids, c.first_added_at)
      IS DISTINCT FROM (x.staff_id, x.store_id, x.region_id, x.franchisee_id, x.active, x.tag_ids,
                        LEAST(c.first_added_at, x.first_added))
RETURNING c.id
"""

STAFF_COUNT_SQL = """
UPDATE stores_staff s SET customer_count = x.n
FROM (SELECT s2.id, (SELECT count(*) FROM customers_relationship r
                     WHERE r.staff_id = s2.id AND r.status = 'active') AS n
      FROM stores_staff s2 WHERE s2.id = ANY(%(ids)s::bigint[])) x
WHERE s.id = x.id AND s.customer_count IS DISTINCT FROM x.n
"""

# Relationships of these staff that the sync did not see since ``seen_since``: ended (see the docstring).
END_UNSEEN_SQL = """
UPDATE customers_relationship SET status = 'deleted_by_staff',
    ended_at = date_trunc('second', COALESCE(synced_at, added_at))  -- WeCom's event times are whole seconds
WHERE staff_id = ANY(%(staff_ids)s::bigint[]) AND status = 'active'
  AND (synced_at IS NULL OR synced_at < %(seen_since)s) {extra}
RETURNING customer_id, staff_id, (SELECT external_userid FROM customers_customer c WHERE c.id = customer_id)
"""


@dataclass
class ApplyResult:
    customers_created: int = 0
    customers_updated: int = 0
    relationships_created: int = 0
    relationships_updated: int = 0
    relationships_ended: int = 0
    customer_ids: set[int] = field(default_factory=set)  # whose relationships changed: to refresh
    staff_ids: set[int] = field(default_factory=set)

    def add(self, other: ApplyResult) -> None:
        for name in ("customers_created", "customers_updated", "relationships_created", "relationships_updated",
                     "relationships_ended"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.customer_ids |= other.customer_ids
        self.staff_ids |= other.staff_ids

    def counts(self) -> dict[str, int]:
        return {"customers_created": self.customers_created, "customers_updated": self.customers_updated,
                "relationships_created": self.relationships_created,
                "relationships_updated": self.relationships_updated, "relationships_ended": self.relationships_ended}


def members_unify_for_hashes(*, hashes: set[str]) -> list[int]:
    """A guide just recorded a mobile some member has (the member came first): link them, on a worker once
    this commits (members imported later are linked by their import). Returns the members queued."""
    if not hashes:
        return []
    member_ids = sorted(Member.objects.filter(mobile_hash__in=sorted(hashes)).exclude(mobile_hash="")
                        .values_list("pk", flat=True))  # the exclude matches the mobile_hash index predicate
    if member_ids:
        enqueue_after_commit(members_unify_task, member_ids=member_ids)
    return member_ids


def _unique(rows: list[dict], *keys: str) -> list[dict]:
    """One row per key: an INSERT … ON CONFLICT DO UPDATE cannot touch the same row twice."""
    return list({tuple(row[k] for k in keys): row for row in rows}.values())


def contacts_apply(*, customers: list[dict], follows: list[dict], refresh: bool = True) -> ApplyResult:
    """Upsert what WeCom listed (customers, then their follows), set-based; refresh what changed (unless the
    caller refreshes once itself, later: ``result.customer_ids``)."""
    result = ApplyResult()
    customers, follows = _unique(customers, "external_userid"), _unique(follows, "userid", "external_userid")
    _tags_known_or_pull(follows)
    with connection.cursor() as cursor:
        if customers:
            cursor.execute(CUSTOMERS_UPSERT_SQL, {"rows": json.dumps(customers, ensure_ascii=False)})
            rows = cursor.fetchall()
            created = [pk for pk, inserted in rows if inserted]
            result.customers_created, result.customers_updated = len(created), len(rows) - len(created)
            stage_on_first_add(customer_ids=created)  # "first add → 粉丝", recorded once
        if follows:
            # synced_at is the application's clock, like the run start and read times it is compared with.
            cursor.execute(RELATIONSHIPS_UPSERT_SQL, {"rows": json.dumps(follows, ensure_ascii=False),
                                                      "seen_at": timezone.now()})
            new_hashes: set[str] = set()
            for customer_id, staff_id, inserted, changed, hashes in cursor.fetchall():
                new_hashes.update(hashes)
                if inserted:
                    result.relationships_created += 1
                elif changed:
                    result.relationships_updated += 1
                if inserted or changed:
                    result.customer_ids.add(customer_id)
                    result.staff_ids.add(staff_id)
            members_unify_for_hashes(hashes=new_hashes)
    if refresh:
        customers_refresh(customer_ids=result.customer_ids)
    return result


_PULLED_FOR: dict[str, float] = {}  # unknown tag id → when a pull last failed to find it (this process)
UNKNOWN_TAG_RETRY = 600.0


def _tags_known_or_pull(follows: list[dict]) -> None:
    """Tags created in WeCom since our last pull would be dropped from tag_ids: pull them first (one call).
    Ids a pull did not explain (e.g. strategy tags, which get_corp_tag_list leaves out) wait 10 minutes."""
    wanted = {t for f in follows for t in f["tag_ids"]}
    if not wanted:
        return
    known = set(Tag.objects.filter(wecom_tag_id__in=wanted).values_list("wecom_tag_id", flat=True))
    now = time.monotonic()
    unknown = {t for t in wanted - known if now - _PULLED_FOR.get(t, -UNKNOWN_TAG_RETRY) >= UNKNOWN_TAG_RETRY}
    if unknown:
        from customers.tags.services import tags_pull

        tags_pull()
        _PULLED_FOR.update(dict.fromkeys(unknown, now))


def customers_refresh(*, customer_ids: Iterable[int], viewer: User | None = None, by: User | None = None) -> int:
    """Recompute the customers' primary staff/store/region/franchisee (earliest active relationship, else the
    latest ended), ``active``, ``tag_ids`` (union of active relationships) and ``first_added_at``; then move
    customers tagged with an advancing tag forward (only those ``viewer`` may see, when given; recorded as
    ``by``'s). Set-based; returns customers changed."""
    ids = sorted(customer_ids)
    if not ids:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(REFRESH_SQL, {"ids": ids})
        changed = cursor.rowcount
    stages_advance_for_tags(customer_ids=ids, viewer=viewer, by=by)
    return changed


def stages_advance_for_tags(*, customer_ids: list[int], viewer: User | None = None, by: User | None = None) -> int:
    """Customers carrying a tag with ``advances_to`` move forward to that stage (cause "tagged"), never back.
    Highest target first, so a customer with two advancing tags gets one history row."""
    advancing: dict[str, list[int]] = {}
    for pk, stage in Tag.objects.filter(deleted=False).exclude(advances_to="").values_list("pk", "advances_to"):
        advancing.setdefault(stage, []).append(pk)
    moved = 0
    for stage in sorted(advancing, key=STAGE_ORDER.index, reverse=True):
        customers = Customer.objects.filter(pk__in=customer_ids, tag_ids__overlap=advancing[stage])
        moved += customer_stage_set(customers=customers, stage=stage, cause=StageChange.Cause.TAGGED,
                                   viewer=viewer, by=by)
    return moved


def staff_counts_refresh(*, staff_ids) -> None:
    if staff_ids:
        with connection.cursor() as cursor:
            cursor.execute(STAFF_COUNT_SQL, {"ids": sorted(staff_ids)})


def relationships_end_unseen(*, staff_ids, seen_since: datetime, external_userids: list[str] | None = None
                             ) -> list[tuple[int, int, str]]:
    """End the active relationships of these staff not seen since ``seen_since`` (optionally only these
    customers). Returns (customer_id, staff_id, external_userid) of each one ended."""
    if not staff_ids:
        return []
    extra = ""
    params: dict[str, Any] = {"staff_ids": sorted(staff_ids), "seen_since": seen_since}
    if external_userids is not None:
        extra = ("AND customer_id IN (SELECT id FROM customers_customer "
                 "WHERE external_userid = ANY(%(external_userids)s::text[]))")
        params["external_userids"] = list(external_userids)
    with connection.cursor() as cursor:
        cursor.execute(END_UNSEEN_SQL.format(extra=extra), params)
        return cursor.fetchall()


# -- reading WeCom ------------------------------------------------------------------------------------
@dataclass
class CustomerRead:
    external_userid: str
    customer: dict | None  # None: WeCom no longer shows this customer to us (no active follow)
    follows: list[dict]

    def follow_of(self, userid: str) -> dict | None:
        return next((f for f in self.follows if f["userid"] == userid), None)


def customer_read(*, external_userid: str, caller: str = "customers.sync") -> CustomerRead:
    """The customer and every active follow, as WeCom shows them now (follow_user is paged past 500)."""
    customer, follows, cursor = None, [], ""
    while True:
        params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
        try:
            answer = wecom_call("externalcontact/get", method="get", params=params, caller=caller)
        except WeComError as exc:
            if exc.errcode in (NOT_EXTERNAL_CONTACT, INVALID_EXTERNAL_USERID):
                return CustomerRead(external_userid=external_userid, customer=None, follows=[])
            raise
        customer = customer_from_wecom(answer["external_contact"])
        follows += [follow_from_wecom(external_userid, f) for f in answer.get("follow_user") or []]
        cursor = answer.get("next_cursor") or ""
        if not cursor:
            return CustomerRead(external_userid=external_userid, customer=customer, follows=follows)


def read_apply(read: CustomerRead, *, refresh: bool = True) -> ApplyResult:
    return contacts_apply(customers=[read.customer] if read.customer else [], follows=read.follows, refresh=refresh)


def follow_user_ids() -> set[str]:
    """Members with customer contact enabled: only they have customers (and batch/get_by_user accepts them)."""
    answer = wecom_call("externalcontact/get_follow_user_list", method="get", caller="customers.sync")
    return set(answer.get("follow_user") or [])


def customer_sync_one(*, customer: Customer) -> ApplyResult:
    """'Sync this customer now': WeCom's current view of the customer and all its follows; relationships
    WeCom no longer shows are ended as in the full sync. Never touches another customer."""
    with transaction.atomic():
        xact_lock(TextLock.CUSTOMER, customer.external_userid)
        read_started = timezone.now()
        read = customer_read(external_userid=customer.external_userid, caller="customers.sync_one")
        result = read_apply(read)
        listed = {f["userid"] for f in read.follows}
        staff_ids = list(Relationship.objects.filter(customer=customer, status=Relationship.Status.ACTIVE)
                         .exclude(staff__userid__in=listed).values_list("staff_id", flat=True))
        ended = relationships_end_unseen(staff_ids=staff_ids, seen_since=read_started,
                                         external_userids=[customer.external_userid])
        result.relationships_ended += len(ended)
        result.customer_ids |= {row[0] for row in ended}
        result.staff_ids |= {row[1] for row in ended} | set(staff_ids)
        customers_refresh(customer_ids=result.customer_ids | {customer.pk})
        staff_counts_refresh(staff_ids=result.staff_ids)
    return result


# -- full sync ------------------------------------------------------------------------------------------
def _full_run_resume_or_start() -> SyncRun:
    last = SyncRun.objects.filter(kind=FULL_KIND).order_by("-started_at", "-pk").first()
    if (last is not None and last.status in (SyncRun.Status.RUNNING, SyncRun.Status.FAILED)
            and last.started_at >= timezone.now() - RESUME_WINDOW):  # resumable
        last.status, last.error, last.finished_at = SyncRun.Status.RUNNING, "", None
        last.progress = {**last.progress, "resumed": int(last.progress.get("resumed", 0)) + 1}
        last.save(update_fields=["status", "error", "finished_at", "progress"])
        return last
    return SyncRun.objects.create(kind=FULL_KIND, progress={
        "stage": "starting", "after_staff_id": 0, "_batch_ids": [], "_batch_userids": [], "_cursor": "",
        "staff_total": 0, "staff_done": 0, "pages": 0, **ApplyResult().counts()})


def _next_batch(progress: dict, allowed: set[str]) -> tuple[list[int], list[str]]:
    rows = (Staff.objects.active().filter(pk__gt=progress["after_staff_id"], userid__in=allowed)
            .order_by("pk").values_list("pk", "userid")[:BATCH_USERIDS])
    return [pk for pk, _ in rows], [userid for _, userid in rows]


def _page_fetch(userids: list[str], cursor: str) -> dict:
    data = {"userid_list": userids, "limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
    return wecom_call("externalcontact/batch/get_by_user", data=data, caller=FULL_KIND)


def _page_apply(run: SyncRun, answer: dict) -> ApplyResult:
    """One page, its batch's ending when it is the last page, and the progress: one transaction."""
    progress = run.progress
    customers, follows = [], []
    for row in answer.get("external_contact_list") or []:
        customer = customer_from_wecom(row["external_contact"])
        customers.append(customer)
        follows.append(follow_from_wecom(customer["external_userid"], row["follow_info"]))
    with transaction.atomic():
        result = contacts_apply(customers=customers, follows=follows)
        next_cursor = answer.get("next_cursor") or ""
        progress["pages"] += 1
        if next_cursor:
            progress["_cursor"] = next_cursor
        else:  # the batch is complete: what WeCom did not list for these staff has ended
            ended = relationships_end_unseen(staff_ids=progress["_batch_ids"], seen_since=run.started_at)
            result.relationships_ended += len(ended)
            refreshed = {row[0] for row in ended}
            customers_refresh(customer_ids=refreshed)
            staff_counts_refresh(staff_ids=progress["_batch_ids"])
            progress["staff_done"] += len(progress["_batch_ids"])
            progress["after_staff_id"] = max(progress["_batch_ids"])
            progress.update(_batch_ids=[], _batch_userids=[], _cursor="")
        for name, value in result.counts().items():
            progress[name] = progress.get(name, 0) + value
        run.save(update_fields=["progress"])
    return result


def customers_sync_full(*, time_budget: float | None = None) -> SyncRun | None:
    """Sync every active member's customers from WeCom, or continue the unfinished run.

    Returns the run: done, failed (WeCom error; a rerun continues), or still running when
    ``time_budget`` seconds ran out (the task re-enqueues itself). None if another worker runs it now.
    """
    with session_lock_try(TextLock.CUSTOMERS_FULL_SYNC) as locked:  # one full sync at a time across workers
        if not locked:
            return None
        run = _full_run_resume_or_start()
        deadline = time.monotonic() + time_budget if time_budget else None
        try:
            _full_sync_loop(run, deadline)
        except WeComError as exc:
            run.refresh_from_db(fields=["progress"])  # what the last committed page left, for the rerun
            run.status, run.error, run.finished_at = SyncRun.Status.FAILED, str(exc), timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
        return run


def _full_sync_loop(run: SyncRun, deadline: float | None) -> None:
    from customers.tags.services import tags_pull

    progress = run.progress
    if progress.get("stage") == "starting":
        tags_pull()  # tag ids in the pages map onto our tags
        progress["stage"] = "customers"
        run.save(update_fields=["progress"])
    allowed = follow_user_ids()
    if not progress["staff_total"]:
        progress["staff_total"] = Staff.objects.active().filter(userid__in=allowed).count()
        run.save(update_fields=["progress"])
    while True:
        if not progress["_batch_ids"]:
            progress["_batch_ids"], progress["_batch_userids"] = _next_batch(progress, allowed)
            progress["_cursor"] = ""
            if not progress["_batch_ids"]:
                run.status, run.finished_at = SyncRun.Status.DONE, timezone.now()
                progress["stage"] = "done"
                run.save(update_fields=["status", "finished_at", "progress"])
                return
        _page_apply(run, _page_fetch(progress["_batch_userids"], progress["_cursor"]))
        if deadline is not None and time.monotonic() >= deadline:
            return  # at least one page per slice; the task continues in a new one


# -- nightly reconciliation -----------------------------------------------------------------------------
@dataclass
class Drift:
    staff: int = 0
    listed: int = 0
    active_here: int = 0
    added: int = 0
    ended: int = 0
    errors: int = 0
    samples: dict = field(default_factory=lambda: {"added": [], "ended": [], "errors": []})

    def sample(self, kind: str, value) -> None:
        if len(self.samples[kind]) < RECONCILE_SAMPLES:
            self.samples[kind].append(value)


def _listed_by_wecom(userid: str) -> set[str]:
    try:
        answer = wecom_call("externalcontact/list", method="get", params={"userid": userid},
                            caller=RECONCILE_KIND)
    except WeComError as exc:
        if exc.errcode == NOT_EXTERNAL_CONTACT:  # WeCom's answer for a member without customers
            return set()
        raise
    return set(answer.get("external_userid") or [])


def _reconcile_staff(staff: Staff, drift: Drift) -> None:
    read_at = timezone.now()
    listed = _listed_by_wecom(staff.userid)
    ours = set(Relationship.objects.filter(staff=staff, status=Relationship.Status.ACTIVE)
               .values_list("customer__external_userid", flat=True))
    drift.staff, drift.listed, drift.active_here = drift.staff + 1, drift.listed + len(listed), \
        drift.active_here + len(ours)
    for external_userid in sorted(listed - ours):
        with transaction.atomic():
            xact_lock(TextLock.CUSTOMER, external_userid)
            read_apply(customer_read(external_userid=external_userid, caller=RECONCILE_KIND))
            if Relationship.objects.filter(staff=staff, customer__external_userid=external_userid,
                                           status=Relationship.Status.ACTIVE).exists():
                drift.added += 1
                drift.sample("added", [staff.userid, external_userid])
    missing = sorted(ours - listed)
    if missing:
        with transaction.atomic():
            ended = relationships_end_unseen(staff_ids=[staff.pk], seen_since=read_at, external_userids=missing)
            customers_refresh(customer_ids={row[0] for row in ended})
        drift.ended += len(ended)
        for _customer_id, _staff_id, external_userid in ended:
            drift.sample("ended", [staff.userid, external_userid])
    staff_counts_refresh(staff_ids=[staff.pk])


def customers_reconcile() -> SyncRun:
    """Per member, compare the customers WeCom lists with our active relationships and repair the drift
    with the same upserts as the sync. What was repaired is recorded in a SyncRun (customers.reconcile)."""
    run = SyncRun.objects.create(kind=RECONCILE_KIND, progress={"stage": "running"})
    drift = Drift()
    try:
        allowed = follow_user_ids()
        for staff in list(Staff.objects.active().filter(userid__in=allowed).order_by("pk")):
            try:
                _reconcile_staff(staff, drift)
            except WeComError as exc:
                if exc.errcode in (45009, 45033, -1, None):
                    raise
                drift.errors += 1
                drift.sample("errors", [staff.userid, exc.errcode, exc.errmsg[:120]])
        run.status = SyncRun.Status.DONE
    except WeComError as exc:
        run.status, run.error = SyncRun.Status.FAILED, str(exc)
    run.progress = {"staff": drift.staff, "listed": drift.listed, "active_here": drift.active_here,
                    "added": drift.added, "ended": drift.ended, "errors": drift.errors, "samples": drift.samples}
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "error", "progress", "finished_at"])
    return run


# -- remark and description: written to WeCom first --------------------------------------------------
REMARK_MAX = 20  # WeCom's remark page says 20 (WECOM.md says 30; the documentation wins, as in the sandbox)
DESCRIPTION_MAX = 150


class RemarkError(DomainError):
    pass


def relationship_remark(*, relationship: Relationship, remark: str, description: str,
                        by: User | None = None) -> Relationship:
    """Set the member's remark and description of a customer in WeCom, then here. Checked before the call."""
    remark, description = (remark or "").strip(), (description or "").strip()
    for value, limit, label in ((remark, REMARK_MAX, _("备注")), (description, DESCRIPTION_MAX, _("描述"))):
        if len(value) > limit:
            raise RemarkError(_("%(label)s最多 %(max)d 个字，现在有 %(n)d 个字") % {
                "label": label, "max": limit, "n": len(value)})
    if (remark, description) == (relationship.remark, relationship.description):
        return relationship
    if relationship.status != Relationship.Status.ACTIVE:
        raise RemarkError(_("客户已不是该员工的好友，企业微信不允许再修改备注"))
    try:
        wecom_call("externalcontact/remark", caller="customers.remark", data={
            "userid": relationship.staff.userid, "external_userid": relationship.customer.external_userid,
            "remark": remark, "description": description})
    except WeComError as exc:
        if exc.errcode in (45009, 45033, -1, None):
            raise
        raise RemarkError(_("企业微信拒绝了修改（错误码 %(code)s：%(msg)s），未做任何更改") % {
            "code": exc.errcode, "msg": exc.errmsg}) from exc
    Relationship.objects.filter(pk=relationship.pk).update(remark=remark, description=description)
    relationship.remark, relationship.description = remark, description
    audit_record(action="customers.relationship.remark", target_type="customers.relationship",
                 target_ids=[relationship.pk], by=by, detail={"remark": remark, "description": description})
    return relationship
