"""Customers and relationships follow WeCom: the full sync, callbacks, and the nightly reconciliation.

The sandbox plays WeCom: customers are loaded into it quietly (as if they had always been there) or
added, edited and deleted by people (which fires callbacks at the live portal).
"""

from __future__ import annotations

import pytest
from django.urls import reverse

import customers.contacts.services as sync_service
from customers.contacts.events import contact_event_apply, transfer_failed_record
from customers.contacts.services import FULL_KIND, RECONCILE_KIND, customers_reconcile, customers_sync_full
from customers.models import Customer, Relationship, Tag
from customers.tags.services import tags_pull
from portal.models import AuditEvent
from portal.schedules import schedules_declared
from portal.wecom.models import SyncRun
from portal.wecom.syncs import sync_kinds
from stores.models import Staff
from tests.conftest import eventually
from tests.customers.helpers import (
    callbacks_settled,
    corp_tags_create,
    customers_load,
    follow_load,
    sandbox_calls,
    snapshot,
)

BATCH = "externalcontact/batch/get_by_user"


# -- full sync ------------------------------------------------------------------------------------------
def test_full_sync_pages_through_every_member_and_fills_the_customer_row(wecom_org, sandbox):
    tags = corp_tags_create("意向", ["高意向", "低意向"])
    customers_load(sandbox, "a-guide", 250, prefix="A", tag_ids=[tags["高意向"]])
    store_b_ids = customers_load(sandbox, "b-guide", 30, prefix="B")
    shared = customers_load(sandbox, "a-manager", 1, prefix="S")[0]
    follow_load(sandbox, "b-guide", shared, createtime=sandbox.get("state")["now"] + 10)  # later: not primary

    run = customers_sync_full()

    assert run.status == SyncRun.Status.DONE, run.error
    assert run.progress["pages"] >= 3  # 282 follows, 100 a page
    assert run.progress["customers_created"] == 281 and run.progress["relationships_created"] == 282
    assert Relationship.objects.active().count() == 282
    customer = Customer.objects.get(external_userid="wmA000007")
    assert (customer.store, customer.region, customer.franchisee) == (
        wecom_org.store_a, wecom_org.east_sh, wecom_org.franchisee_one)
    assert customer.staff == wecom_org.guide_a and customer.active and customer.first_added_at
    assert customer.tag_ids == [Tag.objects.get(name="高意向").pk]  # the tags were pulled first
    assert Customer.objects.get(external_userid=store_b_ids[0]).store == wecom_org.store_b
    both = Customer.objects.get(external_userid=shared)
    assert both.store == wecom_org.store_a and both.relationships.count() == 2  # earliest active relationship
    assert Staff.objects.get(userid="a-guide").customer_count == 250
    assert both.stage_changes.filter(cause="first_add").count() == 1


def test_a_second_full_sync_changes_nothing(wecom_org, sandbox):
    customers_load(sandbox, "a-guide", 120, prefix="A")
    customers_load(sandbox, "b-guide", 5, prefix="B")
    customers_sync_full()
    before = snapshot()

    run = customers_sync_full()

    assert run.status == SyncRun.Status.DONE
    counts = {k: v for k, v in run.progress.items() if k.endswith(("_created", "_updated", "_ended"))}
    assert set(counts.values()) == {0}, counts
    assert snapshot() == before


def test_a_full_sync_interrupted_by_wecom_errors_resumes_where_it_stopped(wecom_org, sandbox, monkeypatch):
    customers_load(sandbox, "a-guide", 250, prefix="A")
    apply_page = sync_service._page_apply
    pages = []

    def apply_then_fail_from_the_next_call(run, answer):
        result = apply_page(run, answer)
        pages.append(answer)
        if len(pages) == 1:  # WeCom starts failing after the first page: more times than one call retries
            sandbox.do("faults", endpoint=BATCH, errcode=-1, times=10)
        return result

    monkeypatch.setattr(sync_service, "_page_apply", apply_then_fail_from_the_next_call)

    first = customers_sync_full()
    assert first.status == SyncRun.Status.FAILED and "-1" in first.error
    assert first.progress["pages"] == 1 and first.progress["_cursor"]
    assert Relationship.objects.count() == 100  # the first page is kept

    second = customers_sync_full()  # the remaining faults: fails again, loses nothing
    assert second.pk == first.pk and second.status == SyncRun.Status.FAILED
    assert second.progress["pages"] == 1

    third = customers_sync_full()
    assert third.pk == first.pk and third.status == SyncRun.Status.DONE, third.error
    assert Relationship.objects.active().count() == 250
    fresh_starts = [c for c in sandbox_calls(sandbox, BATCH) if not c["body"].get("cursor")]
    assert len(fresh_starts) == 1  # never restarted from the first page
    assert SyncRun.objects.filter(kind=FULL_KIND).count() == 1


