"""Writes of the task engine: campaigns, tasks, the set-based dispatch, cancel, recurrence, assignment states.

Dispatch is one transaction of two statements under the task's advisory lock (portal.locks.IdLock.TASK_DISPATCH):
``STORE_TASKS_SQL`` (INSERT … SELECT, one store task per target store, the copy variant chosen from one rule
table built per (city, region, store kind), weather asked once per city) and ``ASSIGNMENTS_SQL`` (INSERT …
SELECT, one assignment per executor, with its first AssignmentEvent in the same statement). Unique constraints
make both idempotent (ON CONFLICT DO NOTHING): dispatching again, or the periodic re-dispatch of open tasks,
creates only what is missing (a store that opened, a member who joined). Cancel takes the same lock, so it
waits for a dispatch under way and then withdraws everything it created.

Assignment transitions are conditional: a repeated action changes nothing and records nothing.
"""

from __future__ import annotations

import calendar
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from campaigns.tasks.models import (
    OPEN_STATUSES,
    Assignment,
    AssignmentEvent,
    AssignmentStatus,
    Campaign,
    ChecklistItem,
    ChecklistTick,
    EventSource,
    Evidence,
    Executor,
    FollowUp,
    FollowUpOutcome,
    PhotoRule,
    Recurrence,
    ReviewBy,
    StoreTask,
    Task,
    TaskKind,
    TaskMaterial,
    TaskStatus,
    TaskVariant,
    WeatherCondition,
)
from campaigns.tasks.selectors import deadline_text, followup_customers, task_target_stores
from campaigns.tasks.tasks import notify_task
from campaigns.tasks.weather import Forecast, forecasts_for
from materials.library.models import Material
from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import IdLock, xact_lock
from portal.registry import registry_add
from portal.tasks import enqueue_after_commit
from stores.access.models import Access, Role
from stores.access.scoping import region_ids_with_descendants, user_scope
from stores.org.models import Franchisee, Region, Staff, Store

logger = logging.getLogger(__name__)


class TaskRefused(DomainError):
    """A task that cannot be created, changed, dispatched or cancelled as asked."""


class EmptyTarget(TaskRefused):
    pass


class AssignmentRefused(DomainError):
    """An action on an assignment that its state or the actor's role does not allow."""


class AssignmentNotFound(AssignmentRefused):
    """Not in the actor's scope, exactly as if it did not exist (a view's 404)."""


DISPATCHERS = {Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.FRANCHISEE_OWNER}
HQ_REVIEWERS = {Role.HQ_ADMIN, Role.HQ_OPERATOR}
SUPERVISORS = {Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER, Role.STORE_MANAGER}
STORE_WORKERS = {Role.STORE_MANAGER, Role.STORE_STAFF}
PLAN_MAX_HOURS = 24 * 31
ESCALATE_TO = ("store_manager", "region_manager", "franchisee_owner")


# -- who acts -----------------------------------------------------------------------------------------------
def _role(user) -> str | None:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if user.is_superuser:
        return Role.HQ_ADMIN
    cached = getattr(user, "_xiaoer_role", None)
    if cached is None:
        access = Access.objects.filter(user_id=user.pk).only("role").first()
        cached = access.role if access is not None and not user_scope(user).kind == "none" else ""
        user._xiaoer_role = cached
    return cached or None


def _own_franchisee_id(user) -> int | None:
    return user_scope(user).franchisee_id if _role(user) == Role.FRANCHISEE_OWNER else None


def _dispatcher_check(*, task: Task, by) -> None:
    if by is None:  # the system (beat): a schedule made by someone who could
        return
    role = _role(by)
    if role not in DISPATCHERS:
        raise TaskRefused(_("你没有下发或取消任务的权限"))
    if role == Role.FRANCHISEE_OWNER and task.campaign.owner_franchisee_id != _own_franchisee_id(by):
        raise TaskRefused(_("只能操作本加盟商自己的任务"))


# -- campaigns ----------------------------------------------------------------------------------------------
def campaign_create(*, by, name: str, goal: str = "", starts_on=None, ends_on=None) -> Campaign:
    role = _role(by)
    if role not in DISPATCHERS:
        raise TaskRefused(_("你没有创建活动的权限"))
    name = (name or "").strip()
    if not name:
        raise TaskRefused(_("请填写活动名称"))
    if starts_on and ends_on and ends_on < starts_on:
        raise TaskRefused(_("活动结束日期不能早于开始日期"))
    campaign = Campaign.objects.create(name=name[:100], goal=goal, starts_on=starts_on, ends_on=ends_on, owner=by,
                                       owner_franchisee_id=_own_franchisee_id(by))
    audit_record(action="campaign.create", target_type="campaigns.Campaign", target_ids=[campaign.pk], by=by)
    return campaign


# -- the reminder / escalation plan -------------------------------------------------------------------------
def task_plan_validate(*, plan: dict | None) -> dict:
    """``{"remind_before_hours": [24, 2], "escalate_after_hours": [{"after_hours": 2, "to": "store_manager"},
    {"after_hours": 24, "to": "region_manager"}]}``: hours before the deadline to remind those not done, and
    steps after it to escalate, in order (store manager, then region manager or franchisee owner). Returns the
    plan normalised (sorted, integers); TaskRefused with the reason otherwise."""
    if not plan:
        return {}
    if not isinstance(plan, dict) or set(plan) - {"remind_before_hours", "escalate_after_hours"}:
        raise TaskRefused(_("提醒计划格式不对：只能包含“截止前提醒”和“逾期升级”两部分"))
    remind = plan.get("remind_before_hours") or []
    if not isinstance(remind, list) or not all(_hours_ok(h) for h in remind):
        raise TaskRefused(_("截止前提醒须是 1 到 744 之间的小时数"))
    if len(set(remind)) != len(remind):
        raise TaskRefused(_("截止前提醒的时间不能重复"))
    steps = plan.get("escalate_after_hours") or []
    if not isinstance(steps, list):
        raise TaskRefused(_("逾期升级须是步骤列表"))
    clean_steps = []
    for step in steps:
        if not isinstance(step, dict) or not _hours_ok(step.get("after_hours")) or step.get("to") not in ESCALATE_TO:
            raise TaskRefused(_("每个逾期升级步骤须写明逾期几小时（1 到 744）和升级给谁（店长、区域经理或加盟商）"))
        clean_steps.append({"after_hours": int(step["after_hours"]), "to": step["to"]})
    hours = [s["after_hours"] for s in clean_steps]
    if hours != sorted(hours) or len(set(hours)) != len(hours):
        raise TaskRefused(_("逾期升级步骤须按时间先后排列，且时间不能重复"))
    order = [ESCALATE_TO.index(s["to"]) if s["to"] == "store_manager" else 1 for s in clean_steps]
    if order != sorted(order):
        raise TaskRefused(_("逾期升级须先到店长，再到区域经理或加盟商"))
    result: dict = {}
    if remind:
        result["remind_before_hours"] = sorted((int(h) for h in remind), reverse=True)
    if clean_steps:
        result["escalate_after_hours"] = clean_steps
    return result


