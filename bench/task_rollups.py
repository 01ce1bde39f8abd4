"""Task rollups: one task's rollup over 13,000 assignments, and the HQ dashboard over 200 tasks (2.6 M rows).

    python -m bench task_rollups --scale 4000     # 4,000 stores / 13,000 staff, 200 tasks (--small: 200 stores)

The organisation is stores.demo.org_build's. One task is dispatched through ``task_dispatch``; 199 more are
copies of it written by SQL (one INSERT … SELECT of store tasks and one of assignments per task, the triggers
keeping TaskStoreCount as they do for a dispatch), their assignments in a spread of states (done on time, done
late, confirmed, notified, pending, excused, rejected); 1 % of the staff then leave and 1 % of the stores close.

Measured, as an HQ operator (superuser) and as a region manager of the first area:
* ``rollup``: one task's total and its store level (``rollup_total`` + ``rollup_by(level="store")``), each run
  a fresh query; and the whole rollup page (every level, charts, leaderboards) through Django's test client;
* ``dashboard``: the whole HQ dashboard response (/admin/campaigns/task/dashboard/, 200 open tasks);
Baselines, same run: a naive per-store Python count for one task (eight COUNT queries per store, on a sample of
stores, extrapolated), and the dashboard's figures summed live from every assignment (one GROUP BY over 2.6 M
rows: what the kept counts replace).
"""

from __future__ import annotations

import statistics
from datetime import timedelta

from bench.harness import p95, result_line, tables_truncate, timed
from bench.org import ORG_TABLES, _size
from bench.task_dispatch import TASK_TABLES, _task

BASELINE_SAMPLE = 100
RUNS = 7

COPY_TASKS_SQL = """
INSERT INTO campaigns_task (campaign_id, kind, title, instructions, executor, executor_positions, target_store_kinds,
    target_cities, start_at, deadline, plan, status, recurrence, review_by, created_at, dispatched_at)
SELECT campaign_id, kind, title || ' #' || n, instructions, executor, executor_positions, target_store_kinds,
    target_cities, start_at - (n %% 7 + n %% 5) * interval '1 day', deadline - (n %% 7) * interval '1 day', plan,
    status, recurrence, review_by, created_at, dispatched_at
FROM campaigns_task, generate_series(1, %(copies)s) n WHERE id = %(task_id)s
RETURNING id
"""
COPY_STORE_TASKS_SQL = """
INSERT INTO campaigns_storetask (task_id, store_id, variant_id, title, text, created_at)
SELECT %(new)s, store_id, NULL, title, text, created_at FROM campaigns_storetask WHERE task_id = %(task_id)s
"""
COPY_ASSIGNMENTS_SQL = """
INSERT INTO campaigns_assignment (store_task_id, task_id, store_id, staff_id, status, reason, created_at, updated_at,
    notified_at, confirmed_at, done_at)
SELECT st.id, %(new)s, a.store_id, a.staff_id, s.status, '', a.created_at, a.created_at,
    CASE WHEN s.status <> 'pending' THEN a.created_at END,
    CASE WHEN s.status IN ('confirmed', 'done', 'rejected') THEN a.created_at END,
    CASE WHEN s.status IN ('done', 'rejected') THEN t.deadline + CASE WHEN s.late THEN interval '1 hour'
                                                                   ELSE interval '-1 hour' END END
FROM campaigns_assignment a
JOIN campaigns_storetask st ON st.task_id = %(new)s AND st.store_id = a.store_id
JOIN campaigns_task t ON t.id = %(new)s
CROSS JOIN LATERAL (SELECT CASE
        WHEN r < 0.45 THEN 'done' WHEN r < 0.55 THEN 'confirmed' WHEN r < 0.75 THEN 'notified'
        WHEN r < 0.93 THEN 'pending' WHEN r < 0.97 THEN 'excused' ELSE 'rejected' END AS status,
        r < 0.08 AS late
    FROM (SELECT (hashtext(a.id::text || ':' || %(new)s::text) & 1023) / 1024.0 AS r) x) s
WHERE a.task_id = %(task_id)s
"""


