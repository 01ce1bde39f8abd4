"""Lifecycle stages: events only move customers forward, staff may move them anywhere, and every
move leaves one history row — written set-based, whatever the number of customers."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from customers.lifecycle.services import (
    DealMoves,
    LifecycleError,
    customer_stage_set,
    stage_on_deal,
    stage_on_first_add,
)
from customers.models import Customer, Stage, StageChange
from stores.access.scoping import user_scope
from tests.customers.segments.helpers import customer

Cause = StageChange.Cause


def stages(*customers) -> list[str]:
    return [Customer.objects.get(pk=c.pk).stage for c in customers]


def history(c) -> list[tuple]:
    return list(StageChange.objects.filter(customer=c).order_by("id")
                .values_list("from_stage", "to_stage", "cause", "by__username"))


def test_an_intent_tag_moves_fans_forward_but_never_back(org):
    fan = customer(org.guide_a, stage=Stage.FAN)
    buyer = customer(org.guide_a, stage=Stage.CUSTOMER)
    moved = customer_stage_set(customers=Customer.objects.filter(pk__in=[fan.pk, buyer.pk]),
                               stage=Stage.INTERESTED, cause=Cause.TAGGED)
    assert moved == 1
    assert stages(fan, buyer) == [Stage.INTERESTED, Stage.CUSTOMER]
    assert history(fan) == [(Stage.FAN, Stage.INTERESTED, Cause.TAGGED, None)]
    assert history(buyer) == []


def test_an_event_for_customers_already_there_records_nothing(org):
    lead = customer(org.guide_a, stage=Stage.LEAD)
    assert customer_stage_set(customers=Customer.objects.filter(pk=lead.pk), stage=Stage.LEAD,
                              cause=Cause.TAGGED) == 0
    assert customer_stage_set(customers=Customer.objects.filter(pk=lead.pk), stage=Stage.FAN,
                              cause=Cause.FIRST_ADD) == 0
    assert history(lead) == []


def test_staff_may_move_a_customer_back_by_hand_and_are_recorded(org, store_manager_of_a):
    buyer = customer(org.guide_a, stage=Stage.CUSTOMER)
    moved = customer_stage_set(customers=Customer.objects.filter(pk=buyer.pk), stage=Stage.LEAD,
                               cause=Cause.MANUAL, viewer=store_manager_of_a, by=store_manager_of_a)
    assert moved == 1 and stages(buyer) == [Stage.LEAD]
    assert history(buyer) == [(Stage.CUSTOMER, Stage.LEAD, Cause.MANUAL, "manager_a")]


def test_a_manual_move_needs_someone_to_have_made_it(org):
    c = customer(org.guide_a)
    with pytest.raises(LifecycleError, match="手动调整阶段必须记录操作人"):
        customer_stage_set(customers=Customer.objects.filter(pk=c.pk), stage=Stage.LEAD, cause=Cause.MANUAL)
    assert stages(c) == [Stage.FAN] and history(c) == []


def test_a_manual_move_reaches_only_the_customers_the_staff_member_may_see(org, store_manager_of_a):
    mine = customer(org.guide_a, stage=Stage.FAN)
    other_store = customer(org.guide_b, stage=Stage.FAN)
    moved = customer_stage_set(customers=Customer.objects.filter(pk__in=[mine.pk, other_store.pk]),
                               stage=Stage.VISITED, cause=Cause.MANUAL, viewer=store_manager_of_a,
                               by=store_manager_of_a)
    assert moved == 1 and stages(mine, other_store) == [Stage.VISITED, Stage.FAN]


@pytest.mark.parametrize(("stage", "cause", "message"), [
    ("vip", Cause.TAGGED, "未知的客户阶段：vip"),
    (Stage.LEAD, "magic", "未知的阶段变更原因：magic"),
])
def test_unknown_stages_and_causes_are_refused(org, stage, cause, message):
    c = customer(org.guide_a)
    with pytest.raises(LifecycleError, match=message):
        customer_stage_set(customers=Customer.objects.filter(pk=c.pk), stage=stage, cause=cause)


def test_first_add_records_the_fan_stage_once(org):
    new = customer(org.guide_a)
    already_on = customer(org.guide_a, stage=Stage.INTERESTED)
    assert stage_on_first_add(customer_ids=[new.pk, already_on.pk]) == 1
    assert stage_on_first_add(customer_ids=[new.pk]) == 0  # a duplicate add callback
    assert history(new) == [("", Stage.FAN, Cause.FIRST_ADD, None)]
    assert history(already_on) == []
    assert stage_on_first_add(customer_ids=[]) == 0


def test_the_database_refuses_a_second_first_add_row(org):
    c = customer(org.guide_a)
    stage_on_first_add(customer_ids=[c.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        StageChange.objects.create(customer=c, from_stage="", to_stage=Stage.FAN, cause=Cause.FIRST_ADD)


def test_a_deal_makes_a_customer_and_a_referred_customers_deal_makes_a_referrer(org):
    buyer = customer(org.guide_a, stage=Stage.VISITED)
    referrer = customer(org.guide_a, stage=Stage.CUSTOMER)
    already_referrer = customer(org.guide_a, stage=Stage.REFERRER)
    moves = stage_on_deal(customer_ids=[buyer.pk, already_referrer.pk], referrer_ids=[referrer.pk])
    assert moves == DealMoves(customers=1, referrers=1)
    assert stages(buyer, referrer, already_referrer) == [Stage.CUSTOMER, Stage.REFERRER, Stage.REFERRER]
    assert history(referrer) == [(Stage.CUSTOMER, Stage.REFERRER, Cause.REFERRAL, None)]
    assert stage_on_deal(customer_ids=[buyer.pk]) == DealMoves(customers=0, referrers=0)


def test_moving_500_customers_is_one_statement(org, hq_operator, django_assert_max_num_queries):
    Customer.objects.bulk_create([
        Customer(external_userid=f"wmBULK{i:05d}", name=f"批量{i}", store=org.store_a, region=org.store_a.region,
                 stage=Stage.LEAD if i % 5 == 0 else Stage.FAN) for i in range(500)])
    bulk = Customer.objects.filter(external_userid__startswith="wmBULK")
    user_scope(hq_operator)
    with django_assert_max_num_queries(3):  # savepoint, the statement, release
        moved = customer_stage_set(customers=bulk, stage=Stage.INTERESTED, cause=Cause.TAGGED)
    assert moved == 400
    assert StageChange.objects.filter(cause=Cause.TAGGED, to_stage=Stage.INTERESTED).count() == 400
    with django_assert_max_num_queries(3):
        moved = customer_stage_set(customers=bulk, stage=Stage.FAN, cause=Cause.MANUAL, viewer=hq_operator,
                                   by=hq_operator)
    assert moved == 500
    assert set(StageChange.objects.filter(cause=Cause.MANUAL).values_list("from_stage", flat=True)) == {
        Stage.INTERESTED, Stage.LEAD}
    ids = list(bulk.values_list("pk", flat=True))
    with django_assert_max_num_queries(1):
        assert stage_on_first_add(customer_ids=ids) == 500