def _hours_ok(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= PLAN_MAX_HOURS


# -- tasks --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChecklistSpec:
    text: str
    required: bool = True
    photo: str = PhotoRule.NONE


@dataclass(frozen=True)
class VariantSpec:
    name: str
    text: str
    title: str = ""
    city: str = ""
    region: Region | None = None
    store_kind: str = ""
    weather: str = ""
    temperature_c: int | None = None


@dataclass
class TargetSpec:
    regions: Sequence[Region] = ()
    franchisees: Sequence[Franchisee] = ()
    store_kinds: Sequence[str] = ()
    cities: Sequence[str] = ()
    stores: Sequence[Store] = ()
    store_codes: Sequence[str] = ()


def store_codes_parse(*, text: str) -> list[str]:
    """Store codes from pasted text or a spreadsheet column: one per line, or separated by commas or spaces."""
    import re

    return [code for code in re.split(r"[\s,，;；]+", text or "") if code]


def _target_check(*, by, campaign: Campaign, target: TargetSpec) -> list[Store]:
    """The explicit stores (given and by code), checked against the actor's reach."""
    own = campaign.owner_franchisee_id
    visible = Store.objects.for_user(by)
    stores = list(target.stores)
    codes = sorted({c.strip() for c in target.store_codes if c and c.strip()})
    if codes:
        found = {s.code: s for s in visible.filter(code__in=codes)}
        missing = [c for c in codes if c not in found]
        if missing:  # the same answer for a code of another scope as for one that does not exist
            raise TaskRefused(_("找不到这些门店编码：%(codes)s") % {"codes": "、".join(missing[:20])})
        stores += list(found.values())
    visible_ids = set(visible.filter(pk__in=[s.pk for s in stores]).values_list("pk", flat=True))
    if any(s.pk not in visible_ids for s in stores):
        raise TaskRefused(_("所选门店不存在或不在你的管辖范围"))
    if own is not None:
        if any(s.franchisee_id != own for s in stores) or any(f.pk != own for f in target.franchisees):
            raise TaskRefused(_("加盟商只能向本加盟商的门店下发任务"))
    for kind in target.store_kinds:
        if kind not in Store.Kind.values:
            raise TaskRefused(_("门店类型不对"))
    return list({s.pk: s for s in stores}.values())


def _materials_check(*, by, materials: Iterable[Material]) -> list[Material]:
    materials = list(materials)
    if not materials:
        return []
    ids = [m.pk for m in materials]
    visible = Material.objects.for_user(by).filter(pk__in=ids)
    usable = set(visible.usable().values_list("pk", flat=True))
    seen = set(visible.values_list("pk", flat=True))
    for material in materials:
        if material.pk not in seen:
            raise TaskRefused(_("所选素材不存在或不在你的使用范围"))
        if material.pk not in usable:
            raise TaskRefused(_("素材“%(title)s”已过期、已归档或尚未发布，不能附带到任务")
                              % {"title": material.title})
    return materials


def _times_check(*, start_at: datetime, deadline: datetime) -> None:
    if deadline <= timezone.now():
        raise TaskRefused(_("截止时间已过，请选择一个将来的时间"))
    if deadline <= start_at:
        raise TaskRefused(_("截止时间必须晚于开始时间"))


def _kind_check(*, kind: str, executor: str, segment, materials: list, positions: Sequence[str]) -> None:
    if kind not in TaskKind.values:
        raise TaskRefused(_("任务类型不对"))
    if executor not in Executor.values:
        raise TaskRefused(_("执行人设置不对"))
    if any(p not in Staff.Position.values for p in positions):
        raise TaskRefused(_("执行岗位不对"))
    if kind == TaskKind.FOLLOW_UP:
        if segment is None:
            raise TaskRefused(_("客户跟进清单需要选择一个客户分层"))
        if executor != Executor.STAFF:
            raise TaskRefused(_("客户跟进清单须由每位员工执行（各自跟进自己的客户）"))
    if kind == TaskKind.SHARE_MATERIAL and not materials:
        raise TaskRefused(_("分享素材任务至少要附带一份素材"))


def _variant_check(spec: VariantSpec) -> None:
    if not spec.text.strip():
        raise TaskRefused(_("文案版本“%(name)s”没有文案") % {"name": spec.name})
    if spec.weather and spec.weather not in WeatherCondition.values:
        raise TaskRefused(_("天气条件不对"))
    if spec.weather in (WeatherCondition.HOT, WeatherCondition.COLD) and spec.temperature_c is None:
        raise TaskRefused(_("按气温选择文案时须填写气温"))


def task_create(*, campaign: Campaign, by, kind: str, title: str, start_at: datetime, deadline: datetime,
                instructions: str = "", executor: str = Executor.STORE, positions: Sequence[str] = (),
                target: TargetSpec | None = None, materials: Iterable[Material] = (), segment=None,
                plan: dict | None = None, recurrence: str = Recurrence.NONE, recurrence_until=None,
                review_by: str = ReviewBy.NONE, checklist: Sequence[ChecklistSpec] = (),
                variants: Sequence[VariantSpec] = ()) -> Task:
    """A draft task. Refused: a deadline in the past or before the start, an expired/archived material, a target
    outside the actor's stores (a franchisee owner: outside its own), a role that may not create tasks."""
    role = _role(by)
    if role not in DISPATCHERS:
        raise TaskRefused(_("你没有创建任务的权限"))
    if role == Role.FRANCHISEE_OWNER and campaign.owner_franchisee_id != _own_franchisee_id(by):
        raise TaskRefused(_("只能在本加盟商自己的活动里创建任务"))
    title = (title or "").strip()
    if not title:
        raise TaskRefused(_("请填写任务标题"))
    target = target or TargetSpec()
    _times_check(start_at=start_at, deadline=deadline)
    stores = _target_check(by=by, campaign=campaign, target=target)
    materials = _materials_check(by=by, materials=materials)
    _kind_check(kind=kind, executor=executor, segment=segment, materials=materials, positions=positions)
    if recurrence not in Recurrence.values:
        raise TaskRefused(_("重复设置不对"))
    if review_by not in ReviewBy.values:
        raise TaskRefused(_("审核设置不对"))
    if recurrence_until and recurrence_until < timezone.localtime(start_at).date():
        raise TaskRefused(_("重复截止日期不能早于开始时间"))
    for spec in variants:
        _variant_check(spec)
    clean_plan = task_plan_validate(plan=plan)
    with transaction.atomic():
        task = Task.objects.create(
            campaign=campaign, kind=kind, title=title[:100], instructions=instructions, executor=executor,
            executor_positions=list(positions) if executor == Executor.STAFF else [],
            target_store_kinds=list(target.store_kinds), target_cities=[c.strip() for c in target.cities if c.strip()],
            segment=segment, start_at=start_at, deadline=deadline, plan=clean_plan, recurrence=recurrence,
            recurrence_until=recurrence_until, review_by=review_by, created_by=by)
        task.target_regions.set(target.regions)
        task.target_franchisees.set(target.franchisees)
        task.target_stores.set(stores)
        TaskMaterial.objects.bulk_create(TaskMaterial(task=task, material=m) for m in materials)
        ChecklistItem.objects.bulk_create(ChecklistItem(task=task, order=i, text=c.text[:200], required=c.required,
                                                        photo=c.photo) for i, c in enumerate(checklist))
        TaskVariant.objects.bulk_create(TaskVariant(task=task, order=i, name=v.name[:64], title=v.title[:100],
                                                    text=v.text, city=v.city, region=v.region,
                                                    store_kind=v.store_kind, weather=v.weather,
                                                    temperature_c=v.temperature_c) for i, v in enumerate(variants))
        audit_record(action="task.create", target_type="campaigns.Task", target_ids=[task.pk], by=by)
    return task


EDITABLE_AFTER_DISPATCH = {"title", "instructions", "deadline", "plan"}


def task_update(*, task: Task, by, target: TargetSpec | None = None, materials: Iterable[Material] | None = None,
                **changes) -> Task:
    """Change a task. A draft or scheduled task takes any change (checked as task_create does); once
    dispatched only its title, instructions, plan and a later deadline; a cancelled task nothing."""
    _dispatcher_check(task=task, by=by)
    if by is None:
        raise TaskRefused(_("你没有修改任务的权限"))
    if task.status == TaskStatus.CANCELLED:
        raise TaskRefused(_("任务已取消，不能修改"))
    allowed = {"kind", "title", "instructions", "executor", "executor_positions", "segment", "start_at", "deadline",
               "plan", "recurrence", "recurrence_until", "review_by"}
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"task_update: unknown fields {sorted(unknown)}")
    if task.status == TaskStatus.DISPATCHED:
        fixed = (set(changes) - EDITABLE_AFTER_DISPATCH) | ({"target"} if target is not None else set())
        if fixed or materials is not None:
            raise TaskRefused(_("任务已下发：只能修改标题、说明、提醒计划和延后截止时间"))
        if "deadline" in changes and changes["deadline"] < task.deadline:
            raise TaskRefused(_("任务已下发：截止时间只能延后"))
    for name, value in changes.items():
        setattr(task, name, value)
    if "title" in changes:
        task.title = (task.title or "").strip()[:100]
        if not task.title:
            raise TaskRefused(_("请填写任务标题"))
    if {"start_at", "deadline"} & set(changes):
        _times_check(start_at=task.start_at, deadline=task.deadline)
    if "plan" in changes:
        task.plan = task_plan_validate(plan=task.plan)
    with transaction.atomic():
        stores = None
        if target is not None:
            stores = _target_check(by=by, campaign=task.campaign, target=target)
            task.target_store_kinds = list(target.store_kinds)
            task.target_cities = [c.strip() for c in target.cities if c.strip()]
        material_list = _materials_check(by=by, materials=materials) if materials is not None else None
        current_materials = material_list if material_list is not None else list(task.materials.all())
        _kind_check(kind=task.kind, executor=task.executor, segment=task.segment, materials=current_materials,
                    positions=task.executor_positions)
        if task.executor != Executor.STAFF:
            task.executor_positions = []
        task.save()
        if target is not None:
            task.target_regions.set(target.regions)
            task.target_franchisees.set(target.franchisees)
            task.target_stores.set(stores or [])
        if material_list is not None:
            TaskMaterial.objects.filter(task=task).exclude(material__in=material_list).delete()
            TaskMaterial.objects.bulk_create((TaskMaterial(task=task, material=m) for m in material_list),
                                             ignore_conflicts=True)
        audit_record(action="task.update", target_type="campaigns.Task", target_ids=[task.pk], by=by,
                     detail={"fields": sorted(changes) + (["target"] if target is not None else [])})
    return task


