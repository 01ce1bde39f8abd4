from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from portal.tasks import xiaoer_task


@xiaoer_task()
def callback_process_task(*, event_id: int, force: bool = False) -> str:
    from portal.wecom.events import callback_event_process

    return callback_event_process(event_id=event_id, force=force)


@xiaoer_task()
def callbacks_requeue_task() -> int:
    from portal.wecom.events import callback_events_due

    due = callback_events_due()
    for event_id in due:
        callback_process_task.apply_async(kwargs={"event_id": event_id})
    return len(due)


@xiaoer_task()
def calls_purge_task() -> int:
    from portal.wecom.models import WeComCall

    cutoff = timezone.now() - timedelta(days=settings.WECOM_CALL_LOG_DAYS)
    deleted, _ = WeComCall.objects.filter(at__lt=cutoff).delete()
    return deleted


@xiaoer_task()
def callbacks_purge_task() -> int:
    from portal.wecom.events import callback_events_purge

    return callback_events_purge(processed_days=settings.WECOM_CALLBACK_RETENTION_DAYS,
                                 failed_days=settings.WECOM_CALLBACK_FAILED_RETENTION_DAYS)


@xiaoer_task()
def app_message_receipts_purge_task() -> int:
    from portal.wecom.models import AppMessageReceipt

    cutoff = timezone.now() - timedelta(days=settings.WECOM_APP_MESSAGE_RECEIPT_DAYS)
    deleted, _ = AppMessageReceipt.objects.filter(sent_at__lt=cutoff).delete()
    return deleted
