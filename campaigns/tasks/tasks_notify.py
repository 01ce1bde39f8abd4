"""Celery tasks of task notifications (campaigns/tasks/notify.py): the beat job that reminds, escalates and
sends what waited, and the update of a member's card after they tapped 收到. Thin and safe to run twice.
Imported at startup by campaigns/tasks/handlers.py."""

from __future__ import annotations

from portal.tasks import xiaoer_task
from portal.wecom.gateway import WeComRateLimited, WeComUnavailable


@xiaoer_task(name="campaigns.tasks.reminders")
def reminders_task() -> dict:
    from campaigns.tasks.notify import reminders_run

    run = reminders_run()
    return {"overdue": run.overdue, "reminders": run.reminders, "escalations": run.escalations,
            "sent": run.sent.sent, "deferred": run.sent.deferred, "failed": run.sent.failed,
            "skipped": run.sent.skipped, "calls": run.sent.calls}


@xiaoer_task(name="campaigns.tasks.card_update", autoretry_for=(WeComRateLimited, WeComUnavailable))
def card_update_task(*, response_code: str, userid: str, label: str) -> bool:
    from campaigns.tasks.notify import card_update

    return card_update(response_code=response_code, userid=userid, label=label)


@xiaoer_task(name="campaigns.tasks.nudge_send", autoretry_for=(WeComRateLimited, WeComUnavailable))
def nudge_send_task(*, assignment_id: int, at: int) -> bool:
    from campaigns.tasks.notify import assignment_nudge_send

    return assignment_nudge_send(assignment_id=assignment_id, at=at)