# -- dispatch -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DispatchResult:
    stores: int  # store tasks created by this call
    assignments: int  # assignments created by this call
    forecasts: int = 0  # cities whose weather was asked


STORE_TASKS_SQL = """
INSERT INTO campaigns_storetask (task_id, store_id, variant_id, title, text, created_at)
SELECT %(task_id)s, s.id, v.variant_id,
       COALESCE(NULLIF(tv.title, ''), %(title)s),
       replace(replace(COALESCE(tv.text, %(text)s), '{{门店名称}}', s.name), '{{截止时间}}', %(deadline)s),
       %(now)s
FROM stores_store s
LEFT JOIN unnest(%(v_cities)s::text[], %(v_regions)s::bigint[], %(v_kinds)s::text[], %(v_ids)s::bigint[])
     AS v(city, region_id, kind, variant_id)
     ON v.city = s.city AND v.region_id = s.region_id AND v.kind = s.kind
LEFT JOIN campaigns_taskvariant tv ON tv.id = v.variant_id
WHERE s.id IN ({targets})
ON CONFLICT (task_id, store_id) DO NOTHING
"""

ASSIGNMENTS_SQL = """
INSERT INTO campaigns_assignment (store_task_id, task_id, store_id, staff_id, status, reason, created_at, updated_at)
SELECT st.id, st.task_id, st.store_id, {staff_id}, 'pending', '', %(now)s, %(now)s
FROM campaigns_storetask st
JOIN stores_store so ON so.id = st.store_id AND so.status = 'open'
{staff_join}
WHERE st.task_id = %(task_id)s AND st.withdrawn_at IS NULL
ON CONFLICT DO NOTHING
"""

STAFF_JOIN = ("JOIN stores_staff s ON s.store_id = st.store_id AND s.status = 'active'"
              " AND (cardinality(%(positions)s::text[]) = 0 OR s.position = ANY(%(positions)s::text[]))")


