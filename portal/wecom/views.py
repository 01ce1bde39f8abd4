"""The one callback URL WeCom calls. Thin: verify, store, answer; a task does the work.

``callback_receive`` is the whole POST handling; the Django view and the WSGI fast lane
(portal/wecom/fastlane.py, which skips the middleware stack at 1,000+ events/s) both call it.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from portal.tasks import enqueue_after_commit
from portal.wecom.callbacks import (
    CallbackMalformed,
    CallbackRejected,
    CallbackStale,
    callback_decrypt,
    callback_echo,
    callback_store,
    event_parse,
)
from portal.wecom.tasks import callback_process_task

logger = logging.getLogger(__name__)
SIGNATURE_KEYS = ("msg_signature", "timestamp", "nonce")
MAX_BODY = 64 * 1024  # WeCom's encrypted events are a few KB


class BadContentLength(ValueError):
    pass


def content_length_parse(value) -> int:
    """A request's CONTENT_LENGTH as bytes to read (0 when absent), or BadContentLength (answer 400)."""
    text = str(value or "").strip()
    if not text:
        return 0
    if not text.isascii() or not text.isdigit():
        raise BadContentLength(text[:20])
    return int(text)


def callback_receive(*, query: dict[str, str], body: bytes) -> tuple[int, str]:
    """Verify, decrypt, store once, enqueue: (HTTP status, reply text). Never raises for bad input."""
    if len(body) > MAX_BODY:
        return 413, "too large"
    signature = {key: query.get(key, "") for key in SIGNATURE_KEYS}
    try:
        fields = event_parse(callback_decrypt(body=body, **signature))
    except CallbackStale as exc:
        logger.warning("wecom callback refused: %s", exc)
        return 403, "stale timestamp"
    except CallbackRejected as exc:
        logger.warning("wecom callback rejected: %s", exc)
        return 403, "invalid signature"
    except CallbackMalformed as exc:
        logger.warning("wecom callback malformed: %s", exc)
        return 400, "malformed event"
    # One autocommitted INSERT (no BEGIN/COMMIT round trips): stored once it returns, so the task is
    # sent right away. If the broker is down, the event waits in the inbox for callbacks_requeue_task.
    stored = callback_store(fields=fields)
    if stored.event_id is not None:
        enqueue_after_commit(callback_process_task, event_id=stored.event_id)
    return 200, "success"


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        signature = {key: request.GET.get(key, "") for key in SIGNATURE_KEYS}
        try:
            echo = callback_echo(echostr=request.GET.get("echostr", ""), **signature)
        except CallbackRejected as exc:
            logger.warning("wecom callback verification rejected: %s", exc)
            return HttpResponse("invalid signature", status=403, content_type="text/plain")
        return HttpResponse(echo, content_type="text/plain")
    try:  # refuse a body too large before reading it
        length = content_length_parse(request.META.get("CONTENT_LENGTH"))
    except BadContentLength:
        return HttpResponse("bad content length", status=400, content_type="text/plain")
    if length > MAX_BODY:
        return HttpResponse("too large", status=413, content_type="text/plain")
    status, text = callback_receive(query=request.GET.dict(), body=request.body)
    return HttpResponse(text, status=status, content_type="text/plain")
