"""Members: mobiles stored only hashed and masked, upserts where a blank never erases, unification
of WeCom customers with CRM members (by unionid, then by a mobile a staff member recorded), RFM."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date
from decimal import Decimal

import pytest

from customers.members.services import (
    MemberRecord,
    member_upsert,
    members_unify,
    members_upsert_scoped,
    mobile_hash,
    mobile_masked,
    remark_mobile_hashes,
    rfm_compute,
)
from customers.models import Customer, Member
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_the_hash_is_hmac_sha256_with_the_settings_key_and_the_mask_keeps_seven_digits(settings):
    settings.MEMBER_MOBILE_HASH_KEY = "k-1"
    expected = hmac.new(b"k-1", b"13800001234", hashlib.sha256).hexdigest()
    assert mobile_hash("13800001234") == expected and len(expected) == 64
    settings.MEMBER_MOBILE_HASH_KEY = "k-2"
    assert mobile_hash("13800001234") != expected  # a key of our own: a table of all mobiles is useless
    assert mobile_masked("13800001234") == "138****1234"


def test_upsert_creates_then_changes_nothing_when_sent_again_and_a_blank_never_erases(org):
    record = MemberRecord(member_no="M1", mobile_hash=mobile_hash("13800001234"), mobile_masked="138****1234",
                          name="王芳", level="金卡", points=120, lifetime_spend=Decimal("88.50"), order_count=3,
                          last_purchase_on=date(2026, 10, 1), store_code="A001")
    assert member_upsert(record=record).status == "created"
    assert member_upsert(record=record).status == "unchanged"
    # A POS sends only the new points: everything else stays as the CRM had it.
    assert member_upsert(record=MemberRecord(member_no="M1", points=150)).status == "updated"
    member = Member.objects.get(member_no="M1")
    assert (member.points, member.name, member.level, member.home_store, member.mobile_masked) == (
        150, "王芳", "金卡", org.store_a, "138****1234")
    assert member.lifetime_spend == Decimal("88.50") and member.last_purchase_on == date(2026, 10, 1)
    assert "13800001234" not in str(Member.objects.values().get(member_no="M1"))  # never stored in plain


def test_a_store_pos_upserting_members_has_the_written_ones_unified_once_the_write_commits(
        org, store_manager_of_a, monkeypatch, django_capture_on_commit_callbacks):
    """The upsert service asks for unification itself, after commit and in one task, so the API and any other
    caller of it behave the same: created or changed members are unified, unchanged and refused ones are not."""
    from customers.members.tasks import members_unify_task

    sent = []
    monkeypatch.setattr(members_unify_task, "apply_async", lambda kwargs: sent.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        written = members_upsert_scoped(records=[MemberRecord(member_no="M1", name="王芳", store_code="A001"),
                                                 MemberRecord(member_no="M2", name="外店", store_code="B001")],
                                        user=store_manager_of_a)
        assert sent == []  # not before the write commits
    mine = Member.objects.get(member_no="M1")
    assert set(written.errors) == {"M2"} and sent == [{"member_ids": [mine.pk]}]

    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert member_upsert(record=MemberRecord(member_no="M1", name="王芳")).status == "unchanged"
    assert sent == []
    with django_capture_on_commit_callbacks(execute=True):
        assert member_upsert(record=MemberRecord(member_no="M1", points=150)).status == "updated"
    assert sent == [{"member_ids": [mine.pk]}]


def _customer(staff, *, unionid: str = "", remark_mobiles: tuple[str, ...] = ()) -> Customer:
    customer = CustomerFactory(staff=staff, unionid=unionid)
    if remark_mobiles:
        customer.relationships.update(remark_mobiles=list(remark_mobiles),
                                      remark_mobile_hashes=remark_mobile_hashes(remark_mobiles))
    return customer


def _member(no: str, *, unionid: str = "", mobile: str = "") -> Member:
    return Member.objects.create(member_no=no, unionid=unionid, mobile_hash=mobile_hash(mobile) if mobile else "",
                                 mobile_masked=mobile_masked(mobile) if mobile else "")


def test_a_customer_and_a_member_with_the_same_unionid_are_linked(org):
    customer = _customer(org.guide_a, unionid="oUNION-1")
    member = _member("M1", unionid="oUNION-1")
    _member("M2", unionid="oUNION-2")
    result = members_unify()
    customer.refresh_from_db()
    assert customer.member == member and result.linked == 1 and result.conflicts == 0
    assert members_unify().linked == 0  # idempotent


def test_a_mobile_a_guide_recorded_links_the_customer_to_the_member_with_that_mobile(org):
    customer = _customer(org.guide_a, remark_mobiles=("+86 138-0000-1234",))
    member = _member("M1", mobile="13800001234")
    members_unify(member_ids=[member.pk])
    customer.refresh_from_db()
    assert customer.member == member


def test_unionid_beats_mobile_and_ties_go_to_the_lowest_id_and_are_reported(org):
    by_mobile = _member("M-MOBILE", mobile="13800001234")
    by_unionid = _member("M-UNION", unionid="oUNION-1")
    customer = _customer(org.guide_a, unionid="oUNION-1", remark_mobiles=("13800001234",))
    twin_a = _member("M-TWIN-A", unionid="oUNION-9")
    _member("M-TWIN-B", unionid="oUNION-9")  # the CRM has the same person twice
    twin_customer = _customer(org.guide_b, unionid="oUNION-9")
    result = members_unify()
    customer.refresh_from_db()
    twin_customer.refresh_from_db()
    assert customer.member == by_unionid and twin_customer.member == twin_a
    assert not Customer.objects.filter(member=by_mobile).exists()
    reported = {(c["side"], tuple(c["matches"])) for c in result.conflict_sample}
    assert ("customer", ("M-MOBILE", "M-UNION")) in reported and ("customer", ("M-TWIN-A", "M-TWIN-B")) in reported


def test_a_member_claimed_by_a_better_match_moves_and_the_old_holder_is_released(org):
    member = _member("M1", mobile="13800001234")
    first = _customer(org.guide_a, remark_mobiles=("13800001234",))
    members_unify()
    first.refresh_from_db()
    assert first.member == member
    Member.objects.filter(pk=member.pk).update(unionid="oUNION-7")
    second = _customer(org.guide_b, unionid="oUNION-7")
    result = members_unify(member_ids=[member.pk])
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.member == member and first.member is None and result.released == 1


def test_rfm_scores_quintiles_on_a_hand_checked_set(org):
    # Ten buyers: member i bought last on day i of October, i orders, i × 100 yuan; one never bought.
    for i in range(1, 11):
        Member.objects.create(member_no=f"B{i:02d}", last_purchase_on=date(2026, 10, i), order_count=i,
                              lifetime_spend=Decimal(i * 100))
    Member.objects.create(member_no="NEVER")
    assert rfm_compute() == 10
    scores = {m.member_no: (m.rfm_r, m.rfm_f, m.rfm_m) for m in Member.objects.all()}
    # Quintiles of ten: two per score; the most recent, most frequent, biggest spenders get 5.
    assert scores["B01"] == (1, 1, 1) and scores["B02"] == (1, 1, 1)
    assert scores["B05"] == (3, 3, 3) and scores["B06"] == (3, 3, 3)
    assert scores["B10"] == (5, 5, 5) and scores["B09"] == (5, 5, 5)
    assert scores["NEVER"] == (None, None, None)  # not a lapsed buyer: never a buyer
    # Recency, frequency and money are scored separately.
    Member.objects.filter(member_no="B01").update(last_purchase_on=date(2026, 11, 20))
    rfm_compute()
    assert Member.objects.get(member_no="B01").rfm_r == 5 and Member.objects.get(member_no="B01").rfm_f == 1
    assert rfm_compute() == 0  # nothing changed, nothing written