def _variant_matches(variant: TaskVariant, *, city: str, region_id: int, kind: str, regions: dict[int, frozenset],
                     forecasts: dict[str, Forecast]) -> bool:
    if variant.city and variant.city != city:
        return False
    if variant.region_id and region_id not in regions[variant.region_id]:
        return False
    if variant.store_kind and variant.store_kind != kind:
        return False
    if variant.weather:
        forecast = forecasts.get(city)
        if forecast is None:
            return False
        threshold = variant.temperature_c if variant.temperature_c is not None else 0
        outcomes: dict[str, bool] = {WeatherCondition.RAIN: forecast.rain, WeatherCondition.DRY: not forecast.rain,
                                     WeatherCondition.HOT: forecast.high_c >= threshold,
                                     WeatherCondition.COLD: forecast.low_c <= threshold}
        return outcomes[variant.weather]
    return True


def _variant_table(*, task: Task, stores: QuerySet[Store]) -> tuple[dict[str, list], int]:
    """One row per (city, region, store kind) of the target whose store gets a variant (the first that matches)."""
    table: dict[str, list] = {"v_cities": [], "v_regions": [], "v_kinds": [], "v_ids": []}
    variants = list(task.variants.order_by("order", "id"))
    if not variants:
        return table, 0
    combos = list(stores.order_by().values_list("city", "region_id", "kind").distinct())
    regions = {v.region_id: region_ids_with_descendants(region_ids=[v.region_id]) for v in variants if v.region_id}
    forecasts: dict[str, Forecast] = {}
    if any(v.weather for v in variants):
        forecasts = forecasts_for(cities=(c for c, _r, _k in combos), on=timezone.localtime(task.start_at).date())
    for city, region_id, kind in combos:
        chosen = next((v for v in variants if _variant_matches(v, city=city, region_id=region_id, kind=kind,
                                                               regions=regions, forecasts=forecasts)), None)
        if chosen is not None:
            table["v_cities"].append(city)
            table["v_regions"].append(region_id)
            table["v_kinds"].append(kind)
            table["v_ids"].append(chosen.pk)
    return table, len(forecasts)


def _store_tasks_insert(*, task: Task, now: datetime) -> tuple[int, int]:
    stores = task_target_stores(task=task)
    table, forecasts = _variant_table(task=task, stores=stores)
    targets_sql, targets_params = stores.order_by().values("pk").query.sql_with_params()
    params: dict[str, Any] = {"task_id": task.pk, "title": task.title, "text": task.instructions,
                              "deadline": deadline_text(task), "now": now, **table}
    # The target subquery's own placeholders are positional: inline them as named ones.
    names = [f"t{i}" for i in range(len(targets_params))]
    sql = STORE_TASKS_SQL.format(targets=targets_sql.replace("%%", "%%%%") % tuple(f"%({n})s" for n in names))
    params.update(dict(zip(names, targets_params, strict=True)))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount, forecasts


def _assignments_insert(*, task: Task, now: datetime, by) -> int:
    if task.executor == Executor.STAFF:
        sql = ASSIGNMENTS_SQL.format(staff_id="s.id", staff_join=STAFF_JOIN)
    else:
        sql = ASSIGNMENTS_SQL.format(staff_id="NULL::bigint", staff_join="")
    params: dict[str, Any] = {"task_id": task.pk, "now": now, "positions": task.executor_positions}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _dispatch_rows(*, task: Task, by) -> DispatchResult:
    now = timezone.now()
    stores, forecasts = _store_tasks_insert(task=task, now=now)
    assignments = _assignments_insert(task=task, now=now, by=by)
    return DispatchResult(stores=stores, assignments=assignments, forecasts=forecasts)


def task_dispatch(*, task: Task, by) -> DispatchResult:
    """Create one store task per target store and one assignment per executor, in one transaction. Idempotent:
    a second call creates only what is missing (usually nothing). Refused: an empty target, a deadline passed,
    a cancelled task, an attached material no longer usable. Notification is enqueued after commit."""
    _dispatcher_check(task=task, by=by)
    with transaction.atomic():
        xact_lock(IdLock.TASK_DISPATCH, task.pk)  # a cancel (or another dispatch) waits for us, and we for it
        task = Task.objects.select_for_update().select_related("campaign").get(pk=task.pk)
        if task.status == TaskStatus.CANCELLED:
            raise TaskRefused(_("任务已取消，不能下发"))
        if task.deadline <= timezone.now():
            raise TaskRefused(_("截止时间已过，不能下发。请先把截止时间改到将来"))
        first = task.status != TaskStatus.DISPATCHED
        if first:
            unusable = Material.objects.filter(pk__in=task.task_materials.values("material_id")).exclude(
                pk__in=Material.objects.usable().values("pk"))
            expired = unusable.first()
            if expired is not None:
                raise TaskRefused(_("素材“%(title)s”已过期、已归档或尚未发布，不能下发。请更换素材")
                                  % {"title": expired.title})
        result = _dispatch_rows(task=task, by=by)
        if first:
            if not StoreTask.objects.filter(task=task).exists():
                raise EmptyTarget(_("目标门店为空：没有营业中的门店符合所选范围，请调整目标后再下发"))
            with connection.cursor() as cursor:  # the version each attached material went out with
                cursor.execute("UPDATE campaigns_taskmaterial tm SET version_id = m.current_version_id "
                               "FROM materials_material m WHERE m.id = tm.material_id AND tm.task_id = %s "
                               "AND tm.version_id IS NULL", [task.pk])
            Task.objects.filter(pk=task.pk).update(status=TaskStatus.DISPATCHED, dispatched_at=timezone.now(),
                                                   dispatched_by=by if getattr(by, "pk", None) else None)
            audit_record(action="task.dispatch", target_type="campaigns.Task", target_ids=[task.pk], by=by,
                         detail={"stores": result.stores, "assignments": result.assignments})
        if result.assignments:
            enqueue_after_commit(notify_task, task_id=task.pk)
    return result


def task_schedule(*, task: Task, by) -> Task:
    """A draft to be dispatched by beat at its start time (checked now as a dispatch would be)."""
    _dispatcher_check(task=task, by=by)
    if task.status != TaskStatus.DRAFT:
        raise TaskRefused(_("只有草稿状态的任务可以定时下发"))
    if task.deadline <= timezone.now():
        raise TaskRefused(_("截止时间已过，请选择一个将来的时间"))
    if not task_target_stores(task=task).exists():
        raise EmptyTarget(_("目标门店为空：没有营业中的门店符合所选范围，请调整目标后再下发"))
    Task.objects.filter(pk=task.pk, status=TaskStatus.DRAFT).update(status=TaskStatus.SCHEDULED)
    audit_record(action="task.schedule", target_type="campaigns.Task", target_ids=[task.pk], by=by)
    task.refresh_from_db()
    return task


