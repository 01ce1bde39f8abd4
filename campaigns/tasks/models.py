"""The HQ→store task engine: campaigns, tasks (targets, variants, checklist), store tasks, assignments.

HQ (or a franchisee owner, for its own stores) writes a ``Task`` in a ``Campaign``; dispatching it creates, in
one set-based step, one ``StoreTask`` per target store (the variant of the copy chosen for that store, the text
rendered) and one ``Assignment`` per executor (the store as a whole, or each active staff member with the given
positions). Every change of an assignment's state is an ``AssignmentEvent`` (insert-only, database trigger).

Who sees what (stores/access/scoping.py):
* StoreTask, Assignment, ChecklistTick, Evidence, FollowUp belong to a store: scoped by it. A store staff member
  sees their own assignments and their store's store-level ones.
* Campaign and Task belong to no single store: HQ sees all; a franchisee owner sees its own (owner_franchisee)
  and those whose store tasks reach its stores; a region manager and store roles see a task (and its campaign)
  only when one of its store tasks reaches a store of their scope. A draft reaches nobody, so only its owner
  side sees it.
* TaskVariant, ChecklistItem, TaskMaterial are seen by whoever sees their task.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import ScopedQuerySet, ScopeKind, UserScope
from stores.org.models import Franchisee, Region, Staff, Store

_M = TypeVar("_M", bound=models.Model)


# -- scoping ------------------------------------------------------------------------------------------------
class CampaignQuerySet(ScopedQuerySet[_M]):
    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.NONE:
            return self.none()
        reaching: Q | Exists = Exists(StoreTask.objects.filter(store_id__in=scope.store_ids(),
                                                               task__campaign_id=OuterRef("pk")))
        if scope.kind == ScopeKind.FRANCHISEE:
            reaching = reaching | Q(owner_franchisee_id=scope.franchisee_id)
        return self.filter(reaching)


class TaskQuerySet(ScopedQuerySet[_M]):
    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.NONE:
            return self.none()
        reaching: Q | Exists = Exists(StoreTask.objects.filter(store_id__in=scope.store_ids(), task_id=OuterRef("pk")))
        if scope.kind == ScopeKind.FRANCHISEE:
            reaching = reaching | Q(campaign__owner_franchisee_id=scope.franchisee_id)
        return self.filter(reaching)


class TaskPartQuerySet(TaskQuerySet[_M]):
    """Variants, checklist items, attached materials: seen by whoever sees their task."""

    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        return self.filter(task__in=Task.objects.for_scope(scope).values("pk"))


class AssignmentQuerySet(ScopedQuerySet[_M]):
    """By store; a store staff member sees their own assignments and their store's store-level ones."""

    scope_store_field = "store"
    staff_path = ""  # "" on Assignment itself, "assignment__" on the rows that hang off one

    def for_scope(self, scope: UserScope) -> Self:
        if scope.kind == ScopeKind.SELF:
            p = self.staff_path
            if not scope.staff_id or not scope.store_id:
                return self.none()
            return self.filter(Q(**{f"{p}staff_id": scope.staff_id})
                               | Q(**{f"{p}staff__isnull": True, f"{p}store_id": scope.store_id}))
        return super().for_scope(scope)


class AssignmentPartQuerySet(AssignmentQuerySet[_M]):
    scope_store_field = "assignment__store"
    staff_path = "assignment__"


class StoreTaskQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "store"


