"""Dispatch one task to every store: the set-based dispatch vs a per-row ORM loop, same run.

    python -m bench task_dispatch --scale 4000     # 4,000 stores / 13,000 staff (--small: 200 stores)

The organisation is built by stores.demo.org_build (cities from the demo's regions). The task targets every
area (regions with sub-regions), is executed by each active staff member, and has a rainy-day variant chosen
by the sandbox weather provider. Measured: ``task_dispatch`` (two INSERT … SELECT in one transaction, weather
asked once per city), then the same call again (idempotent: creates nothing). Baseline: the naive loop
(for each store: forecast, pick the variant, StoreTask.create; for each of its staff: Assignment.create and
AssignmentEvent.create), timed on a sample of stores and extrapolated to all of them.
"""

from __future__ import annotations

from datetime import timedelta

from bench.harness import result_line, tables_truncate, timed
from bench.org import ORG_TABLES, _size

TASK_TABLES = ("campaigns_assignmentevent", "campaigns_checklisttick", "campaigns_evidence", "campaigns_followup",
               "campaigns_assignment", "campaigns_storetask", "campaigns_taskvariant", "campaigns_checklistitem",
               "campaigns_taskmaterial", "campaigns_task_target_regions", "campaigns_task_target_stores",
               "campaigns_task_target_franchisees", "campaigns_task", "campaigns_campaign")
BASELINE_SAMPLE = 200


def _task(*, hq, title: str):
    from django.utils import timezone

    from campaigns.tasks.services import TargetSpec, VariantSpec, campaign_create, task_create
    from stores.models import Region

    now = timezone.now()
    areas = list(Region.objects.filter(parent__isnull=True))
    return task_create(campaign=campaign_create(by=hq, name=f"压测活动 {title}"), by=hq, kind="offline", title=title,
                       instructions="{门店名称}：请在{截止时间}前完成陈列", executor="staff",
                       start_at=now, deadline=now + timedelta(days=2), target=TargetSpec(regions=areas),
                       variants=[VariantSpec(name="雨天", text="{门店名称}：门口放雨伞架", weather="rain")])


def _per_row(*, task, stores) -> int:
    """The naive way: one ORM write per row."""
    from django.db import transaction
    from django.utils import timezone

    from campaigns.tasks.models import Assignment, AssignmentEvent, StoreTask
    from campaigns.tasks.weather import weather_forecast
    from stores.models import Staff

    variants = list(task.variants.all())
    created = 0
    with transaction.atomic():
        for store in stores:
            now = timezone.now()
            forecast = weather_forecast(city=store.city, on=timezone.localdate())
            variant = next((v for v in variants if v.weather == "rain" and forecast.rain), None)
            text = (variant.text if variant else task.instructions).replace("{门店名称}", store.name)
            store_task = StoreTask.objects.create(task=task, store=store, variant=variant, title=task.title,
                                                  text=text, created_at=now)
            for staff in Staff.objects.filter(store=store, status="active"):
                assignment = Assignment.objects.create(store_task=store_task, task=task, store=store, staff=staff,
                                                       created_at=now, updated_at=now)
                AssignmentEvent.objects.create(assignment=assignment, to_status="pending", at=now,
                                               source="dispatch")
                created += 1
    return created


def bench_task_dispatch(*, scale: int) -> str:
    from django.db import connection

    from campaigns.tasks.models import Assignment, StoreTask
    from campaigns.tasks.services import task_dispatch
    from portal.models import User
    from stores.access.services import role_groups_sync
    from stores.demo import org_build
    from stores.models import Staff, Store

    role_groups_sync()
    tables_truncate(*TASK_TABLES, *ORG_TABLES)
    org_build(size=_size(scale))
    hq = User.objects.create_superuser("bench_hq", "", "x")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    stores, staff = Store.objects.open().count(), Staff.objects.active().filter(store__isnull=False).count()

    task = _task(hq=hq, title="陈列任务")
    with timed() as set_based:
        result = task_dispatch(task=task, by=hq)
    with timed() as again:
        repeat = task_dispatch(task=task, by=hq)
    assert (result.stores, result.assignments) == (stores, staff), (result, stores, staff)
    assert (repeat.stores, repeat.assignments) == (0, 0)
    rainy = StoreTask.objects.filter(task=task, variant__isnull=False).count()

    naive = _task(hq=hq, title="逐行任务")
    sample = list(Store.objects.open().order_by("pk")[:BASELINE_SAMPLE])
    with timed() as per_row:
        made = _per_row(task=naive, stores=sample)
    assert made == Assignment.objects.filter(task=naive).count()
    per_row_total = per_row.seconds * stores / len(sample)
    print(f"stores={stores} staff={staff} set_based={set_based.seconds:.3f}s (store_tasks={result.stores} "
          f"assignments={result.assignments} rainy_variant_stores={rainy} cities_forecast={result.forecasts}) "
          f"again={again.seconds:.3f}s created_again=0 per_row={per_row.seconds:.2f}s for {len(sample)} stores, "
          f"extrapolated to {stores}: {per_row_total:.1f}s")
    return result_line(bench="task_dispatch", value=set_based.seconds, unit="s", baseline=per_row_total)
