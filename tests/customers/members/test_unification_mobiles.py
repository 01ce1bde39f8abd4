"""A mobile a guide records on a customer in WeCom links the customer to the CRM member with that mobile.

WeCom gives each relationship ``remark_mobiles``; the sync stores them with their hashes
(``remark_mobile_hashes``, the same HMAC as ``Member.mobile_hash``), so unification finds a member's
customers through an index, whichever came first: the member (linked when the sync sees the mobile) or
the relationship (linked when the member is imported or sent by the API).
"""

from __future__ import annotations

import pytest
from django.db import connection

from customers.contacts.events import contact_event_apply
from customers.contacts.services import customers_sync_full
from customers.members.services import (
    MemberRecord,
    member_upsert,
    members_unify,
    mobile_hash,
    mobile_masked,
    relationship_mobile_hashes_backfill,
    remark_mobile_hashes,
)
from customers.models import Customer, Member, Relationship
from portal.parsers import mobile_normalize
from portal.wecom.gateway import wecom_call
from tests.customers.helpers import customers_load
from tests.factories import CustomerFactory

MOBILE = "13800001234"


@pytest.fixture
def unify_runs(monkeypatch) -> list[dict]:
    """members_unify_task runs its body here, in the test's transaction, once enqueue_after_commit sends it
    (a worker's way of closing connections would end the test's transaction); returns what was sent."""
    from customers.members.tasks import members_unify_task

    sent: list[dict] = []

    def apply_async(*, kwargs):
        sent.append(kwargs)
        members_unify_task.run(**kwargs)

    monkeypatch.setattr(members_unify_task, "apply_async", apply_async)
    return sent


def member(no: str, mobile: str) -> Member:
    """A member as the CRM import or the API writes it: the mobile hashed and masked, never in plain."""
    mobile = mobile_normalize(mobile)
    member_upsert(record=MemberRecord(member_no=no, mobile_hash=mobile_hash(mobile),
                                      mobile_masked=mobile_masked(mobile)))
    return Member.objects.get(member_no=no)


def guide_records_mobiles(external_userid: str, mobiles: list[str], *, userid: str = "a-guide") -> None:
    """The guide types the customer's mobiles into the remark in WeCom (WeCom fires edit_external_contact)."""
    wecom_call("externalcontact/remark", data={"userid": userid, "external_userid": external_userid,
                                               "remark_mobiles": mobiles}, caller="test")


def edit_event(external_userid: str, userid: str = "a-guide") -> None:
    contact_event_apply(change_type="edit_external_contact",
                        fields={"UserID": userid, "ExternalUserID": external_userid})


# -- normalisation ------------------------------------------------------------------------------------------
def test_remark_mobiles_are_hashed_like_member_mobiles_whatever_the_guide_typed():
    typed = ["+86 138-0000-1234", "0086 13800001234", "(138) 0000 1234", "８６１３８００００１２３４", "8613800001234"]
    for text in typed:
        assert remark_mobile_hashes([text]) == [mobile_hash(MOBILE)], text
    # Landlines and typos stay in remark_mobiles (shown) but are never matched; duplicates collapse.
    assert remark_mobiles_sorted(["021-6408-1234", "1380000", "", *typed, "13900005678"]) == sorted(
        [mobile_hash(MOBILE), mobile_hash("13900005678")])


def remark_mobiles_sorted(mobiles):
    hashes = remark_mobile_hashes(mobiles)
    assert hashes == sorted(set(hashes))
    return hashes


def test_the_migrations_sql_backfill_hashes_exactly_like_the_sync(org):
    """Rows written before the column existed get, set-based, the hashes the Python code would write."""
    raw = [["+86 138-0000-1234"], ["0086-139 0000 5678", "13900005678", "021-64081234"], ["８６１３７００００１１１１"],
           ["(186) 1234 5678", "186-1234-5678 "], ["+86 12345"], []]
    relationships = []
    for mobiles in raw:
        relationship = CustomerFactory(staff=org.guide_a).relationships.get()
        Relationship.objects.filter(pk=relationship.pk).update(remark_mobiles=mobiles)
        relationships.append(relationship.pk)

    assert relationship_mobile_hashes_backfill(batch=2) == 4  # small batches: several id ranges
    stored = dict(Relationship.objects.filter(pk__in=relationships).values_list("pk", "remark_mobile_hashes"))
    assert [stored[pk] for pk in relationships] == [remark_mobile_hashes(m) for m in raw]
    assert relationship_mobile_hashes_backfill(batch=2) == 0  # rows already right are not rewritten


