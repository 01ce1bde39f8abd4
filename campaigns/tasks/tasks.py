"""Tasks of the task engine: notify after a dispatch, the beat jobs (schedules and recurrence, re-dispatch of
open tasks, overdue marking). Thin: each calls a service, and each is safe to run twice."""

from __future__ import annotations

from portal.tasks import xiaoer_task


@xiaoer_task(name="campaigns.tasks.notify")
def notify_task(*, task_id: int) -> int:
    """After a dispatch: hand the task to the registered notifiers (the WeCom one is wired in at merge)."""
    from campaigns.tasks.services import task_notify

    return task_notify(task_id=task_id)


@xiaoer_task(name="campaigns.tasks.beat")
def tasks_beat_task() -> dict:
    from campaigns.tasks.services import tasks_beat_run

    result = tasks_beat_run()
    return {"instances": result.instances, "dispatched": result.dispatched, "refused": len(result.refused)}


@xiaoer_task(name="campaigns.tasks.redispatch")
def tasks_redispatch_task() -> dict:
    from campaigns.tasks.services import tasks_redispatch_open

    result = tasks_redispatch_open()
    return {"stores": result.stores, "assignments": result.assignments}


@xiaoer_task(name="campaigns.tasks.overdue")
def assignments_overdue_task() -> int:
    from campaigns.tasks.services import assignments_overdue_mark

    return assignments_overdue_mark()


@xiaoer_task(name="campaigns.tasks.rollups_reconcile")
def task_rollups_reconcile_task() -> dict:
    """Nightly: the kept rollup counts recounted from the assignments (campaigns/tasks/reconcile.py)."""
    from campaigns.tasks.reconcile import task_rollups_reconcile

    result = task_rollups_reconcile()
    return {"tasks": result.tasks, "repaired": result.repaired, "removed": result.removed}