def test_a_run_killed_mid_page_is_continued_by_the_next_run(wecom_org, sandbox, monkeypatch):
    customers_load(sandbox, "a-guide", 150, prefix="A")
    apply_page = sync_service._page_apply

    def crash_on_the_second_page(run, answer):
        if run.progress["pages"] == 1:
            raise SystemExit("worker killed")
        return apply_page(run, answer)

    monkeypatch.setattr(sync_service, "_page_apply", crash_on_the_second_page)
    with pytest.raises(SystemExit):
        customers_sync_full()
    run = SyncRun.objects.get(kind=FULL_KIND)
    assert run.status == SyncRun.Status.RUNNING and run.progress["pages"] == 1  # as a dead worker leaves it

    monkeypatch.setattr(sync_service, "_page_apply", apply_page)
    assert customers_sync_full().status == SyncRun.Status.DONE
    assert Relationship.objects.active().count() == 150


def test_a_long_sync_runs_in_slices_each_continuing_the_last(wecom_org, sandbox):
    customers_load(sandbox, "a-guide", 150, prefix="A")
    first = customers_sync_full(time_budget=0.001)  # the task re-enqueues itself while the run is running
    assert first.status == SyncRun.Status.RUNNING and first.progress["pages"] == 1
    second = customers_sync_full(time_budget=0.001)
    assert second.pk == first.pk and second.progress["pages"] == 2
    assert customers_sync_full().status == SyncRun.Status.DONE
    assert Relationship.objects.active().count() == 150


def test_relationships_wecom_no_longer_lists_end_and_a_late_delete_event_sets_the_cause(wecom_org, sandbox):
    customers_load(sandbox, "a-guide", 3, prefix="A")
    customers_sync_full()
    # The customer blocked the member; the callback has not arrived yet (no callback URL).
    sandbox.do("customers/delete_member", userid="a-guide", external_userid="wmA000001")
    sandbox.do("clock/advance", seconds=30)

    customers_sync_full()

    gone = Relationship.objects.get(customer__external_userid="wmA000001")
    assert gone.status == Relationship.Status.DELETED_BY_STAFF and gone.ended_at  # the sync's best guess
    assert not gone.customer.active and Staff.objects.get(userid="a-guide").customer_count == 2

    created = _last_event_time(sandbox)
    contact_event_apply(change_type="del_follow_user", fields={
        "UserID": "a-guide", "ExternalUserID": "wmA000001", "CreateTime": str(created)})

    gone.refresh_from_db()
    assert gone.status == Relationship.Status.DELETED_BY_CUSTOMER
    assert int(gone.ended_at.timestamp()) == created


def _last_event_time(sandbox) -> int:
    sandbox.drain()  # the sender logs an event once it has tried to deliver it
    xml = sandbox.get("callbacks")["log"][-1]["xml"]
    return int(xml.split("<CreateTime>")[1].split("<")[0])


def test_a_late_delete_never_ends_the_relationship_added_again_after_it(wecom_org, sandbox):
    customers_load(sandbox, "a-guide", 1, prefix="A")
    sandbox.do("customers/delete_member", userid="a-guide", external_userid="wmA000000")
    deleted_at = _last_event_time(sandbox)
    sandbox.do("clock/advance", seconds=60)
    sandbox.do("customers/add", userid="a-guide", external_userid="wmA000000")  # friends again
    customers_sync_full()
    before = snapshot()

    outcome = contact_event_apply(change_type="del_follow_user", fields={
        "UserID": "a-guide", "ExternalUserID": "wmA000000", "CreateTime": str(deleted_at)})

    assert outcome == "stale delete"
    assert snapshot() == before
    assert Relationship.objects.get(customer__external_userid="wmA000000").status == "active"


def test_a_failed_transfer_keeps_the_customer_with_its_member_and_is_recorded_once(wecom_org, sandbox):
    customers_load(sandbox, "a-guide", 1, prefix="A")
    fields = {"UserID": "a-manager", "ExternalUserID": "wmA000000", "FailReason": "customer_limit_exceed",
              "CreateTime": "1764000000"}
    assert transfer_failed_record(fields=fields) == "recorded"
    assert transfer_failed_record(fields=fields) == "already recorded"  # replayed from the inbox

    assert Relationship.objects.get(customer__external_userid="wmA000000").staff.userid == "a-guide"
    failure = AuditEvent.objects.get(action="customers.transfer_fail")
    assert failure.detail["reason"] == "customer_limit_exceed" and failure.detail["takeover_userid"] == "a-manager"