# -- campaigns and tasks ------------------------------------------------------------------------------------
class Campaign(models.Model):
    name = models.CharField(_("活动名称"), max_length=100)
    goal = models.TextField(_("活动目标"), blank=True, max_length=2000)
    starts_on = models.DateField(_("开始日期"), null=True, blank=True)
    ends_on = models.DateField(_("结束日期"), null=True, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("负责人"), null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    owner_franchisee = models.ForeignKey(Franchisee, verbose_name=_("所属加盟商"), null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="+",
                                         help_text=_("加盟商自己的活动；空表示总部活动"))
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        verbose_name = _("活动")
        verbose_name_plural = _("活动")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(starts_on__isnull=True) | Q(ends_on__isnull=True)
                                   | Q(ends_on__gte=models.F("starts_on")), name="campaign_period_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


class TaskKind(models.TextChoices):
    """Extensible: a later kind (mass_send, moments) is a new choice plus its own executor logic."""

    OFFLINE = "offline", _("门店执行任务")
    FOLLOW_UP = "follow_up", _("客户跟进清单")
    SHARE_MATERIAL = "share_material", _("分享素材")
    NOTICE = "notice", _("通知阅读")


class TaskStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    SCHEDULED = "scheduled", _("待下发")
    DISPATCHED = "dispatched", _("已下发")
    CANCELLED = "cancelled", _("已取消")


class Executor(models.TextChoices):
    STORE = "store", _("门店整体")
    STAFF = "staff", _("每位员工")


class Recurrence(models.TextChoices):
    NONE = "none", _("不重复")
    DAILY = "daily", _("每天")
    WEEKLY = "weekly", _("每周")
    MONTHLY = "monthly", _("每月")


class ReviewBy(models.TextChoices):
    NONE = "none", _("无需审核")
    STORE_MANAGER = "store_manager", _("店长审核")
    HQ = "hq", _("总部审核")


class Task(models.Model):
    Kind = TaskKind
    Status = TaskStatus

    campaign = models.ForeignKey(Campaign, verbose_name=_("活动"), on_delete=models.PROTECT, related_name="tasks")
    kind = models.CharField(_("任务类型"), max_length=32, choices=TaskKind.choices, default=TaskKind.OFFLINE)
    title = models.CharField(_("任务标题"), max_length=100)
    instructions = models.TextField(_("任务说明"), blank=True, max_length=4000,
                                    help_text=_("可用变量：{门店名称} {员工姓名} {截止时间}"))
    executor = models.CharField(_("执行人"), max_length=16, choices=Executor.choices, default=Executor.STORE)
    executor_positions = ArrayField(models.CharField(max_length=16, choices=Staff.Position.choices),
                                    verbose_name=_("执行岗位"), default=list, blank=True,
                                    help_text=_("每位员工执行时：哪些岗位的员工；留空表示全部在职员工"))
    # Target: regions (with sub-regions), franchisees, cities and stores are united; store kinds narrow them
    # (alone, they select every store of the kind). Only open stores are reached.
    target_regions = models.ManyToManyField(Region, verbose_name=_("目标区域（含下级）"), blank=True, related_name="+")
    target_franchisees = models.ManyToManyField(Franchisee, verbose_name=_("目标加盟商"), blank=True,
                                                related_name="+")
    target_store_kinds = ArrayField(models.CharField(max_length=16, choices=Store.Kind.choices),
                                    verbose_name=_("目标门店类型"), default=list, blank=True)
    target_cities = ArrayField(models.CharField(max_length=64), verbose_name=_("目标城市"), default=list, blank=True)
    target_stores = models.ManyToManyField(Store, verbose_name=_("目标门店"), blank=True, related_name="+")
    materials: models.ManyToManyField = models.ManyToManyField(
        "materials.Material", verbose_name=_("附带素材"), blank=True, through="TaskMaterial", related_name="+")
    segment = models.ForeignKey("customers.Segment", verbose_name=_("跟进客户分层"), null=True, blank=True,
                                on_delete=models.PROTECT, related_name="+",
                                help_text=_("客户跟进清单：每位员工跟进该分层里自己的客户"))
    start_at = models.DateTimeField(_("开始时间"))
    deadline = models.DateTimeField(_("截止时间"))
    plan = models.JSONField(_("提醒与升级计划"), default=dict, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.DRAFT)
    recurrence = models.CharField(_("重复"), max_length=16, choices=Recurrence.choices, default=Recurrence.NONE)
    recurrence_until = models.DateField(_("重复截止日期"), null=True, blank=True)
    recurrence_parent = models.ForeignKey("self", verbose_name=_("重复来源"), null=True, blank=True,
                                          on_delete=models.PROTECT, related_name="instances", editable=False)
    review_by = models.CharField(_("审核"), max_length=16, choices=ReviewBy.choices, default=ReviewBy.NONE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("创建人"), null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+", editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    dispatched_at = models.DateTimeField(_("下发时间"), null=True, blank=True, editable=False)
    dispatched_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("下发人"), null=True, blank=True,
                                      on_delete=models.SET_NULL, related_name="+", editable=False)
    cancelled_at = models.DateTimeField(_("取消时间"), null=True, blank=True, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("任务")
        verbose_name_plural = _("任务")
        ordering = ["-start_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(deadline__gt=models.F("start_at")), name="task_deadline_after_start"),
            models.UniqueConstraint(fields=["recurrence_parent", "start_at"], name="task_recurrence_instance",
                                    condition=Q(recurrence_parent__isnull=False)),
        ]
        indexes = [models.Index(fields=["status", "start_at"], name="task_status_start"),
                   models.Index(fields=["status", "deadline"], name="task_status_deadline")]

    def __str__(self) -> str:
        return self.title


class TaskMaterial(models.Model):
    """A material attached to a task; the version that went out is recorded at dispatch."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="task_materials")
    material = models.ForeignKey("materials.Material", verbose_name=_("素材"), on_delete=models.PROTECT,
                                 related_name="+")
    version = models.ForeignKey("materials.MaterialVersion", verbose_name=_("下发时版本"), null=True, blank=True,
                                on_delete=models.PROTECT, related_name="+")

    objects = TaskPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("任务素材")
        verbose_name_plural = _("任务素材")
        constraints = [models.UniqueConstraint(fields=["task", "material"], name="task_material_unique")]

    def __str__(self) -> str:
        return f"{self.task_id}:{self.material_id}"


class WeatherCondition(models.TextChoices):
    RAIN = "rain", _("有雨")
    DRY = "dry", _("无雨")
    HOT = "hot", _("最高气温不低于")
    COLD = "cold", _("最低气温不高于")


class TaskVariant(models.Model):
    """A version of the copy for the stores its rule matches (all given conditions); the first match wins."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="variants")
    order = models.PositiveIntegerField(_("顺序"), default=0)
    name = models.CharField(_("名称"), max_length=64)
    city = models.CharField(_("城市"), max_length=64, blank=True)
    region = models.ForeignKey(Region, verbose_name=_("区域（含下级）"), null=True, blank=True,
                               on_delete=models.PROTECT, related_name="+")
    store_kind = models.CharField(_("门店类型"), max_length=16, choices=Store.Kind.choices, blank=True)
    weather = models.CharField(_("天气条件"), max_length=8, choices=WeatherCondition.choices, blank=True,
                               help_text=_("按门店所在城市在任务开始当天的天气预报"))
    temperature_c = models.SmallIntegerField(_("气温（℃）"), null=True, blank=True,
                                             help_text=_("“最高气温不低于 / 最低气温不高于”时填写"))
    title = models.CharField(_("标题"), max_length=100, blank=True, help_text=_("留空沿用任务标题"))
    text = models.TextField(_("文案"), max_length=4000)

    objects = TaskPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("文案版本")
        verbose_name_plural = _("文案版本")
        ordering = ["task", "order", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(weather__in=["hot", "cold"], temperature_c__isnull=False)
                                   | ~Q(weather__in=["hot", "cold"]), name="variant_temperature_given"),
        ]

    def __str__(self) -> str:
        return self.name


class PhotoRule(models.TextChoices):
    NONE = "none", _("无需照片")
    OPTIONAL = "optional", _("照片可选")
    REQUIRED = "required", _("必须拍照")


class ChecklistItem(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="checklist")
    order = models.PositiveIntegerField(_("顺序"), default=0)
    text = models.CharField(_("检查项"), max_length=200)
    required = models.BooleanField(_("必须完成"), default=True)
    photo = models.CharField(_("照片"), max_length=16, choices=PhotoRule.choices, default=PhotoRule.NONE)

    objects = TaskPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("检查项")
        verbose_name_plural = _("检查项")
        ordering = ["task", "order", "id"]

    def __str__(self) -> str:
        return self.text


# -- what a dispatch creates --------------------------------------------------------------------------------
class StoreTask(models.Model):
    task = models.ForeignKey(Task, verbose_name=_("任务"), on_delete=models.PROTECT, related_name="store_tasks")
    store = models.ForeignKey(Store, verbose_name=_("门店"), on_delete=models.PROTECT, related_name="+")
    variant = models.ForeignKey(TaskVariant, verbose_name=_("文案版本"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(_("标题"), max_length=100)
    text = models.TextField(_("文案"), blank=True)
    created_at = models.DateTimeField(_("下发时间"))
    withdrawn_at = models.DateTimeField(_("撤回时间"), null=True, blank=True)

    objects = StoreTaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("门店任务")
        verbose_name_plural = _("门店任务")
        ordering = ["task", "store_id"]
        constraints = [models.UniqueConstraint(fields=["task", "store"], name="store_task_unique")]
        indexes = [models.Index(fields=["store", "task"], name="store_task_store")]

    def __str__(self) -> str:
        return f"{self.title} · {self.store_id}"


class AssignmentStatus(models.TextChoices):
    PENDING = "pending", _("待通知")
    NOTIFIED = "notified", _("已通知")
    CONFIRMED = "confirmed", _("已确认")
    DONE = "done", _("已完成")
    OVERDUE = "overdue", _("已逾期")
    EXCUSED = "excused", _("已免除")
    REJECTED = "rejected", _("已驳回")
    REOPENED = "reopened", _("重新执行")
    WITHDRAWN = "withdrawn", _("已撤回")


OPEN_STATUSES = (AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.CONFIRMED,
                 AssignmentStatus.REOPENED, AssignmentStatus.OVERDUE)


class Assignment(models.Model):
    """Who executes a store task: a staff member, or the store as a whole (staff NULL). task and store are
    copied from the store task (set by the dispatch statement) so rollups group without a join; they carry no
    foreign-key constraint of their own (the store task's are checked), which halves the checks a 13,000-row
    dispatch pays at commit."""

    Status = AssignmentStatus

    store_task = models.ForeignKey(StoreTask, verbose_name=_("门店任务"), on_delete=models.PROTECT,
                                   related_name="assignments")
    task = models.ForeignKey(Task, verbose_name=_("任务"), on_delete=models.DO_NOTHING, related_name="+",
                             db_constraint=False)
    store = models.ForeignKey(Store, verbose_name=_("门店"), on_delete=models.DO_NOTHING, related_name="+",
                              db_constraint=False)
    staff = models.ForeignKey(Staff, verbose_name=_("员工"), null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+", help_text=_("空表示门店整体执行"))
    status = models.CharField(_("状态"), max_length=16, choices=AssignmentStatus.choices,
                              default=AssignmentStatus.PENDING)
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("下发时间"))
    updated_at = models.DateTimeField(_("更新时间"))
    notified_at = models.DateTimeField(_("通知时间"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("确认时间"), null=True, blank=True)
    done_at = models.DateTimeField(_("完成时间"), null=True, blank=True)

    objects = AssignmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("执行记录")
        verbose_name_plural = _("执行记录")
        ordering = ["store_task", "staff_id"]
        constraints = [
            models.UniqueConstraint(fields=["store_task", "staff"], name="assignment_unique",
                                    nulls_distinct=False),
        ]
        indexes = [
            models.Index(fields=["task", "status"], name="assignment_task_status"),
            models.Index(fields=["store", "status"], name="assignment_store_status"),
            models.Index(fields=["staff", "status"], name="assignment_staff_status"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}/{self.store_id}/{self.staff_id or '-'}"


class EventSource(models.TextChoices):
    DISPATCH = "dispatch", _("下发")
    MOBILE = "mobile", _("手机端")
    CARD = "card", _("企业微信卡片")
    ADMIN = "admin", _("后台")
    BEAT = "beat", _("定时任务")
    NOTIFIER = "notifier", _("通知")
    API = "api", _("接口")


class AssignmentEvent(models.Model):
    """One change of an assignment's state, kept forever: rows are only ever inserted (database trigger)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="events")
    from_status = models.CharField(_("原状态"), max_length=16, blank=True)
    to_status = models.CharField(_("新状态"), max_length=16)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("操作人"), null=True, blank=True,
                           on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(_("时间"))
    reason = models.CharField(_("原因"), max_length=200, blank=True)
    source = models.CharField(_("来源"), max_length=16, choices=EventSource.choices)

    objects = AssignmentPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("执行记录变更")
        verbose_name_plural = _("执行记录变更")
        ordering = ["assignment", "at", "id"]
        triggers = [
            pgtrigger.Protect(name="assignment_event_insert_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.assignment_id}: {self.from_status}→{self.to_status}"


class ChecklistTick(models.Model):
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ticks")
    item = models.ForeignKey(ChecklistItem, verbose_name=_("检查项"), on_delete=models.CASCADE, related_name="+")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(_("时间"))

    objects = AssignmentPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("检查项完成")
        verbose_name_plural = _("检查项完成")
        constraints = [models.UniqueConstraint(fields=["assignment", "item"], name="checklist_tick_unique")]

    def __str__(self) -> str:
        return f"{self.assignment_id}:{self.item_id}"


class Evidence(models.Model):
    """A photo taken for an assignment (a checklist item's, or the task's), stored content-addressed."""

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="evidence")
    item = models.ForeignKey(ChecklistItem, verbose_name=_("检查项"), null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    file = models.CharField(_("文件"), max_length=255)
    mime = models.CharField(_("文件类型"), max_length=100)
    size = models.BigIntegerField(_("大小（字节）"))
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField(_("宽"), null=True, blank=True)
    height = models.PositiveIntegerField(_("高"), null=True, blank=True)
    converted_from = models.CharField(_("原格式"), max_length=16, blank=True, help_text=_("例如 HEIC 转为 JPEG"))
    taken_at = models.DateTimeField(_("拍摄时间"), null=True, blank=True)
    latitude = models.DecimalField(_("纬度"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("经度"), max_digits=9, decimal_places=6, null=True, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("上传人"), null=True, on_delete=models.SET_NULL,
                           related_name="+")
    at = models.DateTimeField(_("上传时间"))

    objects = AssignmentPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("照片凭证")
        verbose_name_plural = _("照片凭证")
        ordering = ["assignment", "at"]

    def __str__(self) -> str:
        return f"{self.assignment_id}:{self.file}"


class FollowUpOutcome(models.TextChoices):
    REACHED = "reached", _("已联系")
    NO_ANSWER = "no_answer", _("未接通")
    NOT_INTERESTED = "not_interested", _("无意向")
    VISIT_BOOKED = "visit_booked", _("已预约到店")
    BOUGHT = "bought", _("已购买")


class FollowUp(models.Model):
    """The outcome of contacting one customer of a follow-up list (the latest one recorded)."""

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="followups")
    customer = models.ForeignKey("customers.Customer", verbose_name=_("客户"), on_delete=models.PROTECT,
                                 related_name="+")
    outcome = models.CharField(_("结果"), max_length=16, choices=FollowUpOutcome.choices)
    note = models.CharField(_("备注"), max_length=200, blank=True)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(_("时间"))

    objects = AssignmentPartQuerySet.as_manager()

    class Meta:
        verbose_name = _("客户跟进")
        verbose_name_plural = _("客户跟进")
        constraints = [models.UniqueConstraint(fields=["assignment", "customer"], name="followup_unique")]

    def __str__(self) -> str:
        return f"{self.assignment_id}:{self.customer_id}={self.outcome}"



# -- rollups: the counts per task and store, kept by database triggers (campaigns/tasks/rollups.py) ------------
class TaskStoreCountQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "store"


class TaskStoreCount(models.Model):
    """How a task's assignments of one store stand, kept in the same transaction as every change of an
    assignment (statement-level triggers on campaigns_assignment, installed by migration 0003_rollups), so the
    HQ dashboard sums one narrow row per store instead of every assignment. ``open`` is work not finished yet
    (overdue once the deadline has passed). Rebuilt from the assignments by ``task_rollups_reconcile``."""

    task = models.ForeignKey(Task, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    store = models.ForeignKey(Store, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    dispatched = models.IntegerField(default=0)
    notified = models.IntegerField(default=0)
    confirmed = models.IntegerField(default=0)
    done = models.IntegerField(default=0)
    on_time = models.IntegerField(default=0)
    open = models.IntegerField(default=0)
    excused = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)

    objects = TaskStoreCountQuerySet.as_manager()

    class Meta:
        verbose_name = _("门店任务统计")
        verbose_name_plural = _("门店任务统计")
        constraints = [models.UniqueConstraint(fields=["task", "store"], name="task_store_count_unique")]
        indexes = [models.Index(fields=["store", "task"], name="task_store_count_store")]

    def __str__(self) -> str:
        return f"{self.task_id}/{self.store_id}"


__all__: list[Any] = [
    "OPEN_STATUSES", "Assignment", "AssignmentEvent", "AssignmentStatus", "Campaign", "ChecklistItem",
    "ChecklistTick", "EventSource", "Evidence", "Executor", "FollowUp", "FollowUpOutcome", "PhotoRule",
    "Recurrence", "ReviewBy", "StoreTask", "Task", "TaskKind", "TaskMaterial", "TaskStatus", "TaskVariant",
    "WeatherCondition", "TaskStoreCount",
]


# -- notifications, reminders and escalations (campaigns/tasks/notify.py) ----------------------------------------
class ReminderKind(models.TextChoices):
    NOTIFY = "notify", _("任务通知")
    REMIND = "remind", _("截止前提醒")
    ESCALATE = "escalate", _("逾期升级")


class ReminderStatus(models.TextChoices):
    PENDING = "pending", _("待发送")
    SENT = "sent", _("已发送")
    DEFERRED = "deferred", _("限额内稍后发送")
    FAILED = "failed", _("发送失败，将重试")
    SKIPPED = "skipped", _("无人可发")


class ReminderLogQuerySet(ScopedQuerySet[_M]):
    """By store; a store staff member sees the rows of their own assignments."""

    scope_store_field = "store"

    def for_scope(self, scope: UserScope) -> Self:
        if scope.kind == ScopeKind.SELF:
            if not scope.staff_id:
                return self.none()
            return self.filter(assignment__staff_id=scope.staff_id)
        return super().for_scope(scope)


class ReminderLog(models.Model):
    """One step of telling people about a task: the notice after dispatch, a reminder before the deadline (both
    for one assignment), or an escalation after it (for one store task). A step is sent at most once per target
    (unique constraints), its recipients (WeCom userids) recorded with what became of the send."""

    Kind = ReminderKind
    Status = ReminderStatus

    task = models.ForeignKey(Task, verbose_name=_("任务"), on_delete=models.PROTECT, related_name="reminder_logs")
    store = models.ForeignKey(Store, verbose_name=_("门店"), on_delete=models.DO_NOTHING, related_name="+",
                              db_constraint=False)
    store_task = models.ForeignKey(StoreTask, verbose_name=_("门店任务"), on_delete=models.PROTECT, related_name="+")
    assignment = models.ForeignKey(Assignment, verbose_name=_("执行记录"), null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="reminder_logs",
                                   help_text=_("空表示针对整个门店任务（逾期升级）"))
    kind = models.CharField(_("类型"), max_length=16, choices=ReminderKind.choices)
    step = models.CharField(_("步骤"), max_length=32)
    status = models.CharField(_("发送状态"), max_length=16, choices=ReminderStatus.choices,
                              default=ReminderStatus.PENDING)
    recipients = ArrayField(models.CharField(max_length=64), verbose_name=_("接收人"), default=list, blank=True)
    detail = models.CharField(_("说明"), max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(_("发送次数"), default=0)
    retry_at = models.DateTimeField(_("下次发送"), null=True, blank=True)
    created_at = models.DateTimeField(_("创建时间"))
    sent_at = models.DateTimeField(_("发送时间"), null=True, blank=True)

    objects = ReminderLogQuerySet.as_manager()

    class Meta:
        verbose_name = _("提醒与升级记录")
        verbose_name_plural = _("提醒与升级记录")
        ordering = ["task", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["assignment", "step"], name="reminder_assignment_step_once",
                                    condition=Q(assignment__isnull=False)),
            models.UniqueConstraint(fields=["store_task", "step"], name="reminder_store_task_step_once",
                                    condition=Q(assignment__isnull=True)),
        ]
        indexes = [
            models.Index(fields=["status", "retry_at"], name="reminder_due",
                         condition=Q(status__in=["pending", "deferred", "failed"])),
            models.Index(fields=["task", "kind", "status"], name="reminder_task_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.task_id}/{self.step}/{self.assignment_id or self.store_task_id}"


__all__ += ["ReminderKind", "ReminderLog", "ReminderStatus"]
