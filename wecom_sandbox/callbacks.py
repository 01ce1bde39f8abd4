"""Callbacks as WeCom sends them: encrypted XML, signed query, retried until the portal says ``success``.

Deliveries run on background threads: one by default (in order), or ``concurrency`` at once as
WeCom does under load (then order is not guaranteed, as with WeCom). The config can duplicate every
delivery, or hold them until ``release`` sends them reversed or shuffled (to prove the portal
converges whatever the order).
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from wechatpy.enterprise.crypto import WeChatCrypto

logger = logging.getLogger("sandbox.callbacks")


@dataclass(frozen=True)
class CorpSecrets:
    corp_id: str
    app_secret: str
    contact_secret: str
    agent_id: str
    token: str
    aes_key: str


def _xml_value(value) -> str:
    """A field's XML: a dict nests elements, a list inside a dict repeats its element (WeCom's SelectedItems:
    {"SelectedItem": [{"QuestionKey": "q", "OptionIds": {"OptionId": ["a", "b"]}}]}), numbers go bare."""
    if isinstance(value, dict):
        return "".join(f"<{k}>{_xml_value(item)}</{k}>" for k, v in value.items()
                       for item in (v if isinstance(v, list) else [v]))
    if isinstance(value, int | float):
        return str(value)
    return f"<![CDATA[{value}]]>"


def event_xml(*, corp_id: str, event: str, change_type: str = "", create_time: int | None = None,
              from_user: str = "sys", **fields) -> str:
    """The plaintext XML of an event, field names exactly as WeCom's documentation spells them.

    FromUserName is "sys" for the contact events, the member for a member's own action
    (``template_card_event``: the userid who clicked)."""
    parts = [f"<ToUserName>{_xml_value(corp_id)}</ToUserName>", f"<FromUserName>{_xml_value(from_user)}</FromUserName>",
             f"<CreateTime>{int(create_time if create_time is not None else time.time())}</CreateTime>",
             "<MsgType><![CDATA[event]]></MsgType>", f"<Event>{_xml_value(event)}</Event>"]
    if change_type:
        parts.append(f"<ChangeType>{_xml_value(change_type)}</ChangeType>")
    for key, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            parts.append(f"<{key}>{_xml_value(item)}</{key}>")
    return "<xml>" + "".join(parts) + "</xml>"


def _child_text(root: ElementTree.Element, tag: str) -> str:
    element = root.find(tag)
    if element is None or element.text is None:
        raise ValueError(f"wechatpy's encrypted envelope has no {tag}")
    return element.text


def signed_envelope(xml: str, *, corp: CorpSecrets, timestamp: int | None = None) -> tuple[str, bytes]:
    """(query string, body) of the POST WeCom makes for this plaintext event."""
    crypto = WeChatCrypto(corp.token, corp.aes_key, corp.corp_id)
    nonce, stamp = uuid.uuid4().hex[:10], str(int(timestamp if timestamp is not None else time.time()))
    envelope = ElementTree.fromstring(crypto.encrypt_message(xml, nonce, stamp))
    body = (f"<xml><ToUserName><![CDATA[{escape(corp.corp_id)}]]></ToUserName>"
            f"<AgentID><![CDATA[{escape(corp.agent_id)}]]></AgentID>"
            f"<Encrypt><![CDATA[{_child_text(envelope, 'Encrypt')}]]></Encrypt></xml>").encode()
    query = urlencode({"msg_signature": _child_text(envelope, "MsgSignature"), "timestamp": stamp, "nonce": nonce})
    return query, body


class CallbackSender:
    """Queue of events to deliver to the portal's callback URL."""

    def __init__(self, *, corp: CorpSecrets, config: dict, clock, concurrency: int = 1):
        self.corp = corp
        self.config = config  # live view of the sandbox's config dict
        self.clock = clock
        self._queue: collections.deque[str] = collections.deque()
        self._held: list[str] = []
        self._cond = threading.Condition()
        self._busy = 0
        self._generation = 0  # bumped by clear(): a delivery started before a reset does not count after it
        self.log: collections.deque[dict] = collections.deque(maxlen=5000)
        self.stats = {"emitted": 0, "delivered": 0, "failed": 0, "attempts": 0}
        for n in range(max(1, concurrency)):
            threading.Thread(target=self._run, name=f"sandbox-callbacks-{n}", daemon=True).start()

    def emit(self, event: str, change_type: str = "", *, from_user: str = "sys", **fields) -> str:
        xml = event_xml(corp_id=self.corp.corp_id, event=event, change_type=change_type,
                        create_time=int(self.clock()), from_user=from_user, **fields)
        copies = max(1, int(self.config.get("callback_duplicate", 1)))
        with self._cond:  # stats are shared by the delivery threads: counted under the lock
            self.stats["emitted"] += 1
            target = self._held if self.config.get("callback_hold") else self._queue
            target.extend([xml] * copies)
            self._cond.notify_all()
        return xml

    def clear(self) -> None:
        """Forget queued, held and logged deliveries (a reset sandbox)."""
        with self._cond:
            self._generation += 1
            self._queue.clear()
            self._held.clear()
            self.log.clear()
            self.stats.update({key: 0 for key in self.stats})

    def release(self, *, order: str = "fifo") -> int:
        """Send held events: ``fifo``, ``reverse`` or ``shuffle``."""
        with self._cond:
            held, self._held = self._held, []
            if order == "reverse":
                held.reverse()
            elif order == "shuffle":
                random.shuffle(held)
            self._queue.extend(held)
            self._cond.notify_all()
            return len(held)

    def drain(self, *, timeout: float = 30.0) -> bool:
        """Wait until nothing is queued or being delivered (held events stay held)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def pending(self) -> dict:
        with self._cond:
            return {"queued": len(self._queue), "held": len(self._held), "busy": bool(self._busy)}

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                xml = self._queue.popleft()
                self._busy += 1
                generation = self._generation
            try:
                self._deliver(xml, generation)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, xml: str, generation: int) -> None:
        url = self.config.get("callback_url")
        entry: dict[str, Any] = {"at": time.time(), "xml": xml, "attempts": 0, "outcome": "no callback_url"}
        if url:
            for _ in range(1 + int(self.config.get("callback_retries", 3))):
                if generation != self._generation:  # reset meanwhile: stop retrying a forgotten event
                    break
                entry["attempts"] += 1
                with self._cond:
                    if generation == self._generation:
                        self.stats["attempts"] += 1
                entry["outcome"] = self._post_once(url, xml)
                if entry["outcome"] == "success":
                    break
        with self._cond:
            if generation != self._generation:
                return  # the sandbox was reset during this delivery: its counts and log start afresh
            self.stats["delivered" if entry["outcome"] == "success" else "failed"] += 1
            self.log.append(entry)

    def _post_once(self, url: str, xml: str) -> str:
        query, body = signed_envelope(xml, corp=self.corp)
        request = urllib.request.Request(f"{url}{'&' if '?' in url else '?'}{query}", data=body, method="POST",
                                         headers={"Content-Type": "text/xml"})
        try:
            with urllib.request.urlopen(request, timeout=float(self.config.get("callback_timeout", 5))) as resp:
                text = resp.read().decode("utf-8", "replace").strip()
                return "success" if text == "success" else f"answered {text[:60]!r}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except OSError as exc:  # refused, timed out
            return f"{type(exc).__name__}: {exc}"[:200]
