"""No secret, token or OAuth code in any text we store, raise, show or log, even when WeCom cannot be reached.

A failed connection's message names the URL it was fetching, query string included: during a token fetch
``gettoken?corpid=…&corpsecret=<secret>``, afterwards ``…&access_token=<token>``, for the mobile sign-in
``auth/getuserinfo?code=<code>``. These tests make every connection fail (WECOM_BASE_URL on a loopback
port nobody listens on), drive the paths that keep WeCom's errors (the call log, welcome deliveries,
contact-way codes, sync runs, callback events, admin messages), then search every text column of every
model, the exceptions and the logs for each credential in every form it travels in.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, quote_plus

import pytest
from django.apps import apps
from django.db import models
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils import timezone

from customers.acquisition.services import contact_ways_deactivate
from customers.acquisition.welcome import welcome_send
from customers.models import ContactWay, WelcomeDelivery, WelcomeMessage
from portal.embedded import free_port
from portal.wecom.callbacks import callback_store
from portal.wecom.events import callback_event_process
from portal.wecom.gateway import WeComError, WeComUnavailable, wecom_call, wecom_client
from portal.wecom.models import CallbackEvent, SyncRun, WeComCall
from portal.wecom.oauth import oauth_userid
from portal.wecom.redaction import SecretsRedactingFilter, text_redact
from stores.org.addressbook import addressbook_sync_full
from tests.factories import contact_way_in, relationship_in

# Characters a URL percent-encodes, so the encoded form is searched for as well as the raw one.
SECRET = "app-Secret+of/the=corp-0042"
CONTACT_SECRET = "contact-Secret-0099"
TOKEN = "tok-cached-access-token-7Qz"
CODE = "oauth-one-time-code-5Kx"


def _forms(*values: str) -> set[str]:
    return {form for value in values for form in (value, quote(value, safe=""), quote_plus(value))}


CREDENTIALS = _forms(SECRET, CONTACT_SECRET, TOKEN, CODE)


def _tokens(*, cached: str | None) -> None:
    """Forget the shared access tokens (the next call fetches one), or cache ``cached`` as both."""
    for kind in ("app", "contact"):
        client = wecom_client(secret_kind=kind)
        if cached:
            client.session.set(client.access_token_key, cached, 7200)
        else:
            client.session.delete(client.access_token_key)


@pytest.fixture
def unreachable_wecom(settings):
    """Our corp's credentials, and WeCom behind a loopback port nobody listens on: every connection is refused."""
    settings.WECOM_SECRET, settings.WECOM_CONTACT_SECRET = SECRET, CONTACT_SECRET
    settings.WECOM_BASE_URL = f"http://127.0.0.1:{free_port()}/cgi-bin/"
    settings.WECOM_MAX_ATTEMPTS, settings.WECOM_BACKOFF_SECONDS = 2, 0.01
    _tokens(cached=None)
    yield settings
    _tokens(cached=None)  # the next test fetches a real token from the sandbox


def stored_texts_containing(needles: set[str]) -> list[str]:
    """'app_label.Model.field' for every text (char, text, JSON) column of any model holding any needle."""
    hits = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = [f for f in model._meta.concrete_fields
                  if isinstance(f, models.CharField | models.TextField | models.JSONField)]
        for field in fields:
            column = field.attname
            queryset = model._base_manager.all()
            if isinstance(field, models.JSONField):
                queryset = queryset.annotate(_as_text=Cast(column, TextField()))
                column = "_as_text"
            condition = Q()
            for needle in needles:
                condition |= Q(**{f"{column}__contains": needle})
            if queryset.filter(condition).exists():
                hits.append(f"{model._meta.label}.{field.name}")
    return hits


def _leaks(text: str) -> list[str]:
    return sorted(form for form in CREDENTIALS if form in text)


def test_a_token_fetch_that_cannot_connect_records_and_raises_no_secret(unreachable_wecom, db):
    for kind in ("app", "contact"):
        with pytest.raises(WeComUnavailable) as caught:
            wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test", secret_kind=kind)
        assert "gettoken" in caught.value.errmsg and "refused" in caught.value.errmsg  # what failed, and why
        assert _leaks(str(caught.value)) == [] and _leaks(caught.value.errmsg) == []
    assert WeComCall.objects.filter(errcode=-999).count() == 2
    assert stored_texts_containing(CREDENTIALS) == []


def test_a_call_with_a_cached_token_that_cannot_connect_records_no_token(unreachable_wecom, db):
    _tokens(cached=TOKEN)
    with pytest.raises(WeComUnavailable) as caught:
        wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test")
    assert "user/get" in caught.value.errmsg and _leaks(str(caught.value)) == []
    assert stored_texts_containing(CREDENTIALS) == []


def test_an_oauth_code_is_neither_in_the_call_record_nor_in_the_error(unreachable_wecom, db):
    _tokens(cached=TOKEN)
    with pytest.raises(WeComUnavailable) as caught:
        oauth_userid(code=CODE)
    assert _leaks(str(caught.value)) == []
    record = WeComCall.objects.get(endpoint="auth/getuserinfo")
    assert '"code": "***"' in record.request_summary
    assert stored_texts_containing(CREDENTIALS) == []


