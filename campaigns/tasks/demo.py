"""Demo tasks (seed_demo): an HQ operator's campaign for 华东大区, so the task dashboard has something to show.

* 门店陈列焕新 — an offline display task for every member of 华东大区's stores, with a rainy-day copy for the
  region (the sandbox weather provider decides which cities have rain), dispatched: in the first stores the
  store manager has confirmed for everyone, in some of those the work is done (checklist ticked), the rest not;
* 周末门头清洁 — a store-level task to the same stores whose deadline passed yesterday: every store but one has
  finished it, so one store is overdue and the plan has escalated it to the store manager and the region manager.

Everything goes through the services (campaign_create, task_create, task_dispatch, checklist_tick,
assignment_confirm, assignment_done, assignments_overdue_mark); only the second task's times are moved into the
past after its dispatch (a real one would simply have been dispatched days ago). Seeding again makes nothing.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

CAMPAIGN = "华东夏季门店焕新"
DISPLAY_TITLE = "门店陈列焕新"
CLEANING_TITLE = "周末门头清洁"


def _store_managers(store_ids: list[int]) -> dict[int | None, object]:
    from stores.access.models import Access, Role

    return {a.store_id: a.user for a in Access.objects.filter(role=Role.STORE_MANAGER, store_id__in=store_ids)
            .select_related("user")}


def tasks_demo_run() -> str:
    from campaigns.tasks.models import Assignment, Campaign, Task
    from campaigns.tasks.services import (
        ChecklistSpec,
        TargetSpec,
        VariantSpec,
        assignment_confirm,
        assignment_done,
        assignments_overdue_mark,
        campaign_create,
        checklist_tick,
        task_create,
        task_dispatch,
    )
    from stores.org.models import Region

    hq = get_user_model().objects.filter(username="hq_operator").first()
    east = Region.objects.filter(name="华东大区").first()
    if hq is None or east is None:
        return "任务：跳过（没有演示总部账号或华东大区）"
    if Campaign.objects.filter(name=CAMPAIGN).exists():
        return "任务：已有演示活动，未重复创建"
    now = timezone.now()
    campaign = campaign_create(by=hq, name=CAMPAIGN, goal="华东大区全部门店完成夏季陈列焕新和门头清洁",
                               starts_on=timezone.localdate() - timedelta(days=3),
                               ends_on=timezone.localdate() + timedelta(days=14))
    plan = {"remind_before_hours": [24, 2],
            "escalate_after_hours": [{"after_hours": 2, "to": "store_manager"},
                                     {"after_hours": 24, "to": "region_manager"}]}
    display = task_create(
        campaign=campaign, by=hq, kind="offline", title=DISPLAY_TITLE, executor="staff",
        instructions="{门店名称}：请在{截止时间}前把夏季新品移到入口第一排，并拍照上传。",
        start_at=now - timedelta(hours=6), deadline=now + timedelta(days=2), target=TargetSpec(regions=[east]),
        plan=plan, checklist=[ChecklistSpec(text="新品移到入口第一排"),
                              ChecklistSpec(text="价签与海报更新", photo="optional")],
        variants=[VariantSpec(name="雨天版", weather="rain", region=east,
                              text="{门店名称}：明天有雨，门口放好雨伞架和防滑垫，新品陈列移到店内第一排。")])
    task_dispatch(task=display, by=hq)
    store_ids = sorted(set(Assignment.objects.filter(task=display).values_list("store_id", flat=True)))
    managers = _store_managers(store_ids)
    items = list(display.checklist.all())
    confirmed = done = 0
    for index, store_id in enumerate(store_ids[: max(1, len(store_ids) * 2 // 3)]):
        manager = managers.get(store_id)
        if manager is None:
            continue
        for assignment in Assignment.objects.filter(task=display, store_id=store_id):
            assignment_confirm(assignment=assignment, by=manager)
            confirmed += 1
            if index % 2 == 0:
                for item in items:
                    checklist_tick(assignment=assignment, item=item, by=manager)
                assignment_done(assignment=assignment, by=manager)
                done += 1

    cleaning = task_create(
        campaign=campaign, by=hq, kind="offline", title=CLEANING_TITLE, executor="store",
        instructions="{门店名称}：周末客流高峰前完成门头、橱窗和玻璃门清洁。", start_at=now - timedelta(minutes=1),
        deadline=now + timedelta(hours=1), target=TargetSpec(regions=[east]), plan=plan)
    task_dispatch(task=cleaning, by=hq)
    late_store = None
    for store_id in sorted(set(Assignment.objects.filter(task=cleaning).values_list("store_id", flat=True))):
        manager = managers.get(store_id)
        if manager is None:
            continue
        if late_store is None:  # the first store with a manager misses the deadline
            late_store = store_id
            continue
        for assignment in Assignment.objects.filter(task=cleaning, store_id=store_id):
            assignment_done(assignment=assignment, by=manager)
    # the cleaning task ran last weekend: its deadline passed 26 hours ago (both escalation steps are due)
    Task.objects.filter(pk=cleaning.pk).update(start_at=now - timedelta(days=3), deadline=now - timedelta(hours=26))
    Assignment.objects.filter(task=cleaning, status="done").update(done_at=now - timedelta(days=2))
    overdue = assignments_overdue_mark()
    return (f"任务：活动“{CAMPAIGN}”，{DISPLAY_TITLE}下发 {len(store_ids)} 家门店（确认 {confirmed}、完成 {done}），"
            f"{CLEANING_TITLE}逾期 {overdue} 家")
