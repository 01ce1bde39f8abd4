"""活动与任务后台：总部运营和加盟商（本加盟商门店）编写、预览、下发和取消任务；其他角色只读自己范围内的门店任务和执行记录。

Everything is written through campaigns.tasks.services; the form's target, positions and materials are form
fields (not the model's), handed to task_create / task_update, which check them against the actor's reach.
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from import_export import fields as ie_fields
from import_export.admin import ExportMixin

from campaigns.tasks.dashboard import TaskRollupAdminMixin
from campaigns.tasks.models import (
    Assignment,
    Campaign,
    ChecklistItem,
    StoreTask,
    Task,
    TaskStatus,
    TaskVariant,
)
from campaigns.tasks.selectors import task_target_preview
from campaigns.tasks.services import (
    TargetSpec,
    campaign_create,
    store_codes_parse,
    task_cancel,
    task_create,
    task_dispatch,
    task_update,
)
from materials.library.models import Material
from portal.admin_base import ScopedAdmin, UserFormMixin, scoped
from portal.errors import DomainError
from portal.spreadsheets import SafeExportResource, SpreadsheetAdminMixin
from stores.org.models import Franchisee, Region, Staff, Store


@admin.register(Campaign)
class CampaignAdmin(ScopedAdmin):
    list_display = ("name", "owner_franchisee", "starts_on", "ends_on", "owner", "created_at")
    list_select_related = ("owner_franchisee", "owner")
    search_fields = ("name",)
    fields = ("name", "goal", "starts_on", "ends_on")  # owner and owner franchisee are set by the service

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        campaign = campaign_create(by=request.user, name=data["name"], goal=data.get("goal") or "",
                                   starts_on=data.get("starts_on"), ends_on=data.get("ends_on"))
        obj.pk = obj.id = campaign.pk
        obj.refresh_from_db()


TARGET_FIELDS = ("regions", "franchisees", "store_kinds", "cities", "stores", "store_codes")


class TaskForm(forms.ModelForm):
    positions = forms.MultipleChoiceField(choices=Staff.Position.choices, label=_("执行岗位"), required=False,
                                          widget=forms.CheckboxSelectMultiple,
                                          help_text=_("每位员工执行时：留空表示全部在职员工"))
    regions = forms.ModelMultipleChoiceField(Region.objects.none(), label=_("目标区域（含下级）"), required=False)
    franchisees = forms.ModelMultipleChoiceField(Franchisee.objects.none(), label=_("目标加盟商"), required=False)
    store_kinds = forms.MultipleChoiceField(choices=Store.Kind.choices, label=_("目标门店类型"), required=False,
                                            widget=forms.CheckboxSelectMultiple,
                                            help_text=_("与其他目标同时选择时，只取这些类型的门店"))
    cities = forms.CharField(label=_("目标城市"), required=False, help_text=_("多个城市用逗号或空格分隔"))
    stores = forms.ModelMultipleChoiceField(Store.objects.none(), label=_("目标门店"), required=False)
    store_codes = forms.CharField(label=_("门店编码（可从 Excel 粘贴一列）"), required=False,
                                  widget=forms.Textarea(attrs={"rows": 3}))
    material_set = forms.ModelMultipleChoiceField(Material.objects.none(), label=_("附带素材"), required=False)

    class Meta:
        model = Task
        fields = ("campaign", "kind", "title", "instructions", "executor", "segment", "start_at", "deadline",
                  "plan", "recurrence", "recurrence_until", "review_by")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name, model in (("regions", Region), ("franchisees", Franchisee), ("stores", Store)):
            if name in self.fields:
                cast(forms.ModelMultipleChoiceField, self.fields[name]).queryset = scoped(model.objects.all(), user)
        if "material_set" in self.fields:
            cast(forms.ModelMultipleChoiceField, self.fields["material_set"]).queryset = \
                Material.objects.for_user(user).usable()
        task = self.instance
        if task.pk:
            self.initial.update(
                positions=task.executor_positions, regions=list(task.target_regions.all()),
                franchisees=list(task.target_franchisees.all()), store_kinds=task.target_store_kinds,
                cities=" ".join(task.target_cities), stores=list(task.target_stores.all()),
                material_set=list(task.materials.all()))

    def target(self) -> TargetSpec:
        data = self.cleaned_data
        return TargetSpec(regions=list(data.get("regions") or []), franchisees=list(data.get("franchisees") or []),
                          store_kinds=list(data.get("store_kinds") or []),
                          cities=store_codes_parse(text=data.get("cities") or ""),
                          stores=list(data.get("stores") or []),
                          store_codes=store_codes_parse(text=data.get("store_codes") or ""))


class TaskPartInline(admin.TabularInline):
    extra = 0

    def _editable(self, obj) -> bool:
        return obj is None or obj.status in (TaskStatus.DRAFT, TaskStatus.SCHEDULED)

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs.setdefault("queryset", scoped(db_field.remote_field.model._default_manager.all(), request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TaskVariantInline(TaskPartInline):
    model = TaskVariant
    fields = ("order", "name", "city", "region", "store_kind", "weather", "temperature_c", "title", "text")
    verbose_name_plural = _("文案版本（按顺序第一个符合的生效，都不符合用任务说明）")


class ChecklistItemInline(TaskPartInline):
    model = ChecklistItem
    fields = ("order", "text", "required", "photo")


@admin.register(Task)
class TaskAdmin(UserFormMixin, TaskRollupAdminMixin, ScopedAdmin):  # the rollup page and the HQ dashboard: dashboard.py
    form = TaskForm
    list_display = ("title", "campaign", "kind", "status", "start_at", "deadline", "dispatched_at")
    list_filter = ("status", "kind", "campaign")
    list_select_related = ("campaign",)
    search_fields = ("title", "campaign__name")
    raw_id_fields = ("segment",)
    autocomplete_fields = ("campaign",)
    inlines = (TaskVariantInline, ChecklistItemInline)
    actions = ("dispatch_selected", "cancel_selected")
    readonly_fields = ("status", "target_preview")
    fieldsets = (
        (None, {"fields": ("campaign", "kind", "title", "instructions", "status")}),
        (_("执行"), {"fields": ("executor", "positions", "segment", "material_set", "review_by")}),
        (_("目标门店（任一满足即下发）"), {"fields": (*TARGET_FIELDS, "target_preview")}),
        (_("时间"), {"fields": ("start_at", "deadline", "plan", "recurrence", "recurrence_until")}),
    )

    def has_delete_permission(self, request, obj=None):
        return False  # tasks are cancelled, never deleted

    @admin.display(description=_("目标预览"))
    def target_preview(self, obj: Task | None):
        if obj is None or not obj.pk:
            return _("保存后显示目标门店与人数")
        preview = task_target_preview(task=obj, viewer=self._viewer)
        sample = format_html_join("、", "{}（{}）", ((name, code) for code, name in preview.sample))
        return format_html("{}<br>{}", _("门店 %(stores)d 家，执行员工 %(staff)d 人，将生成执行记录 %(n)d 条")
                           % {"stores": preview.stores, "staff": preview.staff, "n": preview.assignments}, sample)

    _viewer: Any = None

    def get_readonly_fields(self, request, obj=None):
        self._viewer = request.user
        return super().get_readonly_fields(request, obj)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            task = task_create(
                campaign=data["campaign"], by=request.user, kind=data["kind"], title=data["title"],
                instructions=data.get("instructions") or "", executor=data["executor"],
                positions=data.get("positions") or [], target=form.target(),
                materials=data.get("material_set") or [], segment=data.get("segment"), start_at=data["start_at"],
                deadline=data["deadline"], plan=data.get("plan") or {}, recurrence=data["recurrence"],
                recurrence_until=data.get("recurrence_until"), review_by=data["review_by"])
            obj.pk = obj.id = task.pk
            obj.refresh_from_db()
            return
        stored = Task.objects.get(pk=obj.pk)
        model_fields = set(TaskForm.Meta.fields) - {"campaign"}  # a task stays in its campaign
        changes = {name: data[name] for name in form.changed_data if name in model_fields}
        if "positions" in form.changed_data:
            changes["executor_positions"] = data.get("positions") or []
        target = form.target() if set(TARGET_FIELDS) & set(form.changed_data) else None
        materials = data.get("material_set") or [] if "material_set" in form.changed_data else None
        task_update(task=stored, by=request.user, target=target, materials=materials, **changes)

    @admin.action(description=_("下发所选任务"), permissions=["change"])
    def dispatch_selected(self, request, queryset):
        for task in queryset.select_related("campaign")[:50]:
            try:
                result = task_dispatch(task=task, by=request.user)
            except DomainError as exc:
                self.message_user(request, f"{task.title}：{exc.message}", messages.ERROR)
            else:
                self.message_user(request, _("“%(title)s”已下发：新增门店任务 %(stores)d 条，执行记录 %(n)d 条")
                                  % {"title": task.title, "stores": result.stores, "n": result.assignments},
                                  messages.SUCCESS)

    @admin.action(description=_("取消所选任务（已完成的保留）"), permissions=["change"])
    def cancel_selected(self, request, queryset):
        for task in queryset.select_related("campaign")[:50]:
            try:
                result = task_cancel(task=task, by=request.user)
            except DomainError as exc:
                self.message_user(request, f"{task.title}：{exc.message}", messages.ERROR)
            else:
                self.message_user(request, _("“%(title)s”已取消：撤回 %(n)d 条，保留已完成 %(done)d 条")
                                  % {"title": task.title, "n": result.withdrawn, "done": result.kept_done},
                                  messages.SUCCESS)


class ReadOnlyListAdmin(ScopedAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(StoreTask)
class StoreTaskAdmin(ReadOnlyListAdmin):
    list_display = ("title", "task", "store", "variant", "created_at", "withdrawn_at")
    list_filter = ("task__status", "store__region", "task")
    list_select_related = ("task", "store", "variant")
    search_fields = ("=store__code", "store__name", "task__title")
    raw_id_fields = ("task", "store", "variant")


class AssignmentResource(SafeExportResource):
    task_title = ie_fields.Field(attribute="task__title", column_name=str(_("任务")))
    store_code = ie_fields.Field(attribute="store__code", column_name=str(_("门店编码")))
    store_name = ie_fields.Field(attribute="store__name", column_name=str(_("门店")))
    staff_name = ie_fields.Field(attribute="staff__name", column_name=str(_("员工")))
    status_label = ie_fields.Field(attribute="get_status_display", column_name=str(_("状态")))
    reason_text = ie_fields.Field(attribute="reason", column_name=str(_("原因")))
    confirmed = ie_fields.Field(attribute="confirmed_at", column_name=str(_("确认时间")))
    done = ie_fields.Field(attribute="done_at", column_name=str(_("完成时间")))

    class Meta:
        model = Assignment
        fields = ("id", "task_title", "store_code", "store_name", "staff_name", "status_label", "reason_text",
                  "confirmed", "done")
        export_order = fields

    def get_queryset(self):
        return super().get_queryset().select_related("task", "store", "staff")


@admin.register(Assignment)
class AssignmentAdmin(SpreadsheetAdminMixin, ExportMixin, ReadOnlyListAdmin):
    resource_classes = [AssignmentResource]
    list_display = ("task", "store", "staff", "status", "reason", "notified_at", "confirmed_at", "done_at")
    list_filter = ("status", "store__region", "store", "task")
    list_select_related = ("task", "store", "staff")
    search_fields = ("=store__code", "store__name", "staff__name", "task__title")
    raw_id_fields = ("store_task", "staff")


__all__: list[Any] = ["AssignmentAdmin", "CampaignAdmin", "StoreTaskAdmin", "TaskAdmin"]


# -- notifications, reminders and escalations, on the task's page (campaigns/tasks/notify.py) ----------------------
def _reminder_log(self, obj: Task | None):
    from django.utils import timezone

    from campaigns.tasks.selectors import task_reminder_log

    if obj is None or not obj.pk:
        return "-"
    log = task_reminder_log(task=obj, viewer=self._viewer)
    if not log.counts:
        return _("尚未发送任何通知")
    counts = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", log.counts)
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((timezone.localtime(r.created_at).strftime("%m-%d %H:%M"), r.get_kind_display(), r.step,
          f"{r.store.name}" + (f" · {r.assignment.staff.name}" if r.assignment and r.assignment.staff else ""),
          r.get_status_display(), "、".join(r.recipients) or "-", r.detail or "") for r in log.rows))
    return format_html(
        '<table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>'
        '<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>'
        '</thead><tbody>{}</tbody></table>',
        _("类型"), _("发送状态"), _("条数"), counts,
        _("时间"), _("类型"), _("步骤"), _("对象"), _("发送状态"), _("接收人"), _("说明"), rows)


TaskAdmin.reminder_log = admin.display(description=_("通知、提醒与升级记录"))(_reminder_log)  # type: ignore[attr-defined]
TaskAdmin.readonly_fields = (*TaskAdmin.readonly_fields, "reminder_log")  # type: ignore[assignment]
TaskAdmin.fieldsets = (*TaskAdmin.fieldsets,  # type: ignore[assignment]
                       (_("通知、提醒与升级"), {"fields": ("reminder_log",)}))