@dataclass(frozen=True)
class CancelResult:
    withdrawn: int
    kept_done: int


WITHDRAW_SQL = """
WITH old AS (
    SELECT id, status FROM campaigns_assignment
    WHERE task_id = %(task_id)s AND status = ANY(%(open)s) FOR UPDATE
), changed AS (
    UPDATE campaigns_assignment a SET status = 'withdrawn', updated_at = %(now)s
    FROM old WHERE a.id = old.id
    RETURNING a.id, old.status AS from_status
)
INSERT INTO campaigns_assignmentevent (assignment_id, from_status, to_status, by_id, at, reason, source)
SELECT id, from_status, 'withdrawn', %(by_id)s, %(now)s, %(reason)s, %(source)s FROM changed
"""


def task_cancel(*, task: Task, by, reason: str = "", source: str = EventSource.ADMIN) -> CancelResult:
    """Cancel: pending, notified, confirmed (and reopened, overdue) work is withdrawn; done work is kept. Safe
    while a dispatch runs: it waits for the task's lock, then withdraws what the dispatch created. Idempotent."""
    _dispatcher_check(task=task, by=by)
    now = timezone.now()
    with transaction.atomic():
        xact_lock(IdLock.TASK_DISPATCH, task.pk)
        task = Task.objects.select_for_update().get(pk=task.pk)
        if task.status == TaskStatus.CANCELLED:
            return CancelResult(withdrawn=0, kept_done=0)
        Task.objects.filter(pk=task.pk).update(status=TaskStatus.CANCELLED, cancelled_at=now)
        StoreTask.objects.filter(task=task, withdrawn_at__isnull=True).update(withdrawn_at=now)
        with connection.cursor() as cursor:
            cursor.execute(WITHDRAW_SQL, {"task_id": task.pk, "open": list(OPEN_STATUSES), "now": now,
                                          "by_id": getattr(by, "pk", None), "reason": reason[:200],
                                          "source": source})
            withdrawn = cursor.rowcount
        kept = Assignment.objects.filter(task=task, status=AssignmentStatus.DONE).count()
        audit_record(action="task.cancel", target_type="campaigns.Task", target_ids=[task.pk], by=by,
                     detail={"withdrawn": withdrawn, "kept_done": kept})
    return CancelResult(withdrawn=withdrawn, kept_done=kept)


WITHDRAW_MATERIALS_SQL = """
DELETE FROM campaigns_taskmaterial tm USING campaigns_task t, materials_material m
WHERE tm.task_id = t.id AND m.id = tm.material_id AND tm.material_id = ANY(%(material_ids)s)
  AND t.status IN ('draft', 'scheduled')
RETURNING t.id, t.title, t.created_by_id, m.title
"""


def task_materials_withdraw(*, material_ids: Sequence[int], reason: str) -> int:
    """Materials archived or expired leave the tasks not dispatched yet, and each task's author is told once.

    Dispatched tasks keep the row (it records the version that went out); stores stop seeing the material
    there because every page hands out usable materials only. Returns the attachments removed.
    """
    from stores.notices.services import notices_send

    if not material_ids:
        return 0
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WITHDRAW_MATERIALS_SQL, {"material_ids": list(material_ids)})
        removed = cursor.fetchall()
        by_task: dict[tuple[int, str, int | None], list[str]] = {}
        for task_id, task_title, author_id, material_title in removed:
            by_task.setdefault((task_id, task_title, author_id), []).append(material_title)
        why = _("已过期") if reason == "expired" else _("已归档")
        for (task_id, task_title, author_id), titles in by_task.items():
            if author_id:
                notices_send(user_ids=[author_id], title=_("任务“%(task)s”撤下了素材") % {"task": task_title},
                             body=_("素材%(why)s，已从这个未下发的任务中撤下：%(titles)s。如需附带素材，请重新选择。")
                             % {"why": why, "titles": "、".join(titles)},
                             link=f"/admin/campaigns/task/{task_id}/change/")
    return len(removed)


def tasks_redispatch_open(*, now: datetime | None = None) -> DispatchResult:
    """Beat: every dispatched task still before its deadline gets the stores that opened and the staff who
    joined since (the same two statements; what exists is left alone)."""
    now = now or timezone.now()
    stores = assignments = 0
    for task_id in Task.objects.filter(status=TaskStatus.DISPATCHED, deadline__gt=now).values_list("pk", flat=True):
        with transaction.atomic():
            xact_lock(IdLock.TASK_DISPATCH, task_id)
            task = Task.objects.select_related("campaign").get(pk=task_id)
            if task.status != TaskStatus.DISPATCHED:
                continue
            result = _dispatch_rows(task=task, by=None)
            if result.assignments:
                enqueue_after_commit(notify_task, task_id=task.pk)
        stores += result.stores
        assignments += result.assignments
    return DispatchResult(stores=stores, assignments=assignments)


# -- schedules and recurrence (beat) ------------------------------------------------------------------------
def _add_period(moment: datetime, recurrence: str, steps: int = 1) -> datetime:
    local = timezone.localtime(moment)
    if recurrence == Recurrence.DAILY:
        return moment + timedelta(days=steps)
    if recurrence == Recurrence.WEEKLY:
        return moment + timedelta(weeks=steps)
    month_index = local.month - 1 + steps
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


def task_recurrence_instance_create(*, task: Task, start_at: datetime) -> Task | None:
    """A scheduled copy of a recurring task for one period (targets, copy, checklist, materials). Idempotent:
    the instance of a period exists at most once (unique (recurrence_parent, start_at))."""
    with transaction.atomic():
        if Task.objects.filter(recurrence_parent=task, start_at=start_at).exists():
            return None
        instance = Task.objects.create(
            campaign=task.campaign, kind=task.kind, title=task.title, instructions=task.instructions,
            executor=task.executor, executor_positions=task.executor_positions,
            target_store_kinds=task.target_store_kinds, target_cities=task.target_cities, segment=task.segment,
            start_at=start_at, deadline=start_at + (task.deadline - task.start_at), plan=task.plan,
            status=TaskStatus.SCHEDULED, review_by=task.review_by, recurrence_parent=task,
            created_by=task.created_by)
        instance.target_regions.set(task.target_regions.all())
        instance.target_franchisees.set(task.target_franchisees.all())
        instance.target_stores.set(task.target_stores.all())
        TaskMaterial.objects.bulk_create(TaskMaterial(task=instance, material_id=m)
                                         for m in task.task_materials.values_list("material_id", flat=True))
        ChecklistItem.objects.bulk_create(ChecklistItem(task=instance, order=c.order, text=c.text,
                                                        required=c.required, photo=c.photo)
                                          for c in task.checklist.all())
        TaskVariant.objects.bulk_create(TaskVariant(task=instance, order=v.order, name=v.name, title=v.title,
                                                    text=v.text, city=v.city, region_id=v.region_id,
                                                    store_kind=v.store_kind, weather=v.weather,
                                                    temperature_c=v.temperature_c) for v in task.variants.all())
    return instance


