"""Receiving WeCom callbacks: verify, decrypt, parse, store once. Processing happens in a task.

wechatpy 1.8.18 decrypts but does not parse ``change_external_contact`` and friends, so the
decrypted XML is parsed here into a flat dict of WeCom's own field names.

Verification is ours, not wechatpy's: wechatpy compares the signature with ``!=`` (its time leaks how
much of a forged signature is right) and has no timestamp window. Here the signature is compared in
constant time (``hmac.compare_digest``), then a signed timestamp further than
WECOM_CALLBACK_MAX_SKEW_SECONDS from our clock is refused: a captured request replayed later gets in
nowhere, and within the window the dedupe key stores it once. WeCom retries an unanswered event within
seconds, so a 5-minute window loses none. Only then is the message decrypted (wechatpy's PrpCrypto).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from xml.etree import ElementTree

from django.conf import settings
from django.db import connection
from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from portal.wecom.models import CallbackEvent


class CallbackRejected(Exception):
    """Forged, ill-signed or undecryptable: answer 403 and store nothing."""


class CallbackStale(CallbackRejected):
    """Correctly signed, but the signed timestamp is outside the window: a replay, or a clock far off."""


class CallbackMalformed(Exception):
    """Correctly signed but not an event we can read: answer 400 and store nothing."""


def callback_crypto() -> WeChatCrypto:
    return WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)


def callback_signature(*, token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """WeCom's msg_signature: SHA-1 of the token, timestamp, nonce and ciphertext, sorted and joined."""
    parts = sorted(str(part).encode("utf-8", "surrogateescape") for part in (token, timestamp, nonce, encrypt))
    return hashlib.sha1(b"".join(parts)).hexdigest()


_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def callback_verified_plaintext(*, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """The decrypted text of a signed ciphertext, or CallbackRejected (CallbackStale for the window)."""
    crypto = callback_crypto()
    expected = callback_signature(token=crypto.token, timestamp=timestamp, nonce=nonce, encrypt=encrypt)
    if not hmac.compare_digest(expected.encode(), str(msg_signature).encode("utf-8", "surrogateescape")):
        raise CallbackRejected("invalid signature")
    window = settings.WECOM_CALLBACK_MAX_SKEW_SECONDS
    if not _TIMESTAMP.fullmatch(timestamp or ""):
        raise CallbackStale(f"timestamp {timestamp[:20]!r} is not a Unix time")
    skew = int(time.time()) - int(timestamp)
    if abs(skew) > window:
        raise CallbackStale(f"timestamp {timestamp} is {skew:+d} s from our clock (window ±{window} s)")
    try:
        return PrpCrypto(crypto.key).decrypt(encrypt, crypto.corp_id)
    except Exception as exc:  # not our key or corp, bad padding, not base64: forged or corrupted
        raise CallbackRejected(f"undecryptable: {type(exc).__name__}") from exc


def callback_echo(*, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
    """URL verification (GET): the decrypted echostr, or CallbackRejected."""
    return callback_verified_plaintext(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce,
                                       encrypt=echostr)


def _envelope_ciphertext(body: bytes) -> str:
    """The <Encrypt> of WeCom's envelope (<xml><ToUserName/><AgentID/><Encrypt/></xml>)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise CallbackRejected(f"not an envelope: {exc}") from exc
    encrypt = root.findtext("Encrypt")
    if not encrypt:
        raise CallbackRejected("no Encrypt in the envelope")
    return encrypt.strip()


def callback_decrypt(*, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
    return callback_verified_plaintext(msg_signature=msg_signature, timestamp=timestamp, nonce=nonce,
                                       encrypt=_envelope_ciphertext(body))


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
    """Text for a leaf; a dict for nested elements, a repeated child becoming a list of its values
    (template_card_event's SelectedItems: several SelectedItem, each with several OptionId)."""
    children = list(element)
    if not children:
        return (element.text or "").strip()
    value: dict = {}
    for child in children:
        item = _element_value(child)
        if child.tag in value:
            existing = value[child.tag]
            value[child.tag] = (existing if isinstance(existing, list) else [existing]) + [item]
        else:
            value[child.tag] = item
    return value


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
    created = str(fields.get("CreateTime") or "")
    with connection.cursor() as cursor:
        cursor.execute(INBOX_INSERT_SQL, [
            key, fields["Event"][:64], (fields.get("ChangeType") or "")[:64],
            int(created) if created.isdigit() else None, json.dumps(fields, ensure_ascii=False),
        ])
        row = cursor.fetchone()
    return Stored(event_id=row[0] if row else None, dedupe_key=key)


__all__ = ["CallbackEvent", "CallbackMalformed", "CallbackRejected", "CallbackStale", "callback_decrypt",
           "callback_echo", "callback_store", "event_parse"]
