"""The mobile page: store people see their own store, whatever id they type."""

from __future__ import annotations

from django.urls import reverse


def test_staff_of_a_sees_their_store_on_the_phone(client, staff_of_a, org):
    client.force_login(staff_of_a)
    page = client.get(reverse("mobile:home")).content.decode()
    assert "上海徐汇店" in page and "广州天河店" not in page


def test_store_manager_cannot_open_another_stores_staff(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    assert client.get(reverse("mobile:staff", args=[org.guide_a.pk])).status_code == 200
    assert client.get(reverse("mobile:staff", args=[org.guide_b.pk])).status_code == 404
    assert client.get(reverse("mobile:staff", args=[999999])).status_code == 404


def test_store_staff_see_only_themselves(client, staff_of_a, org):
    client.force_login(staff_of_a)
    assert client.get(reverse("mobile:staff", args=[org.guide_a.pk])).status_code == 200
    assert client.get(reverse("mobile:staff", args=[org.manager_a.pk])).status_code == 404


def test_the_mobile_page_asks_anonymous_visitors_to_log_in(client, db):
    response = client.get(reverse("mobile:home"))
    assert response.status_code == 302 and reverse("mobile:login") in response["Location"]


def test_a_store_manager_on_the_phone_lists_their_store_and_its_active_staff_only(store_manager_of_a, org):
    from stores.models import Staff
    from stores.org.selectors import org_in_scope
    from stores.org.services import staff_depart

    staff_depart(staff=Staff.objects.filter(pk=org.guide_a.pk))
    listed = org_in_scope(viewer=store_manager_of_a)
    assert [s.code for s in listed.stores] == [org.store_a.code]
    assert [s.pk for s in listed.staff] == [org.manager_a.pk]  # the departed guide is no longer listed
