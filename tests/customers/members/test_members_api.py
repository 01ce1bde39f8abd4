"""POS and mini-program systems push members with a token; the token's user decides whose members."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from customers.members.services import mobile_hash
from customers.models import Member
from stores.access.services import access_grant, api_token_issue
from stores.models import Role
from tests.factories import UserFactory

UPSERT = "/api/v1/members/upsert/"


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def writer_token(role: str, *, username: str, **scope) -> str:
    user = UserFactory(username=username)
    access_grant(user=user, role=role, **scope)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["add_member", "change_member"]))
    return api_token_issue(name=f"{username}-pos", user=user).key


@pytest.fixture
def hq_key(org):
    return writer_token(Role.HQ_OPERATOR, username="crm")


@pytest.fixture
def store_a_key(org):
    return writer_token(Role.STORE_MANAGER, username="pos-a", store=org.store_a)


def post(client, key: str, body):
    return client.post(UPSERT, body, content_type="application/json", **bearer(key))


def test_the_crm_upserts_a_member_and_sending_it_again_changes_nothing(client, hq_key):
    member = {"member_no": "M1", "mobile": "+86 138 0000 1234", "name": "王芳", "level": "金卡", "points": 120,
              "lifetime_spend": "88.50", "order_count": 3, "last_purchase_on": "2026-10-01", "home_store_code": "A001"}
    first = post(client, hq_key, member)
    assert first.status_code == 200
    assert first.json()["created"] == 1 and first.json()["results"][0]["status"] == "created"
    second = post(client, hq_key, member)
    assert second.json()["unchanged"] == 1 and second.json()["results"][0]["id"] == first.json()["results"][0]["id"]
    stored = Member.objects.get(member_no="M1")
    assert stored.mobile_hash == mobile_hash("13800001234") and stored.mobile_masked == "138****1234"
    partial = post(client, hq_key, {"member_no": "M1", "points": 150})  # fields left out are kept
    assert partial.json()["updated"] == 1
    stored.refresh_from_db()
    assert (stored.points, stored.name, stored.mobile_masked) == (150, "王芳", "138****1234")


def test_each_item_of_a_batch_is_validated_on_its_own(client, hq_key):
    response = post(client, hq_key, [
        {"member_no": "M1", "mobile": "13800000001"},
        {"member_no": "M2", "mobile": "12345"},
        {"member_no": "M3", "order_count": -1, "last_purchase_on": "昨天"},
        {"member_no": "M4", "home_store_code": "NOPE"},
        {"member_no": "M1", "points": 1},
        "not an object",
        {"name": "没有会员号"},
    ])
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["failed"]) == (1, 6)
    by_index = {r["index"]: r for r in body["results"]}
    assert by_index[0]["status"] == "created"
    assert "手机号“12345”无效" in by_index[1]["errors"]["mobile"][0]
    assert set(by_index[2]["errors"]) == {"order_count", "last_purchase_on"}
    assert "归属门店编码“NOPE”不存在" in by_index[3]["errors"]["home_store_code"][0]
    assert "第 0 项重复" in by_index[4]["errors"]["member_no"][0]
    assert by_index[5]["errors"] and "member_no" in by_index[6]["errors"]
    assert list(Member.objects.values_list("member_no", flat=True)) == ["M1"]


def test_a_single_bad_member_is_a_400_and_an_oversized_batch_is_refused_whole(client, hq_key):
    assert post(client, hq_key, {"member_no": "M1", "mobile": "x"}).status_code == 400
    response = post(client, hq_key, [{"member_no": f"M{i}"} for i in range(1001)])
    assert response.status_code == 400 and "最多提交 1000" in response.json()["detail"]
    assert post(client, hq_key, "hello").status_code == 400
    assert not Member.objects.exists()


def test_a_store_token_writes_its_own_stores_members_only(client, hq_key, store_a_key, org):
    post(client, hq_key, [{"member_no": "B-1", "home_store_code": "B001", "points": 1},
                          {"member_no": "A-1", "home_store_code": "A001", "points": 1}])
    response = post(client, store_a_key, [
        {"member_no": "A-1", "points": 9},  # its own store's member
        {"member_no": "A-2", "home_store_code": "A001"},  # a new member of its store
        {"member_no": "B-1", "points": 9},  # store B's member
        {"member_no": "A-3", "home_store_code": "B001"},  # creating into store B
        {"member_no": "A-1", "home_store_code": "B001"},  # moving its member out of scope
        {"member_no": "A-4"},  # a new member with no home store
    ])
    results = {(r["index"]): r for r in response.json()["results"]}
    assert [results[i]["status"] for i in range(6)] == ["updated", "created", "error", "error", "error", "error"]
    assert "您无权修改" in results[2]["errors"]["member_no"][0]
    assert "不在您的权限范围内" in results[3]["errors"]["home_store_code"][0]
    assert "须填写您权限范围内的归属门店编码" in results[5]["errors"]["home_store_code"][0]
    assert Member.objects.get(member_no="B-1").points == 1
    assert Member.objects.get(member_no="A-1").home_store == org.store_a
    assert not Member.objects.filter(member_no__in=["A-3", "A-4"]).exists()


def test_reading_members_is_scoped_and_pages_by_cursor(client, hq_key, store_a_key, org):
    post(client, hq_key, [{"member_no": f"A-{i}", "home_store_code": "A001", "mobile": f"1380000000{i}"}
                          for i in range(3)] + [{"member_no": "B-1", "home_store_code": "B001"}])
    first = client.get(reverse("member-list"), {"page_size": 2}, **bearer(store_a_key)).json()
    assert "count" not in first and len(first["results"]) == 2 and first["next"]
    rest = client.get(first["next"], **bearer(store_a_key)).json()
    numbers = {r["member_no"] for r in first["results"] + rest["results"]}
    assert numbers == {"A-0", "A-1", "A-2"}
    assert "mobile" not in first["results"][0] and first["results"][0]["mobile_masked"].startswith("138****")
    by_mobile = client.get(reverse("member-list"), {"mobile": "+86 13800000001"}, **bearer(store_a_key)).json()
    assert [r["member_no"] for r in by_mobile["results"]] == ["A-1"]
    b1 = Member.objects.get(member_no="B-1")
    assert client.get(reverse("member-detail", args=[b1.pk]), **bearer(store_a_key)).status_code == 404
    assert client.get(reverse("member-detail", args=[b1.pk]), **bearer(hq_key)).json()["home_store_code"] == "B001"


def test_a_reader_without_write_permission_cannot_upsert(client, store_manager_of_a, org):
    key = api_token_issue(name="read-only", user=store_manager_of_a).key
    assert client.get(reverse("member-list"), **bearer(key)).status_code == 200
    assert post(client, key, {"member_no": "A-9", "home_store_code": "A001"}).status_code == 403
    assert client.post(UPSERT, {"member_no": "A-9"}, content_type="application/json").status_code in (401, 403)


def test_the_member_endpoints_are_in_the_openapi_schema(client, hq_operator):
    client.force_login(hq_operator)  # the schema needs a login
    paths = client.get(reverse("api-schema"), {"format": "json"}).json()["paths"]
    assert "/api/v1/members/upsert/" in paths and "/api/v1/members/" in paths and "/api/v1/members/{id}/" in paths