@dataclass
class BeatResult:
    instances: int = 0
    dispatched: int = 0
    refused: list[str] = field(default_factory=list)


def tasks_beat_run(*, now: datetime | None = None) -> BeatResult:
    """Create the recurrence instances that are due, then dispatch every scheduled task whose start has come."""
    now = now or timezone.now()
    result = BeatResult()
    roots = Task.objects.exclude(recurrence=Recurrence.NONE).filter(
        status__in=[TaskStatus.SCHEDULED, TaskStatus.DISPATCHED], recurrence_parent__isnull=True)
    for root in roots.select_related("campaign"):
        latest = root.instances.order_by("-start_at").values_list("start_at", flat=True).first() or root.start_at
        next_start = _add_period(latest, root.recurrence)
        until = root.recurrence_until
        if next_start <= now and (until is None or timezone.localtime(next_start).date() <= until):
            if task_recurrence_instance_create(task=root, start_at=next_start) is not None:
                result.instances += 1
    for task in Task.objects.filter(status=TaskStatus.SCHEDULED, start_at__lte=now).select_related("campaign"):
        try:
            task_dispatch(task=task, by=None)
            result.dispatched += 1
        except DomainError as exc:
            logger.warning("scheduled task %s not dispatched: %s", task.pk, exc)
            result.refused.append(f"{task.pk}: {exc}")
    return result


# -- notification hook --------------------------------------------------------------------------------------
Notifier = Callable[..., int]
TASK_NOTIFIERS: dict[str, Notifier] = {}


def task_notifier_register(*, name: str, notifier: Notifier) -> None:
    """The WeCom notifier (and any other) plugs in here: ``notifier(task_id=…) -> members notified``. It must be
    idempotent (it is called after every dispatch that created assignments, and on retries)."""
    registry_add(TASK_NOTIFIERS, name, notifier, what="task notifier")


def task_notify(*, task_id: int) -> int:
    task = Task.objects.filter(pk=task_id).only("status").first()
    if task is None or task.status != TaskStatus.DISPATCHED:
        return 0
    return sum(notifier(task_id=task_id) for notifier in TASK_NOTIFIERS.values())


# -- assignment states --------------------------------------------------------------------------------------
ACTION_LABELS = {"confirm": gettext_lazy("确认"), "done": gettext_lazy("完成"), "excuse": gettext_lazy("免除"),
                 "reject": gettext_lazy("驳回"), "reopen": gettext_lazy("重新打开")}


def _assignment_for(*, assignment: Assignment, by) -> Assignment:
    """The assignment as the actor may see it, locked; AssignmentNotFound (as for a missing one) otherwise."""
    found = (Assignment.objects.for_user(by).select_for_update(of=("self",))
             .select_related("task", "store").filter(pk=assignment.pk).first())
    if found is None:
        raise AssignmentNotFound(_("找不到这条任务，或你无权处理"))
    return found


def _may_work(*, assignment: Assignment, by) -> None:
    """Confirm, finish, tick, photograph, follow up: staff on their own, the store manager on their store's."""
    role = _role(by)
    if by is not None and by.is_superuser:
        return
    if role not in STORE_WORKERS:
        raise AssignmentRefused(_("只有门店的店长和员工可以执行任务"))
    if role == Role.STORE_STAFF and assignment.staff_id is not None \
            and assignment.staff_id != user_scope(by).staff_id:
        raise AssignmentNotFound(_("找不到这条任务，或你无权处理"))


def _may_review(*, assignment: Assignment, by) -> None:
    role = _role(by)
    review = assignment.task.review_by
    if review == ReviewBy.NONE:
        raise AssignmentRefused(_("此任务无需审核，不能驳回或重新打开"))
    allowed = HQ_REVIEWERS | ({Role.STORE_MANAGER} if review == ReviewBy.STORE_MANAGER else set())
    if role not in allowed:
        raise AssignmentRefused(_("只有审核人可以驳回或重新打开任务"))


def _transition(*, assignment: Assignment, by, action: str, to: str, allowed_from: Iterable[str],
                already: Iterable[str], source: str, reason: str = "",
                check: Callable[[Assignment], None] | None = None, stamps: dict | None = None) -> Assignment:
    with transaction.atomic():
        current = _assignment_for(assignment=assignment, by=by)
        if action in ("confirm", "done"):
            _may_work(assignment=current, by=by)
        elif action == "excuse":
            if _role(by) not in SUPERVISORS:
                raise AssignmentRefused(_("只有店长或上级可以免除任务"))
        else:
            _may_review(assignment=current, by=by)
        if current.status in set(already):
            return current  # done before: nothing changes, nothing is recorded
        if current.status not in set(allowed_from):
            raise AssignmentRefused(_("这条任务当前是“%(status)s”，不能%(action)s")
                                    % {"status": current.get_status_display(), "action": ACTION_LABELS[action]})
        if check is not None:
            check(current)
        now = timezone.now()
        updates = {"status": to, "updated_at": now, **{k: now for k in (stamps or {})}}
        if reason or to in (AssignmentStatus.EXCUSED, AssignmentStatus.REJECTED):
            updates["reason"] = reason
        Assignment.objects.filter(pk=current.pk).update(**updates)
        AssignmentEvent.objects.create(assignment=current, from_status=current.status, to_status=to,
                                       by=by if getattr(by, "pk", None) else None, at=now, reason=reason,
                                       source=source)
        current.refresh_from_db()
        return current