# -- unification, both directions -----------------------------------------------------------------------
def test_member_first_the_sync_seeing_the_guides_mobile_links_the_customer(wecom_org, sandbox, unify_runs,
                                                                           django_capture_on_commit_callbacks):
    crm = member("M001", MOBILE)
    external_userid = customers_load(sandbox, "a-guide", 1, prefix="M")[0]
    customers_sync_full()
    customer = Customer.objects.get(external_userid=external_userid)
    assert customer.member is None

    guide_records_mobiles(external_userid, ["+86 138-0000-1234"])
    with django_capture_on_commit_callbacks(execute=True):
        edit_event(external_userid)
    relationship = Relationship.objects.get(customer=customer)
    assert relationship.remark_mobiles == ["+86 138-0000-1234"]  # as WeCom shows it
    assert relationship.remark_mobile_hashes == [crm.mobile_hash]
    assert unify_runs == [{"member_ids": [crm.pk]}]  # one unification, for the member with that mobile
    customer.refresh_from_db()
    assert customer.member == crm

    with django_capture_on_commit_callbacks(execute=True):
        edit_event(external_userid)  # the same event again: nothing new, nothing queued
    assert len(unify_runs) == 1


def test_relationship_first_importing_the_member_links_the_customer(wecom_org, sandbox):
    external_userid = customers_load(sandbox, "a-guide", 1, prefix="R")[0]
    guide_records_mobiles(external_userid, ["138-0000-1234", "021-64081234"])
    customers_sync_full()  # the full sync writes the hashes with the mobiles
    relationship = Relationship.objects.get(customer__external_userid=external_userid)
    assert relationship.remark_mobile_hashes == [mobile_hash(MOBILE)]

    crm = member("M002", "+86 13800001234")
    result = members_unify(member_ids=[crm.pk])  # what the import and the API run for the members they wrote
    assert result.linked == 1
    assert Customer.objects.get(external_userid=external_userid).member == crm


def test_hashes_follow_the_guides_edits_and_the_link_stays(wecom_org, sandbox, unify_runs,
                                                           django_capture_on_commit_callbacks):
    crm = member("M003", MOBILE)
    external_userid = customers_load(sandbox, "a-guide", 1, prefix="E")[0]
    guide_records_mobiles(external_userid, [MOBILE])
    with django_capture_on_commit_callbacks(execute=True):
        edit_event(external_userid)
    relationship = Relationship.objects.get(customer__external_userid=external_userid)
    assert Customer.objects.get(pk=relationship.customer_id).member == crm

    guide_records_mobiles(external_userid, ["13900005678"])  # a typo corrected: the old hash goes
    edit_event(external_userid)
    relationship.refresh_from_db()
    assert relationship.remark_mobile_hashes == [mobile_hash("13900005678")]
    guide_records_mobiles(external_userid, [""])  # cleared in WeCom
    edit_event(external_userid)
    relationship.refresh_from_db()
    assert (relationship.remark_mobiles, relationship.remark_mobile_hashes) == ([], [])
    # Unification never drops a link because its evidence went away (members_unify's rule).
    assert Customer.objects.get(pk=relationship.customer_id).member == crm


def test_a_customer_whose_guides_recorded_two_members_mobiles_is_reported_not_guessed(org):
    first, second = member("M010", MOBILE), member("M011", "13900005678")
    customer = CustomerFactory(staff=org.guide_a)
    Relationship.objects.filter(customer=customer).update(
        remark_mobiles=[MOBILE, "13900005678"], remark_mobile_hashes=remark_mobile_hashes([MOBILE, "13900005678"]))
    result = members_unify(member_ids=[second.pk])  # a run for one member still sees the customer's other match
    customer.refresh_from_db()
    assert customer.member == first  # ties go to the lowest id, as in a full run
    assert {"side": "customer", "id": customer.pk, "matches": ["M010", "M011"]} in result.conflict_sample


