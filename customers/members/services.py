"""Members from the brand's CRM/POS: mobiles kept only hashed, set-based upserts, unification, RFM.

A mobile is normalised (``+86 138-0000-0000`` → ``13800000000``), then stored twice and never in
plain: ``mobile_hash`` = HMAC-SHA256(settings.MEMBER_MOBILE_HASH_KEY, mobile) for exact matching,
and ``mobile_masked`` (``138****0000``) for display.

Upserts (file imports, the API) follow one rule: **a blank never erases**. A value that is
absent or empty leaves the stored one as it is (a new member gets the default), so a partial
feed from a POS cannot wipe what the CRM sent. Members are matched by ``member_no``; rows that
change nothing are not written (``IS DISTINCT FROM``), so re-sending the same data is a no-op.

Unification links ``Customer.member`` (one member per customer and vice versa):
  1. by ``unionid`` (the strongest evidence: WeChat's own identity);
  2. else by mobile: a relationship's ``remark_mobiles`` (the mobile a staff member recorded for
     the customer), kept hashed beside them in ``remark_mobile_hashes`` (written by the sync with the
     raw numbers, GIN-indexed), equal to a member's ``mobile_hash``. A run for some members looks
     their customers up through that index; only the full nightly run reads every relationship.
Ties are broken by the lowest id on both sides, so a run gives the same links whatever the
order of the data; every tie is reported (duplicated members in the CRM are HQ's to merge).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from customers.members.tasks import members_unify_task
from customers.models import Member
from portal.parsers import ValueInvalid, mobile_normalize
from portal.tasks import enqueue_after_commit
from stores.access.scoping import user_scope
from stores.models import Store

logger = logging.getLogger(__name__)

MEMBER_NO_MAX = 32
UNIONID_MAX = 64
NAME_MAX = 64
LEVEL_MAX = 16
STORE_CODE_MAX = 32
SPEND_MAX = Decimal("999999999999.99")  # max_digits=14, decimal_places=2
CONFLICT_SAMPLE = 20


class MemberDataError(ValueInvalid):
    """A member's row or value that cannot be stored (no member number, a store outside the sender's scope…);
    the message says why. A ValueInvalid, as the parsers' refusals are: code that reads member data catches
    ``ValueInvalid`` and so gets both."""


# -- mobiles: normalised by portal.parsers.mobile_normalize, kept only hashed -----------------------

def _hash_key() -> bytes:
    return settings.MEMBER_MOBILE_HASH_KEY.encode()


def mobile_hash(mobile: str) -> str:
    """HMAC-SHA256 of a normalised mobile, hex (64 chars)."""
    return hmac.digest(_hash_key(), mobile.encode(), "sha256").hex()


def mobile_masked(mobile: str) -> str:
    """138****0000: enough for staff to recognise a member, useless to anyone else."""
    return f"{mobile[:3]}****{mobile[7:]}"


def _hmac_pads() -> dict[str, bytes]:
    """HMAC's inner/outer padded keys, so SQL can compute HMAC-SHA256 with the built-in sha256()
    (no pgcrypto, works on any managed PostgreSQL) and the key never has to live in the database."""
    key = _hash_key()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return {"ipad": bytes(b ^ 0x36 for b in key), "opad": bytes(b ^ 0x5C for b in key)}


# -- upsert -----------------------------------------------------------------------------------------

@dataclass
class MemberRecord:
    """One member as a source sent it. None = not sent: the stored value is kept (blank never erases)."""

    member_no: str
    mobile_hash: str | None = None
    mobile_masked: str | None = None
    unionid: str | None = None
    name: str | None = None
    level: str | None = None
    points: int | None = None
    lifetime_spend: Decimal | str | None = None
    order_count: int | None = None
    last_purchase_on: date | None = None
    store_code: str | None = None


STAGE_COLUMNS = ("line", "member_no", "mobile_hash", "mobile_masked", "unionid", "name", "level", "points",
                 "lifetime_spend", "order_count", "last_purchase_on", "store_code")

STAGE_TABLE_SQL = """
CREATE TEMP TABLE {name} (
    line bigint NOT NULL, member_no text NOT NULL, mobile_hash text, mobile_masked text, unionid text,
    name text, level text, points integer, lifetime_spend numeric(14, 2), order_count integer,
    last_purchase_on date, store_code text
)
"""

_VALUE_COLUMNS = ("mobile_hash", "mobile_masked", "unionid", "name", "level", "points", "lifetime_spend",
                  "order_count", "last_purchase_on", "home_store_id")

# {source}: a relation with STAGE_COLUMNS. The last line of a member_no wins; a blank keeps the
# stored value (merged with the current row in the SELECT, so EXCLUDED carries the final values);
# rows that would not change are not written. Returns (id, member_no, inserted) for written rows.
MEMBER_UPSERT_SQL = """
WITH src AS (
    SELECT {distinct} s.*, st.id AS store_id
    FROM {source} s LEFT JOIN stores_store st ON st.code = s.store_code
    {order}
), merged AS (
    SELECT src.member_no,
           COALESCE(src.mobile_hash, m.mobile_hash, '') AS mobile_hash,
           COALESCE(src.mobile_masked, m.mobile_masked, '') AS mobile_masked,
           COALESCE(src.unionid, m.unionid, '') AS unionid,
           COALESCE(src.name, m.name, '') AS name,
           COALESCE(src.level, m.level, '') AS level,
           COALESCE(src.points, m.points, 0) AS points,
           COALESCE(src.lifetime_spend, m.lifetime_spend, 0) AS lifetime_spend,
           COALESCE(src.order_count, m.order_count, 0) AS order_count,
           COALESCE(src.last_purchase_on, m.last_purchase_on) AS last_purchase_on,
           CASE WHEN src.store_code IS NULL THEN m.home_store_id ELSE src.store_id END AS home_store_id
    -- One index probe per row (LIMIT keeps the planner from turning it into a merge join, which
    -- would walk the member_no index from its start for every chunk of a big file).
    FROM src LEFT JOIN LATERAL (SELECT * FROM customers_member m0 WHERE m0.member_no = src.member_no LIMIT 1) m
         ON true
)
INSERT INTO customers_member AS t (member_no, {values}, updated_at)
SELECT member_no, {values}, now() FROM merged
ON CONFLICT (member_no) DO UPDATE SET {assign}, updated_at = EXCLUDED.updated_at
WHERE ({current}) IS DISTINCT FROM ({excluded})
RETURNING t.id, t.member_no, (t.xmax = 0) AS inserted
"""


def member_upsert_sql(*, source: str, dedupe: bool = True) -> str:
    """``source``: a relation with STAGE_COLUMNS; ``dedupe=False`` if it has one row per member_no."""
    return MEMBER_UPSERT_SQL.format(
        source=source, distinct="DISTINCT ON (s.member_no)" if dedupe else "",
        order="ORDER BY s.member_no, s.line DESC" if dedupe else "", values=", ".join(_VALUE_COLUMNS),
        assign=", ".join(f"{c} = EXCLUDED.{c}" for c in _VALUE_COLUMNS),
        current=", ".join(f"t.{c}" for c in _VALUE_COLUMNS),
        excluded=", ".join(f"EXCLUDED.{c}" for c in _VALUE_COLUMNS))


_UNNEST_SOURCE = """(SELECT * FROM unnest(%(line)s::bigint[], %(member_no)s::text[], %(mobile_hash)s::text[],
    %(mobile_masked)s::text[], %(unionid)s::text[], %(name)s::text[], %(level)s::text[], %(points)s::integer[],
    %(lifetime_spend)s::numeric[], %(order_count)s::integer[], %(last_purchase_on)s::date[],
    %(store_code)s::text[]) AS u({columns}))"""


@dataclass(frozen=True)
class UpsertOutcome:
    member_id: int | None
    status: str  # created / updated / unchanged


def members_upsert(*, records: list[MemberRecord]) -> dict[str, UpsertOutcome]:
    """Upsert already-validated records in one statement; returns each member_no's outcome.

    Store codes must exist (callers check them, in the caller's scope). The members created or changed
    are unified with WeCom customers by a task once the surrounding transaction commits (unchanged ones
    are not: nothing about them moved).
    """
    if not records:
        return {}
    params: dict[str, list[Any]] = {name: [] for name in STAGE_COLUMNS}
    for line, record in enumerate(records):
        params["line"].append(line)
        for name in STAGE_COLUMNS[1:]:
            params[name].append(getattr(record, name))
    source = _UNNEST_SOURCE.format(columns=", ".join(STAGE_COLUMNS))
    with connection.cursor() as cursor:
        cursor.execute(member_upsert_sql(source=source), params)
        written = {no: UpsertOutcome(pk, "created" if inserted else "updated")
                   for pk, no, inserted in cursor.fetchall()}
    unchanged = [r.member_no for r in records if r.member_no not in written]
    ids = dict(Member.objects.filter(member_no__in=unchanged).values_list("member_no", "pk")) if unchanged else {}
    outcomes = {r.member_no: written.get(r.member_no) or UpsertOutcome(ids.get(r.member_no), "unchanged")
                for r in records}
    written_ids = [o.member_id for o in outcomes.values() if o.member_id and o.status != "unchanged"]
    if written_ids:
        enqueue_after_commit(members_unify_task, member_ids=written_ids)
    return outcomes


def member_upsert(*, record: MemberRecord) -> UpsertOutcome:
    """One member (a POS or mini-program update). Idempotent by member_no."""
    return members_upsert(records=[record])[record.member_no]


# -- remark mobiles: hashed beside the raw ones on each relationship ----------------------------------

def remark_mobile_hashes(mobiles) -> list[str]:
    """What ``Relationship.remark_mobile_hashes`` holds for these remark mobiles: the HMAC of each one
    that is a mainland mobile once normalised, sorted, without duplicates. A landline or a typo stays in
    ``remark_mobiles`` only (shown, never matched)."""
    hashes = set()
    for raw in mobiles or ():
        try:
            hashes.add(mobile_hash(mobile_normalize(str(raw))))
        except ValueInvalid:
            continue
    return sorted(hashes)


# remark_mobile_hashes() in SQL, for rows written before the column existed (or after a key change):
# rm.raw normalised like mobile_normalize() does, then HMAC-SHA256'd with the padded keys.
_REMARK_MOBILE_SQL = (r"regexp_replace(regexp_replace(translate(rm.raw, '０１２３４５６７８９＋', '0123456789+'), "
                      r"'[[:space:]()-]', '', 'g'), '^(\+86|0086|86(?=[0-9]{11}$))', '')")

REMARK_HASHES_BACKFILL_SQL = f"""
UPDATE customers_relationship r SET remark_mobile_hashes = x.hashes
FROM (SELECT r2.id, ARRAY(
          SELECT DISTINCT encode(sha256(%(opad)s::bytea || sha256(%(ipad)s::bytea || convert_to(n.mobile, 'UTF8'))),
                                 'hex') COLLATE "C" AS mobile_hash
          FROM (SELECT {_REMARK_MOBILE_SQL} AS mobile FROM unnest(r2.remark_mobiles) AS rm(raw)) n
          WHERE n.mobile ~ '^1[0-9]{{10}}$' ORDER BY 1)::varchar(64)[] AS hashes
      FROM customers_relationship r2
      WHERE r2.id >= %(low)s AND r2.id < %(high)s
        AND (cardinality(r2.remark_mobiles) > 0 OR cardinality(r2.remark_mobile_hashes) > 0)) x
WHERE r.id = x.id AND r.remark_mobile_hashes IS DISTINCT FROM x.hashes
"""
BACKFILL_BATCH = 50_000  # ids per transaction: short locks, bounded WAL per commit at 12 M relationships


def relationship_mobile_hashes_backfill(*, batch: int = BACKFILL_BATCH) -> int:
    """Recompute every relationship's remark_mobile_hashes from its remark_mobiles, set-based, one id range
    per transaction (the migration that added the column, or after MEMBER_MOBILE_HASH_KEY changes).
    Rows already right are not written. Returns the rows changed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM customers_relationship")
        low, high = cursor.fetchone()
    changed = 0
    if low is None:
        return 0
    pads = _hmac_pads()
    for start in range(low, high + 1, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(REMARK_HASHES_BACKFILL_SQL, {**pads, "low": start, "high": start + batch})
            changed += cursor.rowcount
    return changed


# -- unification ------------------------------------------------------------------------------------

# The partial GIN index relationship_mobile_hashes holds only rows matching this: every query that
# should use it repeats it (the planner uses a partial index only when the query implies its predicate).
_HAS_HASHES = "NOT ({t}.remark_mobile_hashes = '{{}}'::varchar(64)[])"

# Every (customer, remark mobile hash): the full run reads the relationships that have one.
REMARKS_ALL_SQL = f"""
CREATE TEMP TABLE member_unify_remarks ON COMMIT DROP AS
SELECT DISTINCT r.customer_id, h.mobile_hash
FROM customers_relationship r CROSS JOIN LATERAL unnest(r.remark_mobile_hashes) AS h(mobile_hash)
WHERE {_HAS_HASHES.format(t="r")}
"""

# A run for some members: their hashes, plus every other remark mobile of the customers that have one
# of them (so a customer matching two members is seen matching both, as in a full run).
SCOPE_HASHES_SQL = """
CREATE TEMP TABLE member_unify_hashes ON COMMIT DROP AS
SELECT DISTINCT mobile_hash FROM customers_member
WHERE id IN (SELECT id FROM member_unify_scope) AND mobile_hash <> ''
"""
# The relationships carrying one of the hashes in member_unify_hashes, as (relationship, hash) rows. Both
# conditions say the same; the planner takes the cheaper: for a few hashes one GIN probe each (@>), for
# an import's many a hash join (=) over the relationships that have remark mobiles.
_CARRYING = f"""
    member_unify_hashes s
    JOIN customers_relationship r
      ON r.remark_mobile_hashes @> ARRAY[s.mobile_hash]::varchar(64)[] AND {_HAS_HASHES.format(t="r")}
    CROSS JOIN LATERAL unnest(r.remark_mobile_hashes) AS h(mobile_hash)
    WHERE h.mobile_hash = s.mobile_hash"""
SCOPE_HASHES_EXPAND_SQL = f"""
INSERT INTO member_unify_hashes
SELECT DISTINCT h2.mobile_hash
FROM (SELECT DISTINCT r.customer_id FROM {_CARRYING}) hit
JOIN customers_relationship r2 ON r2.customer_id = hit.customer_id AND {_HAS_HASHES.format(t="r2")}
CROSS JOIN LATERAL unnest(r2.remark_mobile_hashes) AS h2(mobile_hash)
WHERE NOT EXISTS (SELECT 1 FROM member_unify_hashes x WHERE x.mobile_hash = h2.mobile_hash)
"""
REMARKS_SCOPED_SQL = f"""
CREATE TEMP TABLE member_unify_remarks ON COMMIT DROP AS
SELECT DISTINCT r.customer_id, h.mobile_hash FROM {_CARRYING}
"""

UNIONID_PAIRS_SQL = """
INSERT INTO member_unify_pairs (customer_id, member_id, rule)
SELECT c.id, m.id, 1 FROM customers_customer c JOIN customers_member m ON m.unionid = c.unionid
WHERE c.unionid <> '' AND m.unionid <> '' {scope}
"""
UNIONID_SCOPE = ("AND m.unionid IN (SELECT unionid FROM customers_member "
                 "WHERE id IN (SELECT id FROM member_unify_scope))")

# In a scoped run member_unify_remarks holds only the scope's (expanded) hashes: no filter needed here.
MOBILE_PAIRS_SQL = """
INSERT INTO member_unify_pairs (customer_id, member_id, rule)
SELECT DISTINCT rh.customer_id, m.id, 2
FROM member_unify_remarks rh JOIN customers_member m ON m.mobile_hash = rh.mobile_hash
WHERE m.mobile_hash <> ''
"""

# A customer linked to a member with the same unionid keeps it: the mobile rule may not move it.
STANDING_SQL = """
CREATE TEMP TABLE member_unify_standing ON COMMIT DROP AS
SELECT c.id AS customer_id, c.member_id FROM customers_customer c JOIN customers_member m ON m.id = c.member_id
WHERE c.unionid <> '' AND c.unionid = m.unionid
  AND c.id IN (SELECT customer_id FROM member_unify_pairs WHERE rule = 2)
UNION
SELECT c.id, c.member_id FROM customers_customer c JOIN customers_member m ON m.id = c.member_id
WHERE c.unionid <> '' AND c.unionid = m.unionid
  AND c.member_id IN (SELECT member_id FROM member_unify_pairs WHERE rule = 2)
"""

# Per rule: each customer takes its lowest-id member, then each member its lowest-id customer; a
# rule never overrides what a stronger rule decided this run ({extra}: nor a standing unionid link).
LINKS_FROM_RULE_SQL = """
INSERT INTO member_unify_links (customer_id, member_id, rule)
SELECT customer_id, member_id, %(rule)s FROM (
    SELECT DISTINCT ON (member_id) customer_id, member_id FROM (
        SELECT DISTINCT ON (customer_id) customer_id, member_id FROM member_unify_pairs p
        WHERE rule = %(rule)s
          AND customer_id NOT IN (SELECT customer_id FROM member_unify_links)
          AND member_id NOT IN (SELECT member_id FROM member_unify_links) {extra}
        ORDER BY customer_id, member_id) best_per_customer
    ORDER BY member_id, customer_id) best
"""
NOT_STANDING = """
          AND customer_id NOT IN (SELECT customer_id FROM member_unify_standing)
          AND member_id NOT IN (SELECT member_id FROM member_unify_standing)"""

RELEASE_SQL = """
UPDATE customers_customer c SET member_id = NULL, updated_at = now()
FROM member_unify_links l WHERE c.member_id = l.member_id AND c.id <> l.customer_id
"""
LINK_SQL = """
UPDATE customers_customer c SET member_id = l.member_id, updated_at = now()
FROM member_unify_links l WHERE c.id = l.customer_id AND c.member_id IS DISTINCT FROM l.member_id
"""

CONFLICTS_SQL = """
SELECT 'customer' AS side, p.customer_id AS id, array_agg(DISTINCT m.member_no ORDER BY m.member_no) AS members
FROM member_unify_pairs p JOIN customers_member m ON m.id = p.member_id
GROUP BY p.customer_id HAVING count(DISTINCT p.member_id) > 1
UNION ALL
SELECT 'member', m.id, array_agg(DISTINCT p.customer_id::text ORDER BY p.customer_id::text)
FROM member_unify_pairs p JOIN customers_member m ON m.id = p.member_id
GROUP BY m.id HAVING count(DISTINCT p.customer_id) > 1
"""


UNIFY_TEMP_TABLES = ("member_unify_scope", "member_unify_pairs", "member_unify_links", "member_unify_remarks",
                     "member_unify_standing", "member_unify_hashes")


@dataclass
class UnifyResult:
    linked: int = 0  # customers whose member link was set or changed
    released: int = 0  # customers that lost a member to a better-matching customer
    conflicts: int = 0  # customers matching several members + members matching several customers
    conflict_sample: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        return _("关联 %(linked)d 个客户，解除 %(released)d 个，冲突 %(conflicts)d 处") % {
            "linked": self.linked, "released": self.released, "conflicts": self.conflicts}


def members_unify(*, member_ids: list[int] | None = None) -> UnifyResult:
    """Link customers to members by unionid, then by bound mobile. Set-based and idempotent.

    ``member_ids`` limits the work to what those members can affect (after an import or an API
    call); None is the full nightly run. Links are only ever set or moved, never dropped because
    a match disappeared: a customer's member changes only when a better match claims it.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        for table in UNIFY_TEMP_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        if member_ids is not None:
            cursor.execute("CREATE TEMP TABLE member_unify_scope (id bigint PRIMARY KEY) ON COMMIT DROP")
            cursor.execute("INSERT INTO member_unify_scope SELECT DISTINCT unnest(%s::bigint[])", [list(member_ids)])
            cursor.execute("ANALYZE member_unify_scope")
        return _unify_in_temp_tables(cursor, scoped=member_ids is not None)


def members_unify_scope_table(*, table: str) -> UnifyResult:
    """members_unify for the members whose ids are in the temp table ``table`` (column id): imports."""
    with transaction.atomic(), connection.cursor() as cursor:
        for name in UNIFY_TEMP_TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
        cursor.execute(f"CREATE TEMP TABLE member_unify_scope ON COMMIT DROP AS SELECT DISTINCT id FROM {table}")
        cursor.execute("ANALYZE member_unify_scope")
        return _unify_in_temp_tables(cursor, scoped=True)


def _unify_in_temp_tables(cursor, *, scoped: bool) -> UnifyResult:
    cursor.execute("CREATE TEMP TABLE member_unify_pairs (customer_id bigint, member_id bigint, rule smallint) "
                   "ON COMMIT DROP")
    cursor.execute("CREATE TEMP TABLE member_unify_links (customer_id bigint, member_id bigint, rule smallint) "
                   "ON COMMIT DROP")
    cursor.execute(UNIONID_PAIRS_SQL.format(scope=UNIONID_SCOPE if scoped else ""))
    _remarks_collect(cursor, scoped=scoped)
    cursor.execute(MOBILE_PAIRS_SQL)
    cursor.execute("ANALYZE member_unify_pairs")
    cursor.execute(STANDING_SQL)
    cursor.execute(LINKS_FROM_RULE_SQL.format(extra=""), {"rule": 1})
    cursor.execute(LINKS_FROM_RULE_SQL.format(extra=NOT_STANDING), {"rule": 2})
    cursor.execute(RELEASE_SQL)
    released = cursor.rowcount
    cursor.execute(LINK_SQL)
    result = UnifyResult(linked=cursor.rowcount, released=released)
    cursor.execute(CONFLICTS_SQL)
    rows = cursor.fetchall()
    result.conflicts = len(rows)
    result.conflict_sample = [{"side": side, "id": pk, "matches": list(matches)}
                              for side, pk, matches in rows[:CONFLICT_SAMPLE]]
    if result.conflicts:
        logger.info("members_unify: %s; sample %s", result.summary(), result.conflict_sample)
    return result


def _remarks_collect(cursor, *, scoped: bool) -> None:
    """member_unify_remarks: (customer, hash) of the remark mobiles this run can match."""
    if scoped:
        cursor.execute(SCOPE_HASHES_SQL)
        cursor.execute("ANALYZE member_unify_hashes")
        cursor.execute(SCOPE_HASHES_EXPAND_SQL)
        cursor.execute("ANALYZE member_unify_hashes")
        cursor.execute(REMARKS_SCOPED_SQL)
    else:
        cursor.execute(REMARKS_ALL_SQL)
    cursor.execute("ANALYZE member_unify_remarks")


# -- RFM --------------------------------------------------------------------------------------------

# Quintiles among members who ever bought (never-buyers keep NULL: they are not "lapsed", they are
# not customers yet). 5 = best: most recent last purchase (fewest days since), most orders, most spend.
# Ties are split by id so a run is deterministic.
RFM_SQL = """
WITH buyers AS (
    SELECT id, last_purchase_on, order_count, lifetime_spend FROM customers_member
    WHERE last_purchase_on IS NOT NULL OR order_count > 0 OR lifetime_spend > 0
), scored AS (
    SELECT id,
           CASE WHEN last_purchase_on IS NULL THEN NULL
                ELSE NTILE(5) OVER (PARTITION BY last_purchase_on IS NULL ORDER BY last_purchase_on, id) END AS r,
           NTILE(5) OVER (ORDER BY order_count, id) AS f,
           NTILE(5) OVER (ORDER BY lifetime_spend, id) AS m
    FROM buyers
), target AS (
    SELECT mb.id, s.r, s.f, s.m FROM customers_member mb LEFT JOIN scored s ON s.id = mb.id
)
UPDATE customers_member mb SET rfm_r = t.r, rfm_f = t.f, rfm_m = t.m
FROM target t
WHERE mb.id = t.id AND (mb.rfm_r, mb.rfm_f, mb.rfm_m) IS DISTINCT FROM (t.r, t.f, t.m)
"""


def rfm_compute() -> int:
    """Score every member's R, F and M (1–5) in one UPDATE. Returns the members whose scores changed."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(RFM_SQL)
        return cursor.rowcount


# -- scoped writes (the API) ------------------------------------------------------------------------

@dataclass(frozen=True)
class ScopedUpsert:
    outcomes: dict[str, UpsertOutcome]  # member_no → written / unchanged
    errors: dict[str, dict[str, list[str]]]  # member_no → {field: [messages]}

    @property
    def written_ids(self) -> list[int]:
        return [o.member_id for o in self.outcomes.values() if o.member_id and o.status != "unchanged"]


def members_upsert_scoped(*, records: list[MemberRecord], user) -> ScopedUpsert:
    """Upsert on behalf of ``user`` (an integration's token): HQ writes any member; anyone else only
    members whose home store is in their scope, before and after the write. Others are refused per
    record, with the reason; the allowed ones are written in one statement."""
    scope = user_scope(user)
    codes = {r.store_code for r in records if r.store_code}
    stores = Store.objects.filter(code__in=codes) if scope.is_hq else Store.objects.for_scope(scope).filter(
        code__in=codes)
    store_ids = dict(stores.values_list("code", "pk"))
    errors: dict[str, dict[str, list[str]]] = {}
    with transaction.atomic():
        existing = dict(Member.objects.select_for_update().filter(member_no__in=[r.member_no for r in records])
                        .values_list("member_no", "home_store_id"))
        in_scope = set() if scope.is_hq else set(Store.objects.for_scope(scope).filter(
            pk__in={s for s in existing.values() if s}).values_list("pk", flat=True))
        allowed = []
        for record in records:
            problem = _scope_problem(record, scope.is_hq, store_ids, existing, in_scope)
            if problem:
                errors[record.member_no] = problem
            else:
                allowed.append(record)
        outcomes = members_upsert(records=allowed)
    return ScopedUpsert(outcomes=outcomes, errors=errors)


def _scope_problem(record: MemberRecord, is_hq: bool, store_ids: dict, existing: dict,
                   in_scope: set) -> dict[str, list[str]] | None:
    if record.store_code and record.store_code not in store_ids:
        message = _("归属门店编码“%(code)s”不存在或不在您的权限范围内") % {"code": record.store_code}
        return {"home_store_code": [message]}
    if is_hq:
        return None
    if record.member_no in existing and existing[record.member_no] not in in_scope:
        return {"member_no": [_("会员“%(no)s”归属其他门店（或未归属门店），您无权修改") % {"no": record.member_no}]}
    if record.member_no not in existing and not record.store_code:
        return {"home_store_code": [_("新建会员须填写您权限范围内的归属门店编码")]}
    return None