def _per_store_naive(*, task, stores) -> dict:
    """The naive way: for each store, a COUNT per figure."""
    from django.utils import timezone

    from campaigns.tasks.models import Assignment

    now = timezone.now()
    figures = {}
    for store in stores:
        rows = Assignment.objects.filter(task=task, store=store).exclude(status="withdrawn")
        figures[store.pk] = (rows.count(), rows.filter(notified_at__isnull=False).count(),
                             rows.filter(confirmed_at__isnull=False).count(), rows.filter(status="done").count(),
                             rows.filter(status="done", done_at__lte=task.deadline).count(),
                             rows.filter(status__in=("pending", "notified", "confirmed"),
                                         task__deadline__lt=now).count(),
                             rows.filter(status="excused").count(), rows.filter(status="rejected").count())
    return figures


LIVE_DASHBOARD_SQL = """
SELECT a.task_id, count(*) FILTER (WHERE a.status <> 'withdrawn'), count(*) FILTER (WHERE a.status = 'done'),
    count(*) FILTER (WHERE a.status = 'done' AND a.done_at <= t.deadline)
FROM campaigns_assignment a JOIN campaigns_task t ON t.id = a.task_id
JOIN stores_store s ON s.id = a.store_id LEFT JOIN stores_staff f ON f.id = a.staff_id
WHERE t.status = 'dispatched' AND s.status = 'open' AND (f.departed_at IS NULL)
GROUP BY a.task_id
"""


def _times(fn, runs: int = RUNS) -> list[float]:
    samples = []
    for _ in range(runs):
        with timed() as t:
            fn()
        samples.append(t.seconds)
    return samples


