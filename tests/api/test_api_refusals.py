"""How the API refuses: the refusals are declared in the schema, answered in JSON, and bad input is a 400."""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from schemathesis.specs.openapi.checks import response_schema_conformance

from stores.access.services import api_token_issue
from stores.org.api import StaffViewSet
from tests.api.conftest import openapi_schema_load

UPSERT = "/api/v1/members/upsert/"


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


@pytest.fixture
def hq_key(hq_operator) -> str:
    return api_token_issue(name="crm", user=hq_operator).key


def test_every_operation_declares_each_refusal_it_can_answer(db):
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            declared = set(operation["responses"])
            label = f"{method.upper()} {path}"
            assert {"401", "403", "429"} <= declared, label
            assert "Retry-After" in operation["responses"]["429"]["headers"], label
            if "{id}" in path:
                assert "404" in declared, label
            if method == "get" and "{id}" not in path:  # lists: a bad page_size is a 400, a bad cursor a 404
                assert {"400", "404"} <= declared, label
            if "requestBody" in operation:
                assert {"400", "415"} <= declared, label


@pytest.mark.parametrize("page_size", ["abc", "0", "-1", "true", "1.5", ""])
def test_a_page_size_that_is_not_a_whole_number_from_one_is_a_400_with_its_reason(client, hq_key, page_size):
    response = client.get(reverse("staff-list"), {"page_size": page_size}, **bearer(hq_key))
    assert response.status_code == 400 and response.json()["page_size"]


def test_a_page_size_above_the_maximum_is_capped_not_refused(client, hq_key):
    assert client.get(reverse("staff-list"), {"page_size": 5000}, **bearer(hq_key)).status_code == 200


def test_a_forged_cursor_is_a_404_never_a_server_error(client, hq_key):
    client.raise_request_exception = False
    forged = base64.b64encode(b"p=not-an-id").decode()
    response = client.get(reverse("staff-list"), {"cursor": forged}, **bearer(hq_key))
    assert response.status_code == 404 and response.json()["detail"]


def test_a_member_filter_no_member_can_match_is_a_400_not_a_database_error(client, hq_key):
    client.raise_request_exception = False
    url = reverse("member-list")
    assert client.get(url, {"member_no": "M\x00"}, **bearer(hq_key)).json().keys() == {"member_no"}
    assert "手机号“12345”无效" in client.get(url, {"mobile": "12345"}, **bearer(hq_key)).json()["mobile"][0]
    assert client.get(url, {"unionid": "u" * 65}, **bearer(hq_key)).status_code == 400
    assert client.get(url, {"member_no": ""}, **bearer(hq_key)).status_code == 200  # blank: no filter


def test_an_unknown_api_address_answers_json_and_the_rest_of_the_site_keeps_its_pages(client, hq_key):
    for url in ("/api/v1/staff/1.5/", "/api/v1/nothing-here/", "/api/v1/staff/1/extra/"):
        response = client.get(url, **bearer(hq_key))
        assert response.status_code == 404 and response["Content-Type"] == "application/json", url
        assert response.json()["detail"]
    assert client.get("/nothing-here/")["Content-Type"].startswith("text/html")


def test_a_form_body_with_too_many_fields_is_a_json_400(client, hq_key, org):
    body = "&".join(f"f{i}=x" for i in range(1100))
    response = client.patch(reverse("staff-detail", args=[org.guide_a.pk]), body,
                            content_type="application/x-www-form-urlencoded", **bearer(hq_key))
    assert response.status_code == 400 and response["Content-Type"] == "application/json"
    assert response.json()["detail"]


def test_a_server_error_under_the_api_is_json(client, hq_key, monkeypatch):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(StaffViewSet, "list", broken)
    client.raise_request_exception = False
    response = client.get(reverse("staff-list"), **bearer(hq_key))
    assert response.status_code == 500 and response["Content-Type"] == "application/json"
    assert "a bug" not in response.content.decode()


def test_a_member_batch_of_which_nothing_can_be_written_is_a_400_with_each_reason(client, hq_key):
    response = client.post(UPSERT, [{"member_no": "M1", "mobile": "x"}, {"name": "没有会员号"}],
                           content_type="application/json", **bearer(hq_key))
    assert response.status_code == 400
    body = response.json()
    assert body["failed"] == 2 and [r["status"] for r in body["results"]] == ["error", "error"]
    half = client.post(UPSERT, [{"member_no": "M1"}, {"name": "没有会员号"}],
                       content_type="application/json", **bearer(hq_key))
    assert half.status_code == 200 and (half.json()["created"], half.json()["failed"]) == (1, 1)


@pytest.mark.parametrize("body", [
    "hello",  # not a member: {"detail": …}
    [],  # nothing to write: {"detail": …}
    {"member_no": "M1", "mobile": "x"},  # one member, refused: its result
    [{"member_no": "M1", "mobile": "x"}],  # a batch, all refused: the results
])
def test_a_refused_member_upsert_matches_the_schema_it_declares(wsgi_app, hq_key, body):
    case = openapi_schema_load(app=wsgi_app)[UPSERT]["POST"].Case(body=body, media_type="application/json")
    response = case.call(headers={"Authorization": f"Bearer {hq_key}"})
    assert response.status_code == 400
    case.validate_response(response, checks=[response_schema_conformance])
