"""Processing stored callback events with handlers registered by the app that owns each event.

    @event_handler("change_contact", "create_user")      # in stores/org/handlers.py
    def member_created(fields: dict) -> None: ...

``portal`` never imports the apps: they register in their AppConfig.ready().
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from portal.registry import registry_add
from portal.tasks import enqueue_after_commit
from portal.wecom.models import CallbackEvent
from portal.wecom.redaction import text_redact
from portal.wecom.tasks import callback_process_task

Handler = Callable[[dict], None]
_HANDLERS: dict[tuple[str, str], Handler] = {}
MAX_AUTOMATIC_ATTEMPTS = 5


def event_handler(event: str, change_type: str = "*"):
    def register(func: Handler) -> Handler:
        registry_add(_HANDLERS, (event, change_type), func, what="WeCom event handler")
        return func

    return register


def handler_for(event: str, change_type: str) -> Handler | None:
    return _HANDLERS.get((event, change_type)) or _HANDLERS.get((event, "*"))


def _claim(event_id: int, *, force: bool) -> CallbackEvent | None:
    """Conditional UPDATE: two workers never process the same event at once."""
    states = ["pending", "failed"] + (["done", "ignored"] if force else [])
    claimed = CallbackEvent.objects.filter(pk=event_id, status__in=states).update(
        status=CallbackEvent.Status.PROCESSING, attempts=F("attempts") + 1, claimed_at=timezone.now(),
        processed_at=None)
    return CallbackEvent.objects.get(pk=event_id) if claimed else None


def callback_event_process(*, event_id: int, force: bool = False) -> str:
    """Run the event's handler. Safe to call twice; returns the final status."""
    event = _claim(event_id, force=force)
    if event is None:
        return CallbackEvent.objects.filter(pk=event_id).values_list("status", flat=True).first() or "missing"
    handler = handler_for(event.event, event.change_type)
    if handler is None:
        status, error = CallbackEvent.Status.IGNORED, ""
    else:
        try:
            with transaction.atomic():
                handler(event.payload)
            status, error = CallbackEvent.Status.DONE, ""
        except Exception:
            # Shown in the admin: a handler's exception may name a URL with its credentials.
            status, error = CallbackEvent.Status.FAILED, text_redact(traceback.format_exc(limit=8))[-4000:]
    CallbackEvent.objects.filter(pk=event.pk).update(status=status, last_error=error, processed_at=timezone.now())
    return status


def callback_events_due(*, stuck_after: timedelta = timedelta(minutes=10),
                        pending_after: timedelta = timedelta(minutes=1)) -> list[int]:
    """Events a worker should (re)try: pending for a while, failed under the attempt cap, or stuck."""
    now = timezone.now()
    due = CallbackEvent.objects.filter(
        Q(status=CallbackEvent.Status.PENDING, received_at__lt=now - pending_after)
        | Q(status=CallbackEvent.Status.FAILED, attempts__lt=MAX_AUTOMATIC_ATTEMPTS)
        | Q(status=CallbackEvent.Status.PROCESSING, claimed_at__lt=now - stuck_after)
    )
    due.filter(status=CallbackEvent.Status.PROCESSING).update(status=CallbackEvent.Status.PENDING)
    return list(due.order_by("received_at").values_list("pk", flat=True)[:5000])


def callback_events_replay(*, event_ids: list[int]) -> int:
    """Queue the given events to be processed again (after a fix, or to re-apply them)."""
    ids = list(CallbackEvent.objects.filter(pk__in=event_ids).exclude(status=CallbackEvent.Status.PROCESSING)
               .values_list("pk", flat=True))
    for event_id in ids:
        enqueue_after_commit(callback_process_task, event_id=event_id, force=True)
    return len(ids)


# One batch per statement: a short lock on a few thousand rows at a time, never one huge DELETE. The
# status and age are checked again on each locked row, so an event a replay has just claimed stays.
PURGE_BATCH_SQL = """
WITH doomed AS (
    SELECT id FROM wecom_callbackevent
    WHERE status = ANY(%(statuses)s) AND received_at < %(cutoff)s
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM wecom_callbackevent e USING doomed WHERE e.id = doomed.id
"""
PURGE_BATCH = 5000


def _purge_older(*, statuses: list[str], cutoff, batch: int) -> int:
    from django.db import connection

    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(PURGE_BATCH_SQL, {"statuses": statuses, "cutoff": cutoff, "batch": batch})
            count = cursor.rowcount
        deleted += count
        if count < batch:
            return deleted


def callback_events_purge(*, processed_days: int, failed_days: int, batch: int = PURGE_BATCH) -> int:
    """Delete events past their retention: done or ignored after ``processed_days``, failed after
    ``failed_days`` (kept for a replay after a fix). Pending and processing events are never purged."""
    now = timezone.now()
    finished = [CallbackEvent.Status.DONE, CallbackEvent.Status.IGNORED]
    return (_purge_older(statuses=[str(s) for s in finished], cutoff=now - timedelta(days=processed_days),
                         batch=batch)
            + _purge_older(statuses=[str(CallbackEvent.Status.FAILED)], cutoff=now - timedelta(days=failed_days),
                           batch=batch))