def _reason_required(reason: str, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AssignmentRefused(_("请填写%(what)s的原因") % {"what": what})
    return reason[:200]


def assignment_confirm(*, assignment: Assignment, by, source: str = EventSource.MOBILE) -> Assignment:
    """收到: the executor has seen the task. Confirming twice records one event."""
    return _transition(assignment=assignment, by=by, action="confirm", to=AssignmentStatus.CONFIRMED,
                       allowed_from=(AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.REOPENED,
                                     AssignmentStatus.OVERDUE),
                       already=(AssignmentStatus.CONFIRMED, AssignmentStatus.DONE), source=source,
                       stamps={"confirmed_at": True})


def _done_check(assignment: Assignment) -> None:
    items = list(ChecklistItem.objects.filter(task_id=assignment.task_id))
    ticked = set(ChecklistTick.objects.filter(assignment=assignment).values_list("item_id", flat=True))
    photographed = set(Evidence.objects.filter(assignment=assignment).values_list("item_id", flat=True))
    missing = [i.text for i in items if i.required and i.pk not in ticked]
    if missing:
        raise AssignmentRefused(_("还有检查项没有完成：%(items)s") % {"items": "、".join(missing[:5])})
    no_photo = [i.text for i in items if i.photo == PhotoRule.REQUIRED and i.pk not in photographed]
    if no_photo:
        raise AssignmentRefused(_("这些检查项需要拍照：%(items)s") % {"items": "、".join(no_photo[:5])})


def assignment_done(*, assignment: Assignment, by, source: str = EventSource.MOBILE) -> Assignment:
    """Finished: every required checklist item ticked, every photo-required item photographed."""
    return _transition(assignment=assignment, by=by, action="done", to=AssignmentStatus.DONE,
                       allowed_from=(AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.CONFIRMED,
                                     AssignmentStatus.REOPENED, AssignmentStatus.OVERDUE),
                       already=(AssignmentStatus.DONE,), source=source, check=_done_check,
                       stamps={"done_at": True})


def assignment_excuse(*, assignment: Assignment, by, reason: str, source: str = EventSource.MOBILE) -> Assignment:
    """Excused by the store manager (or above) with a reason: leave, store closed…"""
    reason = _reason_required(reason, _("免除"))
    return _transition(assignment=assignment, by=by, action="excuse", to=AssignmentStatus.EXCUSED,
                       allowed_from=OPEN_STATUSES, already=(AssignmentStatus.EXCUSED,), source=source, reason=reason)


def assignment_reject(*, assignment: Assignment, by, reason: str, source: str = EventSource.ADMIN) -> Assignment:
    """The reviewer refuses done work (evidence not good enough), with a reason."""
    reason = _reason_required(reason, _("驳回"))
    return _transition(assignment=assignment, by=by, action="reject", to=AssignmentStatus.REJECTED,
                       allowed_from=(AssignmentStatus.DONE,), already=(AssignmentStatus.REJECTED,), source=source,
                       reason=reason)


def assignment_reopen(*, assignment: Assignment, by, source: str = EventSource.ADMIN) -> Assignment:
    """A rejected assignment goes back to the executor."""
    return _transition(assignment=assignment, by=by, action="reopen", to=AssignmentStatus.REOPENED,
                       allowed_from=(AssignmentStatus.REJECTED,), already=(AssignmentStatus.REOPENED,),
                       source=source)


MARK_SQL = """
WITH old AS (
    SELECT a.id, a.status FROM campaigns_assignment a {join}
    WHERE {where} FOR UPDATE OF a SKIP LOCKED
), changed AS (
    UPDATE campaigns_assignment a SET status = %(to)s, updated_at = %(now)s {stamp}
    FROM old WHERE a.id = old.id
    RETURNING a.id, old.status AS from_status
)
INSERT INTO campaigns_assignmentevent (assignment_id, from_status, to_status, by_id, at, reason, source)
SELECT id, from_status, %(to)s, NULL, %(now)s, '', %(source)s FROM changed
"""


def assignments_mark_notified(*, assignment_ids: Sequence[int], source: str = EventSource.NOTIFIER) -> int:
    """The notifier sent these their message: pending → notified (others untouched). Returns how many changed."""
    if not assignment_ids:
        return 0
    sql = MARK_SQL.format(join="", where="a.id = ANY(%(ids)s) AND a.status = 'pending'",
                          stamp=", notified_at = %(now)s")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"ids": list(assignment_ids), "to": AssignmentStatus.NOTIFIED, "now": timezone.now(),
                             "source": source})
        return cursor.rowcount


def assignments_overdue_mark(*, now: datetime | None = None) -> int:
    """Beat: open work past its task's deadline becomes overdue (once; an overdue one is left alone)."""
    sql = MARK_SQL.format(join="JOIN campaigns_task t ON t.id = a.task_id",
                          where="t.status = 'dispatched' AND t.deadline < %(now)s AND a.status = ANY(%(open)s)",
                          stamp="")
    opened = [s for s in OPEN_STATUSES if s != AssignmentStatus.OVERDUE]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, {"open": opened, "to": AssignmentStatus.OVERDUE, "now": now or timezone.now(),
                             "source": EventSource.BEAT})
        return cursor.rowcount


# -- the work itself: checklist, photos, follow-ups ---------------------------------------------------------
def _open_for_work(*, assignment: Assignment, by) -> Assignment:
    current = _assignment_for(assignment=assignment, by=by)
    _may_work(assignment=current, by=by)
    if current.status not in OPEN_STATUSES:
        raise AssignmentRefused(_("这条任务当前是“%(status)s”，不能再修改") % {"status": current.get_status_display()})
    return current


def checklist_tick(*, assignment: Assignment, item: ChecklistItem, by, ticked: bool = True) -> bool:
    """Tick (or untick) a checklist item. Idempotent. Returns whether the item is now ticked."""
    with transaction.atomic():
        current = _open_for_work(assignment=assignment, by=by)
        if item.task_id != current.task_id:
            raise AssignmentRefused(_("这个检查项不属于这条任务"))
        if ticked:
            ChecklistTick.objects.get_or_create(assignment=current, item=item,
                                                defaults={"by": by, "at": timezone.now()})
        else:
            ChecklistTick.objects.filter(assignment=current, item=item).delete()
    return ticked


class PhotoRefused(AssignmentRefused):
    pass