def test_full_sync_and_reconciliation_can_be_started_from_the_admin_and_run_nightly(hq_admin, client, db):
    assert {FULL_KIND, RECONCILE_KIND} <= {k.kind for k in sync_kinds()}
    names = {s.name for s in schedules_declared()}
    assert {"customers.sync_full", "customers.reconcile"} <= names
    client.force_login(hq_admin)
    page = client.get(reverse("admin:wecom_syncrun_changelist")).content.decode()
    assert "立即客户全量同步" in page and "立即客户对账" in page


# -- reconciliation ---------------------------------------------------------------------------------------
def test_reconciliation_repairs_relationships_changed_behind_our_back_and_reports_it(wecom_org, sandbox,
                                                                                       hq_operator, client):
    customers_load(sandbox, "a-guide", 5, prefix="A")
    customers_load(sandbox, "b-guide", 2, prefix="B")
    customers_sync_full()
    # Behind our back (callbacks lost): a customer added a-guide, another one was deleted by b-guide.
    customers_load(sandbox, "a-guide", 1, prefix="N")
    sandbox.do("members/delete_customer", userid="b-guide", external_userid="wmB000000")

    run = customers_reconcile()

    assert run.status == SyncRun.Status.DONE, run.error
    assert (run.progress["added"], run.progress["ended"], run.progress["errors"]) == (1, 1, 0)
    assert run.progress["samples"]["added"] == [["a-guide", "wmN000000"]]
    assert run.progress["samples"]["ended"] == [["b-guide", "wmB000000"]]
    assert Relationship.objects.get(customer__external_userid="wmN000000").status == "active"
    assert Relationship.objects.get(customer__external_userid="wmB000000").status == "deleted_by_staff"
    client.force_login(hq_operator)
    home = client.get(reverse("admin:index")).content.decode()
    assert "客户对账" in home and "补录关系 1，结束关系 1" in home and "a-guide/wmN000000" in home

    again = customers_reconcile()  # repaired means repaired
    assert (again.progress["added"], again.progress["ended"]) == (0, 0)


# -- callbacks, end to end ---------------------------------------------------------------------------------
@pytest.mark.integration
def test_every_contact_callback_reaches_the_portal(wecom_org, wecom_live):
    from customers.models import WelcomeDelivery
    from portal.wecom.gateway import wecom_call

    sandbox = wecom_live
    added = sandbox.do("customers/add", userid="a-guide", customer={"name": "小明", "unionid": "oXIAOMING"},
                       state="s-poster")["external_userid"]
    half = sandbox.do("customers/half_add", userid="b-guide", customer={"name": "小红"})["external_userid"]
    callbacks_settled(sandbox, at_least=2)
    relationship = Relationship.objects.get(customer__external_userid=added, staff__userid="a-guide")
    assert relationship.status == "active" and relationship.state == "s-poster"
    assert relationship.customer.name == "小明" and relationship.customer.store == wecom_org.store_a
    assert WelcomeDelivery.objects.filter(relationship=relationship).exists()  # acquisition_on_add was called
    assert Relationship.objects.get(customer__external_userid=half).store == wecom_org.store_b

    tag = corp_tags_create("兴趣", ["烘焙"])["烘焙"]
    sandbox.do("customers/edit", userid="a-guide", external_userid=added, remark="老客户", add_tag_ids=[tag])
    sandbox.do("clock/advance", seconds=5)
    sandbox.do("customers/delete_member", userid="b-guide", external_userid=half)
    callbacks_settled(sandbox, at_least=4)
    relationship.refresh_from_db()
    assert relationship.remark == "老客户" and relationship.tag_ids == [Tag.objects.get(wecom_tag_id=tag).pk]
    assert Customer.objects.get(pk=relationship.customer_id).tag_ids == relationship.tag_ids
    assert Relationship.objects.get(customer__external_userid=half).status == "deleted_by_customer"

    # On-job transfer to a-manager: the customer refuses one, the other is taken over 24 h later.
    other = sandbox.do("customers/add", userid="a-guide", customer={"name": "小刚"})["external_userid"]
    wecom_call("externalcontact/transfer_customer", data={"handover_userid": "a-guide",
                                                          "takeover_userid": "a-manager",
                                                          "external_userid": [added, other]})
    sandbox.do("transfers/refuse", external_userid=other)
    sandbox.do("clock/advance", seconds=86_400 + 60)
    callbacks_settled(sandbox, at_least=8)
    assert Relationship.objects.get(customer__external_userid=added, staff__userid="a-guide").status == "transferred"
    taken = Relationship.objects.get(customer__external_userid=added, staff__userid="a-manager")
    assert taken.status == "active" and taken.remark == "老客户"
    assert Relationship.objects.get(customer__external_userid=other, staff__userid="a-guide").status == "active"
    failure = AuditEvent.objects.get(action="customers.transfer_fail")
    assert failure.detail["reason"] == "customer_refused" and failure.detail["takeover_userid"] == "a-manager"

    sandbox.do("members/delete_customer", userid="a-guide", external_userid=other)
    eventually(lambda: Relationship.objects.get(customer__external_userid=other).status == "deleted_by_staff")
    assert not Customer.objects.get(external_userid=other).active


