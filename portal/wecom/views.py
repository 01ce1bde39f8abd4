"""The one callback URL WeCom calls. Thin: verify, store, answer; a task does the work."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from portal.tasks import enqueue_after_commit
from portal.wecom.callbacks import (
    CallbackMalformed,
    CallbackRejected,
    callback_decrypt,
    callback_echo,
    callback_store,
    event_parse,
)

logger = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request: HttpRequest) -> HttpResponse:
    signature = {key: request.GET.get(key, "") for key in ("msg_signature", "timestamp", "nonce")}
    try:
        if request.method == "GET":
            return HttpResponse(callback_echo(echostr=request.GET.get("echostr", ""), **signature),
                                content_type="text/plain")
        fields = event_parse(callback_decrypt(body=request.body, **signature))
    except CallbackRejected as exc:
        logger.warning("wecom callback rejected: %s", exc)
        return HttpResponseForbidden("invalid signature")
    except CallbackMalformed as exc:
        logger.warning("wecom callback malformed: %s", exc)
        return HttpResponseBadRequest("malformed event")
    from portal.wecom.tasks import callback_process_task

    # One autocommitted INSERT (no BEGIN/COMMIT round trips): stored once it returns, so the task is
    # sent right away. If the broker is down, the event waits in the inbox for callbacks_requeue_task.
    stored = callback_store(fields=fields)
    if stored.event_id is not None:
        enqueue_after_commit(callback_process_task, event_id=stored.event_id)
    return HttpResponse("success", content_type="text/plain")
