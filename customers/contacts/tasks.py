"""Tasks of the contacts sync: thin, idempotent, each calling a service."""

from __future__ import annotations

from portal.tasks import enqueue_after_commit, xiaoer_task
from portal.wecom.models import SyncRun

# A task runs the full sync this long, then enqueues its own continuation: each task stays well under the
# broker's visibility timeout (3,600 s), so an acks_late redelivery never starts a second copy mid-run.
FULL_SYNC_SLICE_SECONDS = 600


@xiaoer_task()
def customers_sync_full_task() -> dict:
    from customers.contacts.services import customers_sync_full

    run = customers_sync_full(time_budget=FULL_SYNC_SLICE_SECONDS)
    if run is None:
        return {"status": "already running elsewhere"}
    if run.status == SyncRun.Status.RUNNING:
        enqueue_after_commit(customers_sync_full_task)
    return {"status": run.status, "pages": run.progress.get("pages"), "staff_done": run.progress.get("staff_done")}


@xiaoer_task()
def customers_reconcile_task() -> dict:
    from customers.contacts.services import customers_reconcile

    run = customers_reconcile()
    return {"status": run.status, **{k: v for k, v in run.progress.items() if k != "samples"}}
