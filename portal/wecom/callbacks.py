"""Receiving WeCom callbacks: verify, decrypt, parse, store once. Processing happens in a task.

wechatpy 1.8.18 decrypts but does not parse ``change_external_contact`` and friends, so the
decrypted XML is parsed here into a flat dict of WeCom's own field names.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from xml.etree import ElementTree

from django.conf import settings
from django.db import connection
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from portal.wecom.models import CallbackEvent


class CallbackRejected(Exception):
    """Forged, ill-signed or undecryptable: answer 403 and store nothing."""


class CallbackMalformed(Exception):
    """Correctly signed but not an event we can read: answer 400 and store nothing."""


def callback_crypto() -> WeChatCrypto:
    return WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)


def callback_echo(*, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    """URL verification (GET): the decrypted echostr, or CallbackRejected."""
    try:
        return callback_crypto().check_signature(msg_signature, timestamp, nonce, echostr)
    except (InvalidSignatureException, ValueError, TypeError, Exception) as exc:
        raise CallbackRejected(str(exc)) from exc


def callback_decrypt(*, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
    try:
        return callback_crypto().decrypt_message(body, msg_signature, timestamp, nonce)
    except Exception as exc:
        raise CallbackRejected(f"{type(exc).__name__}: {exc}") from exc


def event_parse(xml_text: str) -> dict[str, str]:
    """Flat dict of the event's fields; repeated or nested elements become lists/dicts."""
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as exc:
        raise CallbackMalformed(f"XML: {exc}") from exc
    fields: dict = {}
    for child in root:
        value = _element_value(child)
        if child.tag in fields:
            existing = fields[child.tag]
            fields[child.tag] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            fields[child.tag] = value
    if fields.get("MsgType") != "event" or not fields.get("Event"):
        raise CallbackMalformed("not an event")
    return fields


def _element_value(element):
    children = list(element)
    if not children:
        return (element.text or "").strip()
    return {child.tag: _element_value(child) for child in children}


def event_dedupe_key(fields: dict) -> str:
    """The same event delivered again (WeCom retries, duplicates) has the same fields."""
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    event_id: int | None  # None: a duplicate, already stored
    dedupe_key: str


INBOX_INSERT_SQL = """
INSERT INTO wecom_callbackevent
    (received_at, dedupe_key, event, change_type, created_time, payload, status, attempts, last_error)
VALUES (now(), %s, %s, %s, %s, %s, 'pending', 0, '')
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""


def callback_store(*, fields: dict) -> Stored:
    """INSERT … ON CONFLICT DO NOTHING: a duplicate returns event_id None and changes nothing."""
    key = event_dedupe_key(fields)
    created = fields.get("CreateTime")
    with connection.cursor() as cursor:
        cursor.execute(INBOX_INSERT_SQL, [
            key, fields["Event"][:64], (fields.get("ChangeType") or "")[:64],
            int(created) if str(created or "").isdigit() else None, json.dumps(fields, ensure_ascii=False),
        ])
        row = cursor.fetchone()
    return Stored(event_id=row[0] if row else None, dedupe_key=key)


__all__ = ["CallbackEvent", "CallbackMalformed", "CallbackRejected", "callback_decrypt", "callback_echo",
           "callback_store", "event_parse"]
