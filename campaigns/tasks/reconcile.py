"""The kept rollup counts (TaskStoreCount) checked against the assignments, and repaired (writes).

The triggers of migration 0003_rollups keep the counts in the same transaction as every assignment change, so
they should never drift; this job proves it nightly (and repairs a row restored from a backup, a trigger dropped
by hand, a row written with triggers disabled). It takes a SHARE lock on the assignments for one task at a time:
writers wait a few milliseconds, and the recount sees everything committed before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from campaigns.tasks.models import Task, TaskStatus

COLUMNS = ("dispatched", "notified", "confirmed", "done", "on_time", "open", "excused", "rejected")

RECONCILE_SQL = """
WITH truth AS (
    SELECT a.task_id, a.store_id,
        count(*) FILTER (WHERE a.status <> 'withdrawn') AS dispatched,
        count(*) FILTER (WHERE a.status <> 'withdrawn' AND (a.notified_at IS NOT NULL OR a.confirmed_at IS NOT NULL
                                                           OR a.done_at IS NOT NULL)) AS notified,
        count(*) FILTER (WHERE a.status <> 'withdrawn' AND (a.confirmed_at IS NOT NULL
                                                           OR a.done_at IS NOT NULL)) AS confirmed,
        count(*) FILTER (WHERE a.status = 'done') AS done,
        count(*) FILTER (WHERE a.status = 'done' AND a.done_at <= t.deadline) AS on_time,
        count(*) FILTER (WHERE a.status IN ('pending', 'notified', 'confirmed', 'reopened', 'overdue')) AS open,
        count(*) FILTER (WHERE a.status = 'excused') AS excused,
        count(*) FILTER (WHERE a.status = 'rejected') AS rejected
    FROM campaigns_assignment a JOIN campaigns_task t ON t.id = a.task_id
    WHERE a.task_id = %(task_id)s
    GROUP BY a.task_id, a.store_id
), fixed AS (
    INSERT INTO campaigns_taskstorecount AS c (task_id, store_id, {columns})
    SELECT task_id, store_id, {columns} FROM truth
    ON CONFLICT (task_id, store_id) DO UPDATE SET {updates}
    WHERE ({current}) IS DISTINCT FROM ({excluded})
    RETURNING 1
), gone AS (
    DELETE FROM campaigns_taskstorecount c WHERE c.task_id = %(task_id)s
    AND NOT EXISTS (SELECT 1 FROM truth WHERE truth.store_id = c.store_id)
    RETURNING 1
)
SELECT (SELECT count(*) FROM fixed), (SELECT count(*) FROM gone)
""".format(columns=", ".join(COLUMNS), updates=", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS),
           current=", ".join(f"c.{c}" for c in COLUMNS), excluded=", ".join(f"EXCLUDED.{c}" for c in COLUMNS))


@dataclass(frozen=True)
class ReconcileResult:
    tasks: int
    repaired: int  # store rows written (missing or wrong)
    removed: int  # store rows with no assignment left


def task_rollups_reconcile(*, task_ids: list[int] | None = None, days: int = 60) -> ReconcileResult:
    """Recount the kept counts of the given tasks (default: every task dispatched in the last ``days`` days and
    every one still open) from their assignments; repair what differs. Idempotent."""
    if task_ids is None:
        now = timezone.now()
        recent = Q(dispatched_at__gte=now - timedelta(days=days)) | Q(status=TaskStatus.DISPATCHED, deadline__gte=now)
        task_ids = list(Task.objects.filter(recent).order_by("pk").values_list("pk", flat=True))
    repaired = removed = 0
    for task_id in task_ids:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE campaigns_assignment IN SHARE MODE")
            cursor.execute(RECONCILE_SQL, {"task_id": task_id})
            fixed, gone = cursor.fetchone()
            repaired += fixed
            removed += gone
    return ReconcileResult(tasks=len(task_ids), repaired=repaired, removed=removed)