def test_what_store_managers_and_operators_read_about_wecom_failures_holds_no_secret(unreachable_wecom, org,
                                                                                    hq_admin, client):
    """Welcome deliveries, contact-way codes, sync runs, callback events and admin messages."""
    welcome = WelcomeMessage.objects.create(name="欢迎语", text="你好，{客户昵称}")
    delivery = welcome_send(relationship=relationship_in(org.store_a), welcome=welcome, welcome_code="wc-1",
                            event_at=timezone.now())
    way = contact_way_in(org.store_a)
    ContactWay.objects.filter(pk=way.pk).update(config_id="cfg-unreachable")
    contact_ways_deactivate(ways=ContactWay.objects.filter(pk=way.pk))
    run = addressbook_sync_full()
    event = callback_store(fields={"MsgType": "event", "Event": "change_contact", "ChangeType": "create_user",
                                   "UserID": "a-unreachable", "CreateTime": "1763900000"})
    callback_event_process(event_id=event.event_id)
    client.force_login(hq_admin)
    page = client.post(reverse("admin:customers_taggroup_pull"), follow=True).content.decode()

    delivery.refresh_from_db()
    assert delivery.status == WelcomeDelivery.Status.FAILED and "企业微信暂时无法访问" in delivery.reason
    assert ContactWay.objects.get(pk=way.pk).last_error
    assert run.status == SyncRun.Status.FAILED and run.error
    assert CallbackEvent.objects.get(pk=event.event_id).status == CallbackEvent.Status.FAILED
    assert "同步失败" in page and _leaks(page) == []
    assert stored_texts_containing(CREDENTIALS) == []


def test_no_credential_reaches_the_logs_urllib3_and_wechatpy_included(unreachable_wecom, db, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    _tokens(cached=None)
    with pytest.raises(WeComUnavailable):
        wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test")
    _tokens(cached=TOKEN)
    with pytest.raises(WeComUnavailable):
        oauth_userid(code=CODE)
    # A WeCom that answers: urllib3 logs each request line, gettoken's query string included.
    from django.conf import settings

    unreachable_wecom.WECOM_BASE_URL = settings.XIAOER_SANDBOX_URL.rstrip("/") + "/cgi-bin/"
    _tokens(cached=None)
    with pytest.raises(WeComError) as refused:  # the sandbox does not know this secret
        wecom_call("user/get", method="get", params={"userid": "zhangsan"}, caller="test")
    assert refused.value.errcode == 40001
    assert any("gettoken?corpid=" in record.getMessage() for record in caplog.records)  # the line was logged
    assert _leaks(caplog.text) == []
    assert _leaks(capfd.readouterr().err) == []  # what the console handler wrote


def test_every_configured_log_handler_redacts():
    root = logging.getLogger()
    configured = [h for h in root.handlers if type(h).__module__ != "_pytest.logging"]
    assert configured and all(any(isinstance(f, SecretsRedactingFilter) for f in h.filters) for h in configured)


def test_the_configured_secrets_are_masked_wherever_they_appear(settings):
    settings.WECOM_SECRET, settings.WECOM_AES_KEY = SECRET, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    text = text_redact(f"secret {SECRET}, encoded {quote(SECRET, safe='')}, aes {settings.WECOM_AES_KEY}; "
                       f"errcode=40029&code={CODE}; {{'access_token': '{TOKEN}'}}; "
                       f"next=%2Fm%2F%3Fcode%3D{CODE}%26state%3D1")
    assert _leaks(text) == [] and settings.WECOM_AES_KEY not in text
    assert "errcode=40029" in text  # a name that only ends like a sensitive one is kept


def test_a_log_record_carrying_a_secret_in_its_arguments_and_traceback_is_cleaned(settings):
    settings.WECOM_SECRET = SECRET
    try:
        raise RuntimeError(f"GET /cgi-bin/gettoken?corpid=ww&corpsecret={quote_plus(SECRET)}")
    except RuntimeError:
        import sys

        record = logging.LogRecord("urllib3", logging.ERROR, __file__, 1, "failed: %s %s", (SECRET, TOKEN),
                                   sys.exc_info())
    assert SecretsRedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "failed:" in formatted and SECRET not in formatted and quote_plus(SECRET) not in formatted


def test_a_celery_workers_own_log_handlers_redact_too():
    """A worker replaces the root logger's handlers with its own (worker_hijack_root_logger)."""
    from celery import signals

    logger, handler = logging.getLogger("tests.celery_worker_root"), logging.StreamHandler()
    logger.addHandler(handler)
    try:
        signals.after_setup_logger.send(sender=None, logger=logger, loglevel=logging.INFO, logfile=None,
                                        format="", colorize=False)
        assert any(isinstance(f, SecretsRedactingFilter) for f in handler.filters)
    finally:
        logger.removeHandler(handler)
