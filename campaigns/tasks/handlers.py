"""WeCom events of the task engine: a member's tap on a task card (template_card_event, task_id xtask-…), and
the WeCom notifier plugged into the engine's notification hook. Imported at startup (portal/subjects.py)."""

from __future__ import annotations

from campaigns.tasks import tasks_notify  # noqa: F401  (registers the notification tasks)
from campaigns.tasks.notify import CARD_PREFIX, assignment_nudge_queue, card_clicked, task_notices_notify
from campaigns.tasks.services import assignment_nudger_register, task_notifier_register
from portal.wecom.app_messages import template_card_listen


def _card_clicked(click) -> None:
    card_clicked(click)


template_card_listen(task_id_prefix=CARD_PREFIX, handler=_card_clicked)
task_notifier_register(name="wecom", notifier=task_notices_notify)
assignment_nudger_register(name="wecom", nudger=assignment_nudge_queue)
