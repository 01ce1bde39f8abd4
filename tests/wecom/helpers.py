"""Build callbacks exactly as WeCom sends them: encrypted XML, signed query string."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlencode
from xml.etree import ElementTree

from django.conf import settings
from wechatpy.enterprise.crypto import WeChatCrypto


def event_xml(event: str, change_type: str = "", **fields) -> str:
    parts = [f"<ToUserName><![CDATA[{settings.WECOM_CORP_ID}]]></ToUserName>",
             "<FromUserName><![CDATA[sys]]></FromUserName>",
             f"<CreateTime>{fields.pop('CreateTime', int(time.time()))}</CreateTime>",
             "<MsgType><![CDATA[event]]></MsgType>", f"<Event><![CDATA[{event}]]></Event>"]
    if change_type:
        parts.append(f"<ChangeType><![CDATA[{change_type}]]></ChangeType>")
    parts += [f"<{key}><![CDATA[{value}]]></{key}>" for key, value in fields.items()]
    return "<xml>" + "".join(parts) + "</xml>"


def signed_post(xml: str, *, token: str | None = None, aes_key: str | None = None) -> tuple[str, bytes]:
    """(query string, body) of a POST WeCom would make for this event."""
    crypto = WeChatCrypto(token or settings.WECOM_TOKEN, aes_key or settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)
    nonce, timestamp = uuid.uuid4().hex[:10], str(int(time.time()))
    envelope = ElementTree.fromstring(crypto.encrypt_message(xml, nonce, timestamp))
    encrypted = envelope.find("Encrypt").text
    signature = envelope.find("MsgSignature").text
    body = (f"<xml><ToUserName><![CDATA[{settings.WECOM_CORP_ID}]]></ToUserName>"
            f"<AgentID><![CDATA[{settings.WECOM_AGENT_ID}]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    return urlencode({"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}), body
