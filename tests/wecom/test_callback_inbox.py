"""WeCom callbacks: nothing received is lost, nothing forged gets in, duplicates are stored once."""

from __future__ import annotations

import pytest
from django.urls import reverse
from wechatpy.enterprise.crypto import WeChatCrypto

from portal.wecom.events import callback_event_process, callback_events_due, event_handler
from portal.wecom.models import CallbackEvent
from tests.wecom.helpers import event_xml, signed_post

URL = "/wecom/callback/"


def post(client, xml: str, **crypto):
    query, body = signed_post(xml, **crypto)
    return client.post(f"{URL}?{query}", body, content_type="text/xml")


def test_url_verification_echoes_the_decrypted_echostr(client, settings):
    crypto = WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)
    from xml.etree import ElementTree

    envelope = ElementTree.fromstring(crypto.encrypt_message("echo-1234567", "nonce1", "1700000000"))
    response = client.get(URL, {"msg_signature": envelope.find("MsgSignature").text, "timestamp": "1700000000",
                                "nonce": "nonce1", "echostr": envelope.find("Encrypt").text})
    assert response.status_code == 200 and response.content == b"echo-1234567"
    forged = client.get(URL, {"msg_signature": "0" * 40, "timestamp": "1", "nonce": "n", "echostr": "abc"})
    assert forged.status_code == 403


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


def _wsgi_post(path: str, query: str, body: bytes, method: str = "POST") -> tuple[str, bytes]:
    """Call the production WSGI application (portal.wsgi) the way gunicorn does."""
    import io
    from wsgiref.util import setup_testing_defaults

    from portal.wsgi import application

    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "CONTENT_TYPE": "text/xml"}
    setup_testing_defaults(environ)
    seen = {}
    chunks = application(environ, lambda status, headers: seen.setdefault("status", status))
    return seen["status"], b"".join(chunks)


def test_the_wsgi_fast_lane_stores_once_and_refuses_forgeries(transactional_db):
    xml = event_xml("change_contact", "create_user", UserID="fast", CreateTime=1763900001)
    for _ in range(2):
        query, body = signed_post(xml)
        assert _wsgi_post(URL, query, body) == ("200 OK", b"success")
    assert CallbackEvent.objects.filter(payload__UserID="fast").count() == 1
    query, body = signed_post(xml, token="forged")
    assert _wsgi_post(URL, query, body)[0] == "403 Forbidden"
    assert _wsgi_post(URL, "", b"<xml>" + b"x" * 70_000 + b"</xml>")[0] == "413 Payload Too Large"
    assert _wsgi_post("/healthz", "", b"", method="GET")[0].startswith("200")  # everything else is Django's
