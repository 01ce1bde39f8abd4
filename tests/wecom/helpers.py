"""Build callbacks exactly as WeCom sends them (the sandbox's own builder): encrypted XML, signed query."""

from __future__ import annotations

from django.conf import settings

from wecom_sandbox.callbacks import CorpSecrets, signed_envelope
from wecom_sandbox.callbacks import event_xml as _event_xml


def event_xml(event: str, change_type: str = "", **fields) -> str:
    return _event_xml(corp_id=settings.WECOM_CORP_ID, event=event, change_type=change_type,
                      create_time=fields.pop("CreateTime", None), **fields)


def signed_post(xml: str, *, token: str | None = None, aes_key: str | None = None,
                timestamp: int | None = None) -> tuple[str, bytes]:
    """(query string, body) of a POST WeCom would make for this event (signed now, or at ``timestamp``)."""
    corp = CorpSecrets(corp_id=settings.WECOM_CORP_ID, app_secret="", contact_secret="",
                       agent_id=settings.WECOM_AGENT_ID, token=token or settings.WECOM_TOKEN,
                       aes_key=aes_key or settings.WECOM_AES_KEY)
    return signed_envelope(xml, corp=corp, timestamp=timestamp)
