"""WeCom callbacks: nothing received is lost, nothing forged gets in, duplicates are stored once."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode
from xml.etree import ElementTree

import pytest
from django.urls import reverse
from django.utils import timezone
from wechatpy.enterprise.crypto import WeChatCrypto

from portal.wecom.events import callback_event_process, callback_events_due, callback_events_purge, event_handler
from portal.wecom.models import CallbackEvent
from tests.wecom.helpers import event_xml, signed_post

URL = "/wecom/callback/"


def _crypto(settings) -> WeChatCrypto:
    return WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)


def post(client, xml: str, **crypto):
    query, body = signed_post(xml, **crypto)
    return client.post(f"{URL}?{query}", body, content_type="text/xml")


def _echo_query(settings, *, timestamp: str) -> dict:
    envelope = ElementTree.fromstring(_crypto(settings).encrypt_message("echo-1234567", "nonce1", timestamp))
    return {"msg_signature": envelope.find("MsgSignature").text, "timestamp": timestamp, "nonce": "nonce1",
            "echostr": envelope.find("Encrypt").text}


def test_url_verification_echoes_the_decrypted_echostr(client, settings):
    response = client.get(URL, _echo_query(settings, timestamp=str(int(time.time()))))
    assert response.status_code == 200 and response.content == b"echo-1234567"
    forged = client.get(URL, {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n", "echostr": "abc"})
    assert forged.status_code == 403


def test_a_url_verification_signed_long_ago_is_refused(client, settings):
    """A verification request captured once cannot be replayed later."""
    response = client.get(URL, _echo_query(settings, timestamp="1700000000"))
    assert response.status_code == 403 and b"echo" not in response.content


def test_an_event_is_stored_and_answered_success(client, db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, event_xml("change_contact", "create_user", UserID="zhangsan", Name="张三"))
    assert response.status_code == 200 and response.content == b"success"
    event = CallbackEvent.objects.get()
    assert (event.event, event.change_type, event.payload["UserID"]) == ("change_contact", "create_user", "zhangsan")
    assert event.status == "pending" and len(callbacks) == 1  # processing is queued after commit


def test_the_same_event_delivered_four_times_is_stored_once(client, db, django_capture_on_commit_callbacks):
    xml = event_xml("change_external_contact", "del_follow_user", UserID="li", ExternalUserID="wmABC",
                    CreateTime=1763900000)
    with django_capture_on_commit_callbacks() as callbacks:
        replies = [post(client, xml) for _ in range(4)]
    assert all(r.content == b"success" for r in replies)
    assert CallbackEvent.objects.count() == 1 and len(callbacks) == 1


@pytest.mark.parametrize("crypto", [{"token": "wrong-token"},
                                    {"aes_key": "ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkj"}])
def test_forged_or_ill_signed_callbacks_get_403_and_change_nothing(client, db, crypto):
    response = post(client, event_xml("change_contact", "delete_user", UserID="boss"), **crypto)
    assert response.status_code == 403
    assert not CallbackEvent.objects.exists()


def test_garbage_bodies_and_tampered_signatures_are_refused(client, db):
    query, body = signed_post(event_xml("change_contact", "delete_user", UserID="boss"))
    assert client.post(f"{URL}?{query}", b"not xml at all", content_type="text/xml").status_code == 403
    tampered = query.replace("msg_signature=", "msg_signature=0")
    assert client.post(f"{URL}?{tampered}", body, content_type="text/xml").status_code == 403
    assert client.post(URL, body, content_type="text/xml").status_code == 403
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10 * 365 * 86_400])
def test_a_correctly_signed_callback_outside_the_timestamp_window_is_refused(client, db, offset):
    """A replay of a captured event (or a clock far off) gets 403 and stores nothing, though the signature is right."""
    query, body = signed_post(event_xml("change_contact", "delete_user", UserID="boss"),
                              timestamp=int(time.time()) + offset)
    response = client.post(f"{URL}?{query}", body, content_type="text/xml")
    assert response.status_code == 403 and response.content == b"stale timestamp"
    assert not CallbackEvent.objects.exists()


@pytest.mark.parametrize("offset", [-290, 0, 290])
def test_a_callback_signed_within_the_window_is_stored(client, db, offset):
    """WeCom retries an unanswered event within seconds: a five-minute window loses none."""
    query, body = signed_post(event_xml("change_contact", "create_user", UserID="on-time"),
                              timestamp=int(time.time()) + offset)
    assert client.post(f"{URL}?{query}", body, content_type="text/xml").content == b"success"
    assert CallbackEvent.objects.filter(payload__UserID="on-time").count() == 1


def test_the_timestamp_window_is_a_setting(client, db, settings):
    settings.WECOM_CALLBACK_MAX_SKEW_SECONDS = 30
    query, body = signed_post(event_xml("change_contact", "create_user", UserID="late"),
                              timestamp=int(time.time()) - 60)
    assert client.post(f"{URL}?{query}", body, content_type="text/xml").status_code == 403


@pytest.mark.parametrize("timestamp", ["abc", "-5", "1.7e9", "１７００", "0017000000000"])
def test_a_callback_signed_over_a_timestamp_that_is_no_unix_time_is_refused(client, db, settings, timestamp):
    envelope = ElementTree.fromstring(_crypto(settings).encrypt_message(
        event_xml("change_contact", "delete_user", UserID="boss"), "nonce1", timestamp))
    body = f"<xml><Encrypt><![CDATA[{envelope.find('Encrypt').text}]]></Encrypt></xml>".encode()
    query = urlencode({"msg_signature": envelope.find("MsgSignature").text, "timestamp": timestamp,
                       "nonce": "nonce1"})
    assert client.post(f"{URL}?{query}", body, content_type="text/xml").status_code == 403
    assert not CallbackEvent.objects.exists()


def test_callbacks_are_verified_with_a_constant_time_comparison_not_wechatpys(client, db, monkeypatch):
    """wechatpy compares signatures with ``!=``; ours goes through hmac.compare_digest and never through it."""
    import hmac

    from wechatpy.crypto import BaseWeChatCrypto

    compared = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: compared.append(b) or real(a, b))
    monkeypatch.setattr(BaseWeChatCrypto, "_decrypt_message", lambda *a, **k: pytest.fail("wechatpy's check ran"))
    monkeypatch.setattr(BaseWeChatCrypto, "_check_signature", lambda *a, **k: pytest.fail("wechatpy's check ran"))
    query, body = signed_post(event_xml("change_contact", "delete_user", UserID="boss"))
    tampered = query.replace("msg_signature=", "msg_signature=f", 1)
    assert client.post(f"{URL}?{tampered}", body, content_type="text/xml").status_code == 403
    assert client.post(f"{URL}?{query}", body, content_type="text/xml").content == b"success"
    signature = dict(pair.split("=", 1) for pair in tampered.split("&"))["msg_signature"]
    assert signature.encode() in compared


def test_a_callback_body_over_the_cap_is_refused_before_it_is_read(client, db):
    query, _body = signed_post(event_xml("change_contact", "create_user", UserID="big"))
    response = client.post(f"{URL}?{query}", b"<xml>" + b"x" * 70_000 + b"</xml>", content_type="text/xml")
    assert response.status_code == 413 and not CallbackEvent.objects.exists()


def test_a_signed_message_that_is_not_an_event_is_rejected_as_malformed(client, db):
    response = post(client, "<xml><MsgType><![CDATA[text]]></MsgType><Content>hi</Content></xml>")
    assert response.status_code == 400
    assert not CallbackEvent.objects.exists()


@event_handler("test_event", "boom")
def _failing_handler(fields):
    raise RuntimeError("handler bug: " + fields["X"])


@event_handler("test_event", "ok")
def _ok_handler(fields):
    pass


def test_a_failing_handler_keeps_the_event_with_its_error_and_it_can_be_replayed(client, db, hq_admin, org,
                                                                               django_capture_on_commit_callbacks):
    post(client, event_xml("test_event", "boom", X="42"))
    event = CallbackEvent.objects.get()
    assert callback_event_process(event_id=event.pk) == "failed"
    event.refresh_from_db()
    assert event.status == "failed" and "handler bug: 42" in event.last_error and event.attempts == 1
    assert event.pk in callback_events_due()  # the beat job will retry it
    client.force_login(hq_admin)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("admin:wecom_callbackevent_changelist"),
                                {"action": "replay_selected", "_selected_action": [event.pk]}, follow=True)
    assert "已提交 1 个事件重新处理" in response.content.decode() and len(callbacks) == 1


def test_processing_twice_runs_the_handler_once(client, db):
    post(client, event_xml("test_event", "ok"))
    event = CallbackEvent.objects.get()
    assert callback_event_process(event_id=event.pk) == "done"
    assert callback_event_process(event_id=event.pk) == "done"
    event.refresh_from_db()
    assert event.attempts == 1


def test_an_event_nobody_handles_is_kept_as_ignored(client, db):
    post(client, event_xml("change_external_chat", "create", ChatId="wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"))
    event = CallbackEvent.objects.get()
    assert callback_event_process(event_id=event.pk) == "ignored"


def _wsgi_post(path: str, query: str, body: bytes, method: str = "POST",
               content_length: str | None = None) -> tuple[str, bytes]:
    """Call the production WSGI application (portal.wsgi) the way gunicorn does."""
    import io
    from wsgiref.util import setup_testing_defaults

    from portal.wsgi import application

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(body)) if content_length is None else content_length,
               "wsgi.input": io.BytesIO(body), "CONTENT_TYPE": "text/xml"}
    setup_testing_defaults(environ)
    seen = {}
    chunks = application(environ, lambda status, headers: seen.setdefault("status", status))
    return seen["status"], b"".join(chunks)


@pytest.fixture
def enqueued(monkeypatch):
    """The processing tasks callback_receive queues, recorded instead of sent.

    The fast-lane tests commit for real (transactional_db): a task sent to the broker would be run by
    the session's Celery worker, if an earlier test started it, while this test's teardown truncates
    the tables, and the two deadlock (the flush fails, its rows stay and the next test sees them).
    """
    sent = []
    monkeypatch.setattr("portal.wecom.views.enqueue_after_commit", lambda task, **kwargs: sent.append(kwargs))
    return sent


def test_the_wsgi_fast_lane_stores_once_and_refuses_forgeries(transactional_db, enqueued):
    xml = event_xml("change_contact", "create_user", UserID="fast", CreateTime=1763900001)
    for _ in range(2):
        query, body = signed_post(xml)
        assert _wsgi_post(URL, query, body) == ("200 OK", b"success")
    stored = CallbackEvent.objects.get(payload__UserID="fast")
    assert enqueued == [{"event_id": stored.pk}]  # processing queued once
    query, body = signed_post(xml, token="forged")
    assert _wsgi_post(URL, query, body)[0] == "403 Forbidden"
    assert _wsgi_post(URL, "", b"<xml>" + b"x" * 70_000 + b"</xml>")[0] == "413 Payload Too Large"
    assert _wsgi_post("/healthz", "", b"", method="GET")[0].startswith("200")  # everything else is Django's


@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "12 34", "٣"])
def test_the_fast_lane_answers_400_to_a_content_length_that_is_no_number(transactional_db, enqueued, length):
    query, body = signed_post(event_xml("change_contact", "create_user", UserID="fast"))
    assert _wsgi_post(URL, query, body, content_length=length) == ("400 Bad Request", b"bad content length")
    assert not CallbackEvent.objects.exists() and enqueued == []


def test_the_fast_lane_refuses_a_declared_length_over_the_cap_without_reading_it(transactional_db, enqueued):
    query, body = signed_post(event_xml("change_contact", "create_user", UserID="fast"))
    assert _wsgi_post(URL, query, body, content_length=str(10**12))[0] == "413 Payload Too Large"


# -- retention -------------------------------------------------------------------------------------------------
def _event_aged(status: str, days: int) -> None:
    event = CallbackEvent.objects.create(dedupe_key=f"{status}-{days}", event="change_contact", payload={},
                                         status=status)
    CallbackEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(days=days))


def test_processed_events_past_the_retention_are_purged_and_failed_ones_kept_much_longer(db):
    for status in ("done", "ignored", "failed", "pending", "processing"):
        for days in (1, 31, 181):
            _event_aged(status, days)
    deleted = callback_events_purge(processed_days=30, failed_days=180, batch=2)  # several batches
    assert deleted == 5
    assert sorted(CallbackEvent.objects.values_list("dedupe_key", flat=True)) == sorted(
        ["done-1", "ignored-1", "failed-1", "failed-31"] + [f"{s}-{d}" for s in ("pending", "processing")
                                                            for d in (1, 31, 181)])


def test_the_purge_runs_nightly_with_the_retention_settings(db, settings):
    from celery import current_app

    from portal.schedules import schedules_declared
    from portal.wecom.tasks import callbacks_purge_task

    schedule = {s.name: s for s in schedules_declared()}["wecom.callbacks_purge"]
    assert schedule.crontab and schedule.task in current_app.tasks
    settings.WECOM_CALLBACK_RETENTION_DAYS, settings.WECOM_CALLBACK_FAILED_RETENTION_DAYS = 7, 60
    _event_aged("done", 8)
    _event_aged("failed", 8)
    _event_aged("failed", 61)
    assert callbacks_purge_task() == 2
    assert list(CallbackEvent.objects.values_list("dedupe_key", flat=True)) == ["failed-8"]