def bench_task_rollups(*, scale: int) -> str:
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import timezone

    from campaigns.tasks.models import Assignment, TaskStoreCount
    from campaigns.tasks.rollups import RollupFilters, rollup_by, rollup_total
    from campaigns.tasks.services import task_dispatch
    from portal.models import User
    from stores.access.services import access_grant, role_groups_sync
    from stores.demo import org_build
    from stores.models import Region, Role, Staff, Store

    role_groups_sync()
    tables_truncate("campaigns_taskstorecount", *TASK_TABLES, *ORG_TABLES)
    org_build(size=_size(scale))
    hq = User.objects.create_superuser("bench_hq", "", "x")
    area = Region.objects.filter(parent__isnull=True).order_by("code").first()
    manager = User.objects.create_user("bench_region", "", "x", is_staff=True)
    access_grant(user=manager, role=Role.REGION_MANAGER, regions=[area])
    task = _task(hq=hq, title="陈列任务")
    task_dispatch(task=task, by=hq)
    tasks = 200 if scale >= 1000 else 20
    with timed() as build, connection.cursor() as cursor:
        cursor.execute(COPY_TASKS_SQL, {"copies": tasks - 1, "task_id": task.pk})
        copies = [row[0] for row in cursor.fetchall()]
        for new in copies:
            cursor.execute(COPY_STORE_TASKS_SQL, {"new": new, "task_id": task.pk})
            cursor.execute(COPY_ASSIGNMENTS_SQL, {"new": new, "task_id": task.pk})
    # the measured task gets the same spread of states as the copies, through one UPDATE (the triggers follow)
    first = copies[0]
    with connection.cursor() as cursor:
        cursor.execute("""UPDATE campaigns_assignment a SET status = c.status, notified_at = c.notified_at,
            confirmed_at = c.confirmed_at, done_at = c.done_at FROM campaigns_assignment c
            WHERE a.task_id = %s AND c.task_id = %s AND c.store_id = a.store_id
            AND c.staff_id IS NOT DISTINCT FROM a.staff_id""", [task.pk, first])
    now = timezone.now()
    departed = list(Staff.objects.filter(status="active", store__isnull=False).order_by("pk")
                    .values_list("pk", flat=True)[::100])
    Staff.objects.filter(pk__in=departed).update(status="departed", departed_at=now)
    Store.objects.filter(pk__in=list(Store.objects.order_by("pk").values_list("pk", flat=True)[::100])).update(
        status="closed", closed_on=timezone.localdate())
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE campaigns_assignment")
        cursor.execute("VACUUM ANALYZE campaigns_taskstorecount")
        cursor.execute("ANALYZE")
    rows = Assignment.objects.count()
    per_task = Assignment.objects.filter(task=task).count()
    kept = TaskStoreCount.objects.count()

    filters = RollupFilters(task_id=task.pk)

    def one_rollup(viewer):
        for user in (viewer,):
            for attr in ("_xiaoer_scope", "_xiaoer_role"):
                if hasattr(user, attr):
                    delattr(user, attr)
        rollup_total(viewer=viewer, filters=filters)
        rollup_by(viewer=viewer, filters=filters, level="store")

    rollup_hq = _times(lambda: one_rollup(hq))
    rollup_region = _times(lambda: one_rollup(manager))

    setup_test_environment()  # responses carry their context (the page's rows are checked below)
    client = Client()
    client.force_login(hq)
    page_url = reverse("admin:campaigns_task_rollup") + f"?task={task.pk}"
    dashboard_url = reverse("admin:campaigns_task_dashboard")
    assert client.get(page_url).status_code == 200
    page = _times(lambda: client.get(page_url), runs=5)
    response = client.get(dashboard_url)
    assert response.status_code == 200 and len(response.context["task_rows"]) == tasks, \
        len(response.context["task_rows"])
    dashboard = _times(lambda: client.get(dashboard_url))
    region_client = Client()
    region_client.force_login(manager)
    dashboard_region = _times(lambda: region_client.get(dashboard_url))

    sample = list(Store.objects.filter(pk__in=Assignment.objects.filter(task=task).values("store_id"))
                  .order_by("pk")[:BASELINE_SAMPLE])
    stores = Assignment.objects.filter(task=task).values("store_id").distinct().count()
    with timed() as naive:
        _per_store_naive(task=task, stores=sample)
    naive_total = naive.seconds * stores / len(sample)

    def live_dashboard():
        with connection.cursor() as cursor:
            cursor.execute(LIVE_DASHBOARD_SQL)
            cursor.fetchall()

    live = _times(live_dashboard, runs=3)
    median = statistics.median
    print(f"stores={Store.objects.count()} staff={Staff.objects.count()} tasks={tasks} assignments={rows} "
          f"per_task={per_task} kept_rows={kept} departed={len(departed)} build={build.seconds:.1f}s\n"
          f"rollup (total + by store) HQ median={median(rollup_hq) * 1000:.1f}ms p95={p95(rollup_hq) * 1000:.1f}ms "
          f"region manager median={median(rollup_region) * 1000:.1f}ms\n"
          f"rollup page (5 levels, charts, boards) HQ median={median(page) * 1000:.0f}ms\n"
          f"dashboard page HQ median={median(dashboard) * 1000:.0f}ms p95={p95(dashboard) * 1000:.0f}ms "
          f"region manager median={median(dashboard_region) * 1000:.0f}ms\n"
          f"baseline per-store counts: {naive.seconds:.2f}s for {len(sample)} stores, extrapolated to {stores}: "
          f"{naive_total:.1f}s; live GROUP BY over every assignment median={median(live) * 1000:.0f}ms")
    print(result_line(bench="task_rollup_dashboard", value=median(dashboard), unit="s", baseline=median(live)))
    return result_line(bench="task_rollup", value=median(rollup_hq), unit="s", baseline=naive_total)


__all__ = ["bench_task_rollups", "timedelta"]
