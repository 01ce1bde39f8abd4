"""Integrations (POS, mini-program) call the API with a token; the token's user decides the scope."""

from __future__ import annotations

from django.urls import reverse

from stores.access.services import access_grant, api_token_issue, api_token_revoke
from stores.models import ApiToken, Role
from tests.factories import UserFactory


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def test_a_store_scoped_token_lists_only_its_store(client, org):
    pos = UserFactory(username="pos-a")
    access_grant(user=pos, role=Role.STORE_MANAGER, store=org.store_a)
    key = api_token_issue(name="门店A收银", user=pos).key
    response = client.get(reverse("store-list"), **bearer(key))
    assert response.status_code == 200
    assert [row["code"] for row in response.json()["results"]] == ["A001"]
    assert client.get(reverse("store-detail", args=[org.store_b.pk]), **bearer(key)).status_code == 404


def test_only_the_hash_of_a_token_is_stored_and_a_revoked_token_stops_working(client, org, hq_operator):
    issued = api_token_issue(name="小程序", user=hq_operator)
    assert issued.key not in str(ApiToken.objects.values_list("key_hash", flat=True)[0])
    assert client.get(reverse("store-list"), **bearer(issued.key)).status_code == 200
    api_token_revoke(tokens=ApiToken.objects.filter(pk=issued.token.pk))
    response = client.get(reverse("store-list"), **bearer(issued.key))
    assert response.status_code == 401 and "令牌无效或已吊销" in response.json()["detail"]


def test_bad_tokens_and_no_token_are_refused(client, org):
    assert client.get(reverse("store-list"), **bearer("xe_forged")).status_code == 401
    assert client.get(reverse("store-list"), HTTP_AUTHORIZATION="Bearer").status_code == 401
    assert client.get(reverse("store-list")).status_code in (401, 403)


def test_lists_page_by_cursor_without_counting(client, hq_operator, org, django_assert_max_num_queries):
    client.force_login(hq_operator)
    first = client.get(reverse("staff-list"), {"page_size": 2}).json()
    assert "count" not in first and len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert {r["id"] for r in first["results"]}.isdisjoint({r["id"] for r in second["results"]})


def test_a_region_manager_cannot_create_staff_in_another_region_through_the_api(client, region_manager_east, org):
    client.force_login(region_manager_east)
    response = client.post(reverse("staff-list"), {"userid": "api-new", "name": "新人", "store": org.store_b.pk},
                           content_type="application/json")
    assert response.status_code in (400, 403)


def test_store_manager_edits_own_staff_but_cannot_move_them_out_of_scope(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    url = reverse("staff-detail", args=[org.guide_a.pk])
    assert client.patch(url, {"joined_on": "2026-03-01"}, content_type="application/json").status_code == 200
    response = client.patch(url, {"store": org.store_b.pk}, content_type="application/json")
    assert response.status_code == 400
    org.guide_a.refresh_from_db()
    assert org.guide_a.store == org.store_a and str(org.guide_a.joined_on) == "2026-03-01"


def test_the_openapi_schema_is_served(client, hq_operator):
    client.force_login(hq_operator)  # the schema and the docs need a login (access/test_tokens_and_throttles.py)
    response = client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    assert "/api/v1/stores/" in response.json()["paths"]
    assert client.get(reverse("api-docs")).status_code == 200