def _scenario(sandbox, prefix: str) -> None:
    """Adds, an edit, deletions by both sides and a re-add, a minute apart (by the sandbox's clock)."""
    tag = Tag.objects.get(name="烘焙").wecom_tag_id

    def step(action, **body):
        sandbox.do(action, **body)
        sandbox.do("clock/advance", seconds=61)

    one, two, three = (f"wm{prefix}{n}" for n in ("ONE0001", "TWO0001", "THREE01"))
    step("customers/add", userid="a-guide", external_userid=one, customer={"name": "一号"}, state="s1")
    step("customers/edit", userid="a-guide", external_userid=one, remark="先加", add_tag_ids=[tag])
    step("customers/delete_member", userid="a-guide", external_userid=one)
    step("customers/add", userid="a-guide", external_userid=one, state="s2")  # re-added: a new relationship
    step("customers/add", userid="a-guide", external_userid=two, customer={"name": "二号"})
    step("customers/add", userid="a-manager", external_userid=two)
    step("members/delete_customer", userid="a-manager", external_userid=two)
    step("customers/add", userid="b-guide", external_userid=three, customer={"name": "三号"})
    step("customers/delete_member", userid="b-guide", external_userid=three)  # gone: WeCom shows nothing more


STATUS_IN_WECOM = {"active": "active", "deleted_by_member": "deleted_by_staff",
                   "deleted_by_customer": "deleted_by_customer"}


def _end_state(sandbox, prefix: str) -> dict:
    """The scenario's end state, ids made comparable between runs; times are checked against WeCom's own."""
    def at(value):
        return None if value is None else int(value.timestamp())

    rows = Relationship.objects.filter(customer__external_userid__startswith=f"wm{prefix}").select_related(
        "staff", "customer", "customer__staff")
    state = {}
    for r in rows:
        truth = next(f for f in sandbox.get("transfers", external_userid=r.customer.external_userid)["follows"]
                     if f["userid"] == r.staff.userid)
        state[(r.staff.userid, r.customer.external_userid.removeprefix(f"wm{prefix}"))] = (
            r.status, STATUS_IN_WECOM[truth["status"]] == r.status, at(r.added_at) == truth["createtime"],
            at(r.ended_at) == truth["ended_at"], r.remark, r.state, len(r.tag_ids), r.customer.active,
            r.customer.staff.userid if r.customer.staff else None)
    return state


@pytest.mark.integration
def test_duplicate_and_reversed_deliveries_converge_on_the_in_order_state(wecom_org, wecom_live):
    sandbox = wecom_live
    corp_tags_create("兴趣", ["烘焙"])
    tags_pull()

    _scenario(sandbox, "ORD")  # delivered in order, while the scenario goes on
    callbacks_settled(sandbox, at_least=9)
    in_order = _end_state(sandbox, "ORD")

    sandbox.do("config", callback_duplicate=3)
    _scenario(sandbox, "DUP")
    callbacks_settled(sandbox, at_least=18)
    sandbox.do("config", callback_duplicate=1, callback_hold=True)
    _scenario(sandbox, "REV")
    sandbox.do("config", callback_hold=False)
    sandbox.do("callbacks/release", order="reverse")
    callbacks_settled(sandbox, at_least=27)

    # status, = WeCom's status, added and ended when WeCom says, remark, state, tags, customer active, primary
    assert in_order == {
        ("a-guide", "ONE0001"): ("active", True, True, True, "", "s2", 0, True, "a-guide"),
        ("a-guide", "TWO0001"): ("active", True, True, True, "", "", 0, True, "a-guide"),
        ("a-manager", "TWO0001"): ("deleted_by_staff", True, True, True, "", "", 0, True, "a-guide"),
        ("b-guide", "THREE01"): ("deleted_by_customer", True, True, True, "", "", 0, False, "b-guide"),
    }
    assert _end_state(sandbox, "DUP") == in_order
    assert _end_state(sandbox, "REV") == in_order