def _heic_to_jpeg(data: bytes) -> bytes:
    """An iPhone's HEIC photo as JPEG (pillow-heif), its pixels checked before decoding."""
    import pillow_heif
    from PIL import Image, ImageOps

    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        width, height = heif.size
        if width * height > settings.XIAOER_MATERIAL_MAX_PIXELS:
            raise PhotoRefused(_("照片像素过多：上限为 %(max)s 像素，请缩小后再上传")
                               % {"max": f"{settings.XIAOER_MATERIAL_MAX_PIXELS:,}"})
        image = Image.frombytes(heif.mode, heif.size, heif.data, "raw", heif.mode, heif.stride)
        image = ImageOps.exif_transpose(image.convert("RGB"))
    except PhotoRefused:
        raise
    except (ValueError, RuntimeError, OSError, SyntaxError) as exc:
        raise PhotoRefused(_("HEIC 照片已损坏或无法读取，请在手机上改用“兼容性最佳”格式拍照后再上传")) from exc
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def evidence_add(*, assignment: Assignment, by, data: bytes, item: ChecklistItem | None = None,
                 taken_at: datetime | None = None, latitude: Decimal | None = None,
                 longitude: Decimal | None = None) -> Evidence:
    """A photo for an assignment, judged by its content (JPG, PNG, or HEIC converted to JPEG): not an image, too
    large or a decompression bomb is refused with the reason."""
    import filetype

    from materials.library.files import file_inspect
    from materials.library.storage import file_store

    limit = settings.XIAOER_EVIDENCE_MAX_BYTES
    if len(data) > limit:
        from django.template.defaultfilters import filesizeformat

        raise PhotoRefused(_("照片过大：上限为 %(max)s，请压缩后再上传") % {"max": filesizeformat(limit)})
    if not data:
        raise PhotoRefused(_("照片是空的，请重新拍照上传"))
    converted = ""
    sniffed = filetype.guess(data)
    if sniffed is not None and sniffed.extension in ("heic", "heif"):
        data, converted = _heic_to_jpeg(data), "HEIC"
    with transaction.atomic():
        current = _open_for_work(assignment=assignment, by=by)
        if item is not None and item.task_id != current.task_id:
            raise AssignmentRefused(_("这个检查项不属于这条任务"))
        if sniffed is None or (sniffed.extension not in ("jpg", "png", "heic", "heif")):
            raise PhotoRefused(_("这不是照片：只接受 JPG、PNG 或 iPhone 的 HEIC 照片"))
        try:
            facts = file_inspect(data=data, filename="", kind="image")
        except DomainError as exc:
            raise PhotoRefused(str(exc)) from exc
        name = file_store(data=data, facts=facts, prefix="evidence")
        return Evidence.objects.create(assignment=current, item=item, file=name, mime=facts.mime, size=facts.size,
                                       sha256=facts.sha256, width=facts.width, height=facts.height,
                                       converted_from=converted, taken_at=taken_at, latitude=latitude,
                                       longitude=longitude, by=by, at=timezone.now())


def followup_record(*, assignment: Assignment, customer, outcome: str, by, note: str = "") -> FollowUp:
    """The outcome of contacting one customer of the staff member's follow-up list (the latest one counts)."""
    if outcome not in FollowUpOutcome.values:
        raise AssignmentRefused(_("跟进结果不对"))
    with transaction.atomic():
        current = _open_for_work(assignment=assignment, by=by)
        if current.task.kind != TaskKind.FOLLOW_UP:
            raise AssignmentRefused(_("这条任务不是客户跟进清单"))
        if not followup_customers(assignment=current, viewer=by).filter(pk=customer.pk).exists():
            raise AssignmentRefused(_("这位客户不在你的跟进名单里"))
        followup, _created = FollowUp.objects.update_or_create(
            assignment=current, customer=customer,
            defaults={"outcome": outcome, "note": (note or "")[:200], "by": by, "at": timezone.now()})
        return followup


__all__ = [
    "AssignmentNotFound", "AssignmentRefused", "CancelResult", "ChecklistSpec", "DispatchResult", "EmptyTarget",
    "PhotoRefused", "TargetSpec", "TaskRefused", "VariantSpec", "assignment_confirm", "assignment_done",
    "assignment_excuse", "assignment_reject", "assignment_reopen", "assignments_mark_notified",
    "assignments_overdue_mark", "campaign_create", "checklist_tick", "evidence_add", "followup_record",
    "store_codes_parse", "task_cancel", "task_create", "task_dispatch", "task_notifier_register", "task_notify",
    "task_plan_validate", "task_recurrence_instance_create", "task_schedule", "task_update", "tasks_beat_run",
    "tasks_redispatch_open",
]


# -- nudges: a store manager's 催一下 on the mobile page ------------------------------------------------------
NUDGE_QUIET_MINUTES = 10  # a second nudge of the same work within this is the same nudge (a double tap)
Nudger = Callable[..., bool]
ASSIGNMENT_NUDGERS: dict[str, Nudger] = {}


def assignment_nudger_register(*, name: str, nudger: Nudger) -> None:
    """The WeCom notifier plugs in here: ``nudger(assignment_id=…, by_id=…) -> bool``, True when it has queued
    a message to the member (it sends after commit, through the gateway). Without one a nudge is recorded only."""
    registry_add(ASSIGNMENT_NUDGERS, name, nudger, what="assignment nudger")


@dataclass(frozen=True)
class NudgeResult:
    recorded: bool  # False: the same work was nudged within NUDGE_QUIET_MINUTES (nothing new recorded)
    sent: bool  # a registered nudger queued a WeCom message


def assignment_nudge(*, assignment: Assignment, by) -> NudgeResult:
    """A supervisor (the store manager or above) reminds the executor of open work. Recorded (audit
    ``assignment.nudge``) at most once per NUDGE_QUIET_MINUTES; the registered nudgers send the message."""
    from portal.models import AuditEvent

    with transaction.atomic():
        current = _assignment_for(assignment=assignment, by=by)  # locked: two taps at once nudge once
        if _role(by) not in SUPERVISORS:
            raise AssignmentRefused(_("只有店长或上级可以催办"))
        if current.status not in OPEN_STATUSES:
            raise AssignmentRefused(_("这条任务当前是“%(status)s”，无需催办")
                                    % {"status": current.get_status_display()})
        since = timezone.now() - timedelta(minutes=NUDGE_QUIET_MINUTES)
        if AuditEvent.objects.filter(action="assignment.nudge", target_type="campaigns.Assignment",
                                     target_ids__contains=[current.pk], at__gte=since).exists():
            return NudgeResult(recorded=False, sent=False)
        audit_record(action="assignment.nudge", target_type="campaigns.Assignment", target_ids=[current.pk], by=by,
                     detail={"staff_id": current.staff_id, "store_id": current.store_id})
        sent = False
        for nudger in ASSIGNMENT_NUDGERS.values():
            sent = bool(nudger(assignment_id=current.pk, by_id=getattr(by, "pk", None))) or sent
    return NudgeResult(recorded=True, sent=sent)


def assignment_nudges_count(*, assignment: Assignment) -> int:
    from portal.models import AuditEvent

    return AuditEvent.objects.filter(action="assignment.nudge", target_type="campaigns.Assignment",
                                     target_ids__contains=[assignment.pk]).count()
