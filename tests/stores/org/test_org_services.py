"""Organisation rules, as an HQ operator meets them: stores close, staff move and leave."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from portal.models import AuditEvent
from stores.models import Staff, Store
from stores.org.services import OrgError, staff_depart, staff_move, store_close
from tests.factories import StoreFactory


def test_a_franchised_store_must_name_its_franchisee_in_the_database(org):
    with pytest.raises(IntegrityError), transaction.atomic():
        Store.objects.create(code="X1", name="无主加盟店", region=org.east_sh, kind=Store.Kind.FRANCHISE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Store.objects.create(code="X2", name="直营却有加盟商", region=org.east_sh, kind=Store.Kind.DIRECT,
                             franchisee=org.franchisee_one)


def test_closing_stores_is_one_update_recorded_in_the_audit(org, hq_operator, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        closed = store_close(stores=Store.objects.filter(code__in=["A001", "B001"]), by=hq_operator)
    assert closed == 2
    assert set(Store.objects.filter(status="closed").values_list("code", flat=True)) == {"A001", "B001"}
    assert store_close(stores=Store.objects.all(), by=hq_operator) == 2  # only the still-open ones
    event = AuditEvent.objects.filter(action="store.close").first()
    assert event.actor == hq_operator and len(event.target_ids) == 2


def test_staff_cannot_be_moved_to_a_closed_store(org, hq_operator):
    store_close(stores=Store.objects.filter(pk=org.store_c.pk), by=hq_operator)
    org.store_c.refresh_from_db()
    with pytest.raises(OrgError, match="已关店"):
        staff_move(staff=Staff.objects.filter(pk=org.guide_a.pk), to_store=org.store_c, by=hq_operator)
    assert staff_move(staff=Staff.objects.filter(pk=org.guide_a.pk), to_store=org.store_a2, by=hq_operator) == 1


def test_a_departure_is_idempotent(org):
    assert staff_depart(staff=Staff.objects.filter(pk=org.guide_a.pk)) == 1
    assert staff_depart(staff=Staff.objects.filter(pk=org.guide_a.pk)) == 0
    org.guide_a.refresh_from_db()
    assert org.guide_a.status == Staff.Status.DEPARTED and org.guide_a.departed_at is not None


def test_hq_operator_moves_staff_from_the_admin(client, hq_operator, org):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:stores_staff_changelist"),
                           {"action": "move_selected", "_selected_action": [org.guide_a.pk], "apply": "1",
                            "to_store": org.store_a2.pk})
    assert response.status_code == 302
    org.guide_a.refresh_from_db()
    assert org.guide_a.store == org.store_a2


def test_a_region_manager_cannot_move_staff_even_within_their_region(client, region_manager_east, org):
    """A member's store decides what their login sees: HQ's to change (and the address-book sync's)."""
    client.force_login(region_manager_east)
    url = reverse("admin:stores_staff_changelist")
    assert "move_selected" not in offered_actions(client.get(url))
    client.post(url, {"action": "move_selected", "_selected_action": [org.guide_a.pk], "apply": "1",
                      "to_store": org.store_a2.pk})
    org.guide_a.refresh_from_db()
    assert org.guide_a.store == org.store_a
    with pytest.raises(OrgError, match="只有总部可以调动员工"):
        staff_move(staff=Staff.objects.filter(pk=org.guide_a.pk), to_store=org.store_a2, by=region_manager_east)


def test_hq_operator_closes_stores_from_the_admin(client, hq_operator, org):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:stores_store_changelist"),
                           {"action": "close_selected", "_selected_action": [org.store_c.pk]}, follow=True)
    assert "已关闭 1 家门店" in response.content.decode()
    org.store_c.refresh_from_db()
    assert org.store_c.status == Store.Status.CLOSED


def test_a_store_manager_cannot_close_their_store(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    client.post(reverse("admin:stores_store_changelist"),
                {"action": "close_selected", "_selected_action": [org.store_a.pk]})
    org.store_a.refresh_from_db()
    assert org.store_a.status == Store.Status.OPEN


def test_the_workbench_counts_only_the_viewers_scope(client, store_manager_of_a, hq_operator, org):
    StoreFactory(code="A009", region=org.east_sh)
    client.force_login(store_manager_of_a)
    panel = client.get(reverse("admin:index")).context["panels"][0]
    stats = {str(s["label"]): s["value"] for s in panel["stats"]}
    assert stats["营业门店"] == 1 and stats["在职员工"] == 2
    client.force_login(hq_operator)
    panel = client.get(reverse("admin:index")).context["panels"][0]
    stats = {str(s["label"]): s["value"] for s in panel["stats"]}
    assert stats["营业门店"] == 5 and stats["在职员工"] == 3


def offered_actions(changelist) -> set[str]:
    form = changelist.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form is not None else set()
