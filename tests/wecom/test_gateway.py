"""The gateway against the sandbox over HTTP: WeCom failing the ways it does, and nothing lost."""

from __future__ import annotations

import pytest

from portal.wecom.gateway import WeComError, WeComRateLimited, WeComUnavailable, wecom_call
from portal.wecom.models import CallbackEvent, WeComCall
from stores.models import Staff
from tests.conftest import eventually


@pytest.fixture
def member(sandbox):
    sandbox.do("members/add", userid="zhangsan", name="张三")
    return sandbox


def _call(**kwargs):
    return wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test", **kwargs)


def test_rate_limited_calls_are_retried_and_recorded(member, db):
    member.do("faults", endpoint="user/get", errcode=45009, times=2)
    assert _call()["name"] == "张三"
    record = WeComCall.objects.get(endpoint="user/get")
    assert (record.errcode, record.attempts, record.caller) == (0, 3, "test")


def test_still_rate_limited_after_every_retry_raises_for_the_task_to_retry_later(member, db, settings):
    settings.WECOM_MAX_ATTEMPTS = 3
    member.do("faults", endpoint="user/get", errcode=45009, times=3)
    with pytest.raises(WeComRateLimited):
        _call()
    record = WeComCall.objects.get(endpoint="user/get")
    assert (record.errcode, record.attempts) == (45009, 3)


def test_the_sandbox_quota_is_real_and_configurable(member, db, settings):
    settings.WECOM_MAX_ATTEMPTS = 2
    member.do("config", rate_per_minute=3)
    for _ in range(3):
        _call()
    with pytest.raises(WeComRateLimited) as caught:
        _call()
    assert caught.value.errcode == 45009


def test_server_errors_and_busy_answers_are_retried(member, db):
    member.do("faults", endpoint="user/get", http_status=500, times=1)
    member.do("faults", endpoint="user/get", errcode=-1, times=1)
    assert _call()["userid"] == "zhangsan"
    assert WeComCall.objects.get(endpoint="user/get").attempts == 3


def test_a_timeout_is_retried_and_a_dead_sandbox_is_unavailable(member, db, settings):
    settings.WECOM_TIMEOUT = 0.3
    member.do("faults", endpoint="user/get", delay=0.8, times=1)
    assert _call()["userid"] == "zhangsan"
    assert WeComCall.objects.get(endpoint="user/get").attempts == 2
    settings.WECOM_BASE_URL, settings.WECOM_MAX_ATTEMPTS = "http://127.0.0.1:9/cgi-bin/", 2
    with pytest.raises(WeComUnavailable):
        _call()


def test_a_business_error_is_not_retried(member, db):
    with pytest.raises(WeComError) as caught:
        wecom_call("user/get", method="get", params={"userid": "nobody"}, caller="test")
    assert caught.value.errcode == 60111 and "60111" in str(caught.value)
    assert WeComCall.objects.get(endpoint="user/get").attempts == 1


def test_an_access_token_expiring_mid_run_is_fetched_again(member, db):
    _call()
    fetched_before = len(member.get("calls", endpoint="gettoken")["calls"])
    member.do("tokens/expire")
    assert _call()["name"] == "张三"
    assert len(member.get("calls", endpoint="gettoken")["calls"]) > fetched_before  # a new token was fetched
    codes = [c["errcode"] for c in member.get("calls", endpoint="user/get")["calls"]]
    # Refused with the expired token, then answered with the new one (other tests' leftover workers may
    # call user/get in between, so look for the answer after the refusal rather than at the end).
    assert 42001 in codes and 0 in codes[codes.index(42001) + 1:]


@pytest.mark.integration
def test_a_callback_whose_handler_hits_wecom_limits_stays_in_the_inbox_and_replays(org, wecom_live, settings):
    """Nothing lost: the event fails with its error, then succeeds when replayed."""
    settings.WECOM_MAX_ATTEMPTS = 2
    wecom_live.do("faults", endpoint="user/get", errcode=45009, times=2)
    wecom_live.do("members/add", userid="a-late", name="迟到的成员")
    event = eventually(lambda: CallbackEvent.objects.filter(status="failed").first())
    assert "45009" in event.last_error and not Staff.objects.filter(userid="a-late").exists()

    from portal.wecom.events import callback_events_replay

    assert callback_events_replay(event_ids=[event.pk]) == 1
    eventually(lambda: Staff.objects.filter(userid="a-late").exists())
    event.refresh_from_db()
    assert event.status == "done" and event.attempts == 2