# -- the index ----------------------------------------------------------------------------------------------
RELATIONSHIPS = 4000


def _bulk(org) -> list[int]:
    """4,000 customers of a-guide, every 10th with a remark mobile, and 4,000 members: set-based."""
    mobiles = [f"1390000{i:04d}" for i in range(RELATIONSHIPS)]
    hashes = [mobile_hash(m) for m in mobiles]
    with connection.cursor() as cursor:
        cursor.execute("""
            WITH c AS (
                INSERT INTO customers_customer (external_userid, unionid, name, kind, gender, avatar, corp_name,
                    staff_id, store_id, stage, tag_ids, active, created_at, updated_at)
                SELECT 'wmPLAN' || i, '', '客户' || i, 1, 0, '', '', %(staff)s, %(store)s, 'fan', '{}', true, now(),
                       now()
                FROM generate_series(0, %(n)s - 1) i RETURNING id, external_userid)
            INSERT INTO customers_relationship (customer_id, staff_id, store_id, added_at, add_way, state,
                campaign_ref, remark, description, remark_mobiles, remark_mobile_hashes, tag_ids, status)
            SELECT c.id, %(staff)s, %(store)s, now(), 0, '', '', '', '',
                   CASE WHEN i %% 10 = 0 THEN ARRAY[(%(mobiles)s::text[])[i + 1]] ELSE '{}' END,
                   CASE WHEN i %% 10 = 0 THEN ARRAY[(%(hashes)s::text[])[i + 1]] ELSE '{}' END, '{}', 'active'
            FROM c JOIN LATERAL (SELECT substr(c.external_userid, 7)::int AS i) x ON true
        """, {"staff": org.guide_a.pk, "store": org.store_a.pk, "n": RELATIONSHIPS, "mobiles": mobiles,
              "hashes": hashes})
        cursor.execute("""
            INSERT INTO customers_member (member_no, mobile_hash, mobile_masked, unionid, name, level, points,
                lifetime_spend, order_count, updated_at)
            SELECT 'P' || i, (%(hashes)s::text[])[i + 1], '', '', '', '', 0, 0, 0, now()
            FROM generate_series(0, %(n)s - 1) i
        """, {"hashes": hashes, "n": RELATIONSHIPS})
        cursor.execute("ANALYZE customers_customer, customers_relationship, customers_member")
    return list(Member.objects.filter(member_no__in=["P0", "P10", "P3990"]).values_list("pk", flat=True))


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_a_run_for_some_members_finds_their_customers_through_the_index_not_a_scan(org):
    member_ids = _bulk(org)
    plans: dict[str, list[dict]] = {}

    def explain_first(execute, sql, params, many, context):
        """Plan the statements that read relationships by hash, in their real context (temp tables exist)."""
        if not sql.startswith("EXPLAIN") and "remark_mobile_hashes @>" in sql:
            context["cursor"].execute("EXPLAIN (FORMAT JSON) " + sql, params)
            plan = context["cursor"].fetchone()[0]  # psycopg decodes the json already
            plans[sql.split("member_unify_")[1].split()[0]] = list(_plan_nodes(plan[0]["Plan"]))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(explain_first):
        result = members_unify(member_ids=member_ids)

    assert result.linked == 3  # P0, P10, P3990 each found their customer
    assert len(plans) == 2, list(plans)  # expanding the hashes, collecting the remarks
    for statement, nodes in plans.items():
        scans = {(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes}
        assert ("Bitmap Index Scan", None, "relationship_mobile_hashes") in scans, (statement, scans)
        assert not any(kind == "Seq Scan" and table == "customers_relationship" for kind, table, _ in scans), (
            statement, scans)

    # An import's many members may be planned as one pass over the relationships instead: same links.
    result = members_unify(member_ids=list(Member.objects.values_list("pk", flat=True)))
    assert result.linked == RELATIONSHIPS // 10 - 3 and result.conflicts == 0
    assert Customer.objects.filter(member__isnull=False).count() == RELATIONSHIPS // 10
