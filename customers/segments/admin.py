"""Segments in the admin: build a rule without typing JSON, see its live count, sample and meaning,
freeze it as a snapshot; read snapshots and the lifecycle history.

Thin: the form turns its fields into ``Segment.rule`` and validates it with the service; the page
and the "物化为快照" button call ``customers.segments.services``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.widgets import AutocompleteSelectMultiple, FilteredSelectMultiple
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from customers.models import (
    Channel,
    Customer,
    Segment,
    SegmentSnapshot,
    SegmentSnapshotMember,
    Stage,
    Tag,
)
from customers.segments.rules import RFM_KEYS, TAG_MODES, SegmentRuleError, segment_rule_validate
from customers.segments.selectors import segment_describe, segment_preview
from customers.segments.services import segment_snapshot_take
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin, scoped
from stores.models import Franchisee, Region, Staff, Store

SAMPLE_ROWS = 20


def customer_admin_url(pk: int) -> str | None:
    """The customer's page in the admin, if the customer admin is installed."""
    try:
        return reverse("admin:customers_customer_change", args=[pk])
    except NoReverseMatch:
        return None


# -- the rule form -------------------------------------------------------------------------------------
class DayBoundField(forms.CharField):
    """A date (2026-01-01) or a number of days before the day the segment is counted (30)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, max_length=10, help_text=_("日期如 2026-01-01，或天数如 30（表示 30 天前）"),
                         widget=forms.TextInput(attrs={"size": 12, "placeholder": "2026-01-01 / 30"}), **kwargs)

    def clean(self, value):
        value = (super().clean(value) or "").strip()
        if not value:
            return None
        if value.isdigit():
            return int(value)
        try:
            return dt.date.fromisoformat(value).isoformat()
        except ValueError as exc:
            raise forms.ValidationError(_("请填写日期（如 2026-01-01）或天数（如 30）")) from exc


# (form field, rule key, model, field of Customer/Channel whose admin autocomplete serves it)
ID_FIELDS = (
    ("tags_any", None, Tag, (Channel, "auto_tags")),
    ("tags_all", None, Tag, (Channel, "auto_tags")),
    ("tags_none", None, Tag, (Channel, "auto_tags")),
    ("regions", "regions", Region, (Customer, "region")),
    ("franchisees", "franchisees", Franchisee, (Customer, "franchisee")),
    ("stores", "stores", Store, (Customer, "store")),
    ("staff", "staff", Staff, (Customer, "staff")),
    ("channels", "channels", Channel, (Customer, "channel")),
)
YES_NO_ANY = (("", _("不限")), ("1", _("是")), ("0", _("否")))
LEVEL_SPLIT = re.compile(r"[,，、\s]+")


def _multi(label, help_text=""):
    return forms.ModelMultipleChoiceField(queryset=Tag.objects.none(), required=False, label=label,
                                          help_text=help_text)


class SegmentForm(forms.ModelForm):
    """Every condition of the rule language as a form field; ``clean`` writes ``instance.rule``."""

    user = None  # set by SegmentAdmin.get_form
    admin_site = admin.site

    tags_any = _multi(_("含任一标签"))
    tags_all = _multi(_("含全部标签"))
    tags_none = _multi(_("不含标签"))
    regions = _multi(_("区域"), _("含下级区域"))
    franchisees = _multi(_("加盟商"))
    stores = _multi(_("门店"), _("客户的主跟进门店"))
    staff = _multi(_("跟进员工"), _("客户的主跟进员工"))
    channels = _multi(_("来源渠道"))
    stages = forms.MultipleChoiceField(label=_("阶段"), choices=Stage.choices, required=False,
                                       widget=forms.CheckboxSelectMultiple)
    first_added_from = DayBoundField(label=_("首次添加：从"))
    first_added_to = DayBoundField(label=_("首次添加：到（含）"))
    last_touch_after = DayBoundField(label=_("最近触达：不早于"))
    last_touch_before = DayBoundField(label=_("最近触达：早于（含从未触达）"))
    active = forms.ChoiceField(label=_("仍是好友"), choices=YES_NO_ANY, required=False,
                               help_text=_("否：已与所有员工都不是好友（被删除或删除了员工）"))
    member = forms.ChoiceField(label=_("是会员"), choices=YES_NO_ANY, required=False)
    member_levels = forms.CharField(label=_("会员等级"), required=False, max_length=200,
                                    help_text=_("多个等级用逗号分隔，如：金卡，银卡"))
    spend_min = forms.DecimalField(label=_("累计消费不低于（元）"), required=False, min_value=0, decimal_places=2)
    spend_max = forms.DecimalField(label=_("累计消费不高于（元）"), required=False, min_value=0, decimal_places=2)
    rfm_r_min = forms.IntegerField(label=_("R 最低分"), required=False, min_value=0)
    rfm_r_max = forms.IntegerField(label=_("R 最高分"), required=False, min_value=0)
    rfm_f_min = forms.IntegerField(label=_("F 最低分"), required=False, min_value=0)
    rfm_f_max = forms.IntegerField(label=_("F 最高分"), required=False, min_value=0)
    rfm_m_min = forms.IntegerField(label=_("M 最低分"), required=False, min_value=0)
    rfm_m_max = forms.IntegerField(label=_("M 最高分"), required=False, min_value=0)

    class Meta:
        model = Segment
        fields = ("name",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, _key, model, (source_model, source_field) in ID_FIELDS:
            field = cast(forms.ModelChoiceField, self.fields[name])
            queryset = Tag.objects.filter(deleted=False) if model is Tag else model._default_manager.all()
            field.queryset = scoped(queryset, self.user)
            field.widget = self._widget(model, source_model._meta.get_field(source_field), field.label)
            field.widget.choices = field.choices  # a replaced widget must be given the field's choices
        if self.instance.pk:
            self.initial.update(_initial_from(self.instance.rule or {}))

    def _widget(self, model, source_field, label):
        """Autocomplete where the related admin can search; a filter box otherwise (tags, ~hundreds)."""
        model_admin = self.admin_site._registry.get(model)
        if model_admin is not None and model_admin.search_fields:
            return AutocompleteSelectMultiple(source_field, self.admin_site)
        return FilteredSelectMultiple(label, is_stacked=False)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        try:
            self.instance.rule = segment_rule_validate(rule=_rule_from(data))
        except SegmentRuleError as exc:
            for message in exc.messages:
                self.add_error(None, message)
        return data


def _rule_from(data: dict) -> dict:
    rule: dict = {}
    tags = {mode: sorted(t.pk for t in data[f"tags_{mode}"]) for mode in TAG_MODES if data.get(f"tags_{mode}")}
    if tags:
        rule["tags"] = tags
    for name, key, _model, _source in ID_FIELDS:
        if key and data.get(name):
            rule[key] = sorted(obj.pk for obj in data[name])
    if data.get("stages"):
        rule["stages"] = list(data["stages"])
    for key, ends in (("first_added", ("from", "to")), ("last_touch", ("after", "before"))):
        bounds = {end: data[f"{key}_{end}"] for end in ends if data.get(f"{key}_{end}") is not None}
        if bounds:
            rule[key] = bounds
    for key in ("active", "member"):
        if data.get(key) in ("1", "0"):
            rule[key] = data[key] == "1"
    levels = [v for v in LEVEL_SPLIT.split(data.get("member_levels") or "") if v]
    if levels:
        rule["member_levels"] = levels
    spend = {end: str(data[f"spend_{end}"]) for end in ("min", "max") if data.get(f"spend_{end}") is not None}
    if spend:
        rule["spend"] = spend
    rfm = {key: {end: data[f"rfm_{key}_{end}"] for end in ("min", "max") if data.get(f"rfm_{key}_{end}") is not None}
           for key in RFM_KEYS}
    if any(rfm.values()):
        rule["rfm"] = {key: bounds for key, bounds in rfm.items() if bounds}
    return rule


def _initial_from(rule: dict) -> dict:
    initial: dict = {f"tags_{mode}": ids for mode, ids in rule.get("tags", {}).items()}
    for name, key, _model, _source in ID_FIELDS:
        if key and key in rule:
            initial[name] = rule[key]
    initial["stages"] = rule.get("stages", [])
    for key in ("first_added", "last_touch"):
        for end, value in rule.get(key, {}).items():
            initial[f"{key}_{end}"] = value
    for key in ("active", "member"):
        if key in rule:
            initial[key] = "1" if rule[key] else "0"
    initial["member_levels"] = "，".join(rule.get("member_levels", []))
    for end, value in rule.get("spend", {}).items():
        initial[f"spend_{end}"] = value
    for key, bounds in rule.get("rfm", {}).items():
        for end, value in bounds.items():
            initial[f"rfm_{key}_{end}"] = value
    return initial


RULE_FIELDSETS = [
    (_("标签"), {"fields": ("tags_any", "tags_all", "tags_none")}),
    (_("组织"), {"fields": ("regions", "franchisees", "stores", "staff")}),
    (_("来源与阶段"), {"fields": ("channels", "stages")}),
    (_("时间"), {"fields": (("first_added_from", "first_added_to"), ("last_touch_after", "last_touch_before"))}),
    (_("状态"), {"fields": ("active", "member")}),
    (_("会员"), {"fields": ("member_levels", ("spend_min", "spend_max"), ("rfm_r_min", "rfm_r_max"),
                             ("rfm_f_min", "rfm_f_max"), ("rfm_m_min", "rfm_m_max"))}),
]


# -- segments --------------------------------------------------------------------------------------------
@admin.register(Segment)
class SegmentAdmin(ScopedAdmin):
    form = SegmentForm
    list_display = ("name", "last_count", "last_counted_at", "created_by", "created_at")
    search_fields = ("name",)
    list_select_related = ("created_by",)
    readonly_fields = ("rule_description", "rule_json")
    actions = ("materialize_selected",)
    change_form_template = "admin/customers/segment/change_form.html"

    def get_list_display(self, request):
        # The stored count is the whole brand's: only HQ viewers see it (others count their own scope).
        if request.user.has_perm("customers.change_segment"):
            return self.list_display
        return ("name", "created_at")

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"user": request.user, "admin_site": self.admin_site})

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.viewer = request.user  # whose scope the description names rows in
        return obj

    def get_fieldsets(self, request, obj=None):
        if not self.has_change_permission(request, obj) and obj is not None:
            # A reader sees the rule described in its own scope; the JSON's ids would list other scopes' rows.
            return [(None, {"fields": ("name", "rule_description")})]
        summary = [(_("规则（由上面的条件生成）"), {"fields": ("rule_description", "rule_json"),
                                                 "classes": ("collapse",)})] if obj else []
        return [(None, {"fields": ("name",)}), *RULE_FIELDSETS, *summary]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.display(description=_("规则说明"))
    def rule_description(self, obj):
        return segment_describe(rule=obj.rule, viewer=getattr(obj, "viewer", None)) if obj and obj.pk else "—"

    @admin.display(description=_("规则（JSON）"))
    def rule_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.rule, ensure_ascii=False, indent=2)) if obj else "—"

    def get_urls(self):
        materialize = self.admin_site.admin_view(self.materialize_view)
        return [path("<path:object_id>/materialize/", materialize, name="customers_segment_materialize"),
                *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = dict(extra_context or {})
        segment = self.get_object(request, unquote(object_id))
        if request.method == "GET" and segment is not None:
            extra.update(self._preview_context(request, segment))
        return super().change_view(request, object_id, form_url, extra)

    def _preview_context(self, request, segment: Segment) -> dict:
        context = {"can_materialize": request.user.has_perm("customers.add_segmentsnapshot")}
        try:
            preview = segment_preview(segment=segment, viewer=request.user)
        except SegmentRuleError as exc:
            return {**context, "preview_error": str(exc), "can_materialize": False}
        context["preview"], context["count_ms"] = preview, round(preview.seconds * 1000)
        context["sample_rows"] = [{"customer": c, "url": customer_admin_url(c.pk)} for c in preview.sample]
        if request.user.has_perm("customers.view_segmentsnapshot"):
            context["snapshots"] = [
                {"snapshot": s, "url": reverse("admin:customers_segmentsnapshot_change", args=[s.pk])}
                for s in SegmentSnapshot.objects.for_user(request.user).filter(segment=segment)
                .select_related("created_by").order_by("-id")[:10]]
        return context

    @method_decorator(require_POST)
    def materialize_view(self, request, object_id):
        if not request.user.has_perm("customers.add_segmentsnapshot"):
            raise PermissionDenied
        segment = self.get_object(request, unquote(object_id))
        if segment is None:
            raise Http404
        self._take_snapshot(request, segment)
        return redirect("admin:customers_segment_change", segment.pk)

    def _take_snapshot(self, request, segment: Segment) -> None:
        try:
            snapshot = segment_snapshot_take(segment=segment, by=request.user)
        except SegmentRuleError as exc:
            self.message_user(request, _("无法生成快照：%(e)s") % {"e": exc}, messages.ERROR)
            return
        if snapshot.status == SegmentSnapshot.Status.DONE:
            self.message_user(request, _("已生成快照“%(s)s”：%(n)d 人") % {"s": snapshot, "n": snapshot.size},
                              messages.SUCCESS)
        else:
            self.message_user(request, _("分层较大，快照“%(s)s”已在后台生成，刷新本页查看状态") % {"s": snapshot},
                              messages.INFO)

    @admin.action(description=_("物化为快照"), permissions=["snapshot"])
    def materialize_selected(self, request, queryset):
        for segment in queryset[:20]:  # a handful of segments, each one statement (or one task)
            self._take_snapshot(request, segment)

    def has_snapshot_permission(self, request):
        return request.user.has_perm("customers.add_segmentsnapshot")


# -- snapshots -------------------------------------------------------------------------------------------
@admin.register(SegmentSnapshot)
class SegmentSnapshotAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    list_display = ("__str__", "segment", "status", "size", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    list_select_related = ("segment", "created_by")
    search_fields = ("segment__name",)
    fields = ("segment", "status", "size", "created_by", "created_at", "finished_at", "error", "rule_description",
              "rule_json")
    readonly_fields = fields
    change_form_template = "admin/customers/segmentsnapshot/change_form.html"

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.viewer = request.user
        return obj

    @admin.display(description=_("规则说明"))
    def rule_description(self, obj):
        return segment_describe(rule=obj.rule, viewer=getattr(obj, "viewer", None))

    @admin.display(description=_("当时的规则"))
    def rule_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.rule, ensure_ascii=False, indent=2))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        snapshot = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if snapshot is not None:  # a few of its customers, only those the viewer may see
            ids = SegmentSnapshotMember.objects.filter(snapshot=snapshot).values("customer_id")
            customers = Customer.objects.for_user(request.user).filter(pk__in=ids).order_by()[:SAMPLE_ROWS]
            extra["sample_rows"] = [{"customer": c, "url": customer_admin_url(c.pk)} for c in customers]
        return super().change_view(request, object_id, form_url, extra)
