"""API tokens carry a mode, the resources they reach and an expiry; the API is throttled; its schema needs a login."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework import permissions
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from stores.access.api_auth import ApiTokenScopePermission
from stores.access.services import ApiTokenError, api_token_issue, api_token_revoke
from stores.models import ApiToken


@pytest.fixture(autouse=True)
def _empty_throttle_counts():
    cache.clear()  # throttle counts live in the (shared) Redis cache
    yield
    cache.clear()


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def rates(**changed):
    return override_settings(REST_FRAMEWORK={
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **changed},
    })


# --- expiry -------------------------------------------------------------------------------------------------


def test_a_token_expires_a_year_after_issue_unless_told_otherwise(hq_operator):
    token = api_token_issue(name="POS", user=hq_operator).token
    assert abs(token.expires_at - (timezone.now() + timedelta(days=365))) < timedelta(minutes=1)
    soon = timezone.now() + timedelta(days=30)
    assert api_token_issue(name="POS", user=hq_operator, expires_at=soon).token.expires_at == soon


def test_an_expired_token_is_refused_with_a_clear_message(client, hq_operator):
    issued = api_token_issue(name="POS", user=hq_operator)
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(reverse("store-list"), **bearer(issued.key))
    assert response.status_code == 401
    assert "令牌已于" in response.json()["detail"] and "过期" in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("bad", [
    {"expires_at": "past"}, {"expires_at": "too_far"}, {"mode": "admin"}, {"resources": ["members", "staff"]},
])
def test_a_token_cannot_be_issued_expired_forever_or_for_unknown_modes_and_resources(hq_operator, bad):
    now = timezone.now()
    kwargs = {**bad}
    if bad.get("expires_at") == "past":
        kwargs["expires_at"] = now - timedelta(minutes=1)
    if bad.get("expires_at") == "too_far":
        kwargs["expires_at"] = now + timedelta(days=settings.XIAOER_API_TOKEN_MAX_DAYS + 1)
    with pytest.raises(ApiTokenError):
        api_token_issue(name="POS", user=hq_operator, **kwargs)
    assert not ApiToken.objects.exists()


# --- mode and resources --------------------------------------------------------------------------------------


def test_a_read_only_token_can_read_a_store_but_not_change_or_delete_it(client, hq_operator, org):
    key = api_token_issue(name="BI", user=hq_operator, mode=ApiToken.Mode.READ_ONLY).key
    url = reverse("store-detail", args=[org.store_a.pk])
    assert client.get(url, **bearer(key)).status_code == 200
    response = client.patch(url, {"name": "改名"}, content_type="application/json", **bearer(key))
    assert response.status_code == 403 and "只读" in response.json()["detail"]
    assert client.delete(url, **bearer(key)).status_code == 403
    org.store_a.refresh_from_db()
    assert org.store_a.name == "上海徐汇店"


def test_a_read_only_token_cannot_upsert_members_although_the_action_names_its_own_permissions(client, hq_operator,
                                                                                               org):
    key = api_token_issue(name="BI", user=hq_operator, mode=ApiToken.Mode.READ_ONLY).key
    response = client.post(reverse("member-upsert"), {"member_no": "M-RO-1", "home_store_code": "A001"},
                           content_type="application/json", **bearer(key))
    assert response.status_code == 403
    read_write = api_token_issue(name="POS", user=hq_operator).key
    response = client.post(reverse("member-upsert"), {"member_no": "M-RW-1", "home_store_code": "A001"},
                           content_type="application/json", **bearer(read_write))
    assert response.status_code == 200


def test_a_token_limited_to_members_reads_members_but_not_staff(client, hq_operator, org):
    key = api_token_issue(name="小程序", user=hq_operator, resources=["member"]).key
    assert client.get(reverse("member-list"), **bearer(key)).status_code == 200
    response = client.get(reverse("staff-list"), **bearer(key))
    assert response.status_code == 403 and "无权访问" in response.json()["detail"]
    assert client.get(reverse("staff-detail", args=[org.guide_a.pk]), **bearer(key)).status_code == 403


def test_a_session_user_is_not_limited_by_token_rules(client, hq_operator, org):
    client.force_login(hq_operator)
    response = client.patch(reverse("store-detail", args=[org.store_a.pk]), {"name": "上海徐汇店"},
                            content_type="application/json")
    assert response.status_code == 200


def _api_views(patterns, prefix=""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/") and hasattr(pattern.callback, "cls"):
            yield route, pattern.callback


def test_every_api_view_applies_the_token_limits_even_where_it_names_its_own_permissions():
    views = list(_api_views(get_resolver().url_patterns))
    assert any("upsert" in route for route, _ in views)
    for route, callback in views:
        view = callback.cls(**getattr(callback, "initkwargs", {}))
        assert any(isinstance(p, ApiTokenScopePermission) for p in view.get_permissions()), route


# --- throttling ----------------------------------------------------------------------------------------------


def test_a_token_past_its_rate_gets_429_with_retry_after_and_other_tokens_carry_on(client, hq_operator):
    first = api_token_issue(name="POS 1", user=hq_operator).key
    second = api_token_issue(name="POS 2", user=hq_operator).key
    with rates(token="2/min"):
        assert [client.get(reverse("store-list"), **bearer(first)).status_code for _ in range(2)] == [200, 200]
        response = client.get(reverse("store-list"), **bearer(first))
        assert response.status_code == 429
        assert 0 < int(response["Retry-After"]) <= 60
        assert client.get(reverse("store-list"), **bearer(second)).status_code == 200


def test_a_signed_in_user_past_the_user_rate_gets_429(client, hq_operator):
    client.force_login(hq_operator)
    with rates(user="2/min"):
        assert [client.get(reverse("store-list")).status_code for _ in range(3)] == [200, 200, 429]


class _OpenView(APIView):
    """An endpoint anyone may call: what the anonymous rate protects."""

    permission_classes = [permissions.AllowAny]

    def get(self, request):
        return Response({"ok": True})


def _anonymous_get(remote: str, forwarded: str | None = None):
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    return _OpenView.as_view()(APIRequestFactory().get("/api/v1/open/", REMOTE_ADDR=remote, **extra)).status_code


@override_settings(XIAOER_TRUSTED_PROXY_COUNT=1)
def test_anonymous_clients_behind_the_trusted_proxy_are_throttled_each_on_its_own_address(db):
    with rates(anon="2/min"):
        assert [_anonymous_get("10.0.0.1", "203.0.113.7") for _ in range(3)] == [200, 200, 429]
        assert _anonymous_get("10.0.0.1", "203.0.113.8") == 200
        assert _anonymous_get("10.0.0.1", "198.51.100.1, 203.0.113.7") == 429  # a forged left part is ignored


def test_an_anonymous_client_cannot_dodge_its_rate_with_a_forged_forwarded_for_without_trusted_proxies(db):
    with rates(anon="2/min"):
        statuses = [_anonymous_get("203.0.113.9", f"198.51.100.{n}") for n in range(3)]
        assert statuses == [200, 200, 429]


def test_the_admin_and_the_mobile_page_are_not_throttled(client, hq_operator):
    client.force_login(hq_operator)
    with rates(user="1/min", anon="1/min", token="1/min"):
        assert {client.get(reverse("admin:index")).status_code for _ in range(3)} == {200}
        assert {client.get(reverse("mobile:login")).status_code for _ in range(3)} == {200}


# --- schema and docs -----------------------------------------------------------------------------------------


def test_anonymous_visitors_cannot_read_the_schema_or_the_docs(client, db):
    assert client.get(reverse("api-schema"), {"format": "json"}).status_code in (401, 403)
    response = client.get(reverse("api-docs"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_signed_in_hq_user_reads_the_schema_and_the_docs(client, hq_operator):
    client.force_login(hq_operator)
    response = client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200 and "/api/v1/stores/" in response.json()["paths"]
    assert client.get(reverse("api-docs")).status_code == 200


def test_an_integration_reads_the_schema_with_its_token_but_not_with_an_expired_one(client, hq_operator):
    issued = api_token_issue(name="POS", user=hq_operator)
    assert client.get(reverse("api-schema"), {"format": "json"}, **bearer(issued.key)).status_code == 200
    ApiToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(reverse("api-schema"), {"format": "json"}, **bearer(issued.key)).status_code == 401


# --- the admin -----------------------------------------------------------------------------------------------


def test_hq_admin_issues_a_read_only_members_token_with_an_expiry_and_sees_the_key_once(client, hq_admin,
                                                                                       store_manager_of_a):
    client.force_login(hq_admin)
    add_url = reverse("admin:stores_apitoken_add")
    form = client.get(add_url)
    assert form.status_code == 200
    assert form.context["adminform"].form.initial["mode"] == ApiToken.Mode.READ_ONLY
    expires = timezone.localtime() + timedelta(days=90)
    response = client.post(add_url, {
        "name": "门店A小程序", "user": store_manager_of_a.pk, "mode": ApiToken.Mode.READ_ONLY,
        "resources": ["member"], "expires_at_0": expires.strftime("%Y-%m-%d"), "expires_at_1": "18:00:00",
    }, follow=True)
    token = ApiToken.objects.get()
    assert (token.mode, token.resources, token.user) == (ApiToken.Mode.READ_ONLY, ["member"], store_manager_of_a)
    assert timezone.localtime(token.expires_at).date() == expires.date()
    shown = [str(m) for m in response.context["messages"]]
    assert any(token.prefix in text and "只显示这一次" in text for text in shown)
    key = next(text.rsplit("：", 1)[1] for text in shown if "只显示这一次" in text)
    assert client.get(reverse("admin:stores_apitoken_changelist")).content.decode().count(key) == 0
    assert client.get(reverse("member-list"), **bearer(key)).status_code == 200


def test_hq_admin_cannot_issue_a_token_that_is_already_expired(client, hq_admin, store_manager_of_a):
    client.force_login(hq_admin)
    response = client.post(reverse("admin:stores_apitoken_add"), {
        "name": "过期", "user": store_manager_of_a.pk, "mode": ApiToken.Mode.READ_WRITE,
        "expires_at_0": "2020-01-01", "expires_at_1": "00:00:00",
    })
    assert response.status_code == 200 and "到期时间必须晚于现在" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_token_list_shows_expiry_and_state(client, hq_admin, hq_operator):
    active = api_token_issue(name="有效的", user=hq_operator).token
    expired = api_token_issue(name="过期的", user=hq_operator).token
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    revoked = api_token_issue(name="吊销的", user=hq_operator).token
    api_token_revoke(tokens=ApiToken.objects.filter(pk=revoked.pk))
    client.force_login(hq_admin)
    url = reverse("admin:stores_apitoken_changelist")
    page = client.get(url).content.decode()
    assert all(label in page for label in ("有效", "已过期", "已吊销", "到期时间"))
    for state, token in ((ApiToken.State.ACTIVE, active), (ApiToken.State.EXPIRED, expired),
                         (ApiToken.State.REVOKED, revoked)):
        shown = list(client.get(url, {"state": state}).context["cl"].result_list)
        assert shown == [token]
    detail = client.get(reverse("admin:stores_apitoken_change", args=[active.pk]))
    assert detail.status_code == 200 and "到期时间" in detail.content.decode()
