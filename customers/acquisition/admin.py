"""Acquisition in the admin: channels, welcome messages, contact-way codes and welcome deliveries.

Thin: forms validate through the services, actions call them. Codes are scoped by store; the QR
download goes through the same scoped queryset, so another store's code is a 404 whatever the URL.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export import fields
from import_export.admin import ExportMixin

from customers.acquisition.errors import AcquisitionError
from customers.acquisition.services import (
    RUN_KIND,
    channel_code_validate,
    contact_way_create,
    contact_way_validate,
    contact_ways_create_for_region,
    contact_ways_deactivate,
    contact_ways_delete,
)
from customers.acquisition.state import contact_state_encode
from customers.acquisition.welcome import welcome_attachment_validate, welcome_preview, welcome_text_validate
from customers.models import Channel, ContactWay, Relationship, WelcomeDelivery, WelcomeMessage
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin, scoped
from portal.qr import qr_png_fetch_or_render
from portal.spreadsheets import SafeExportResource, SpreadsheetAdminMixin
from portal.wecom.models import SyncRun
from stores.access.scoping import user_scope
from stores.models import Region


# -- channels --------------------------------------------------------------------------------------
class ChannelChangeList(ChangeList):
    """Adds so far for the page's channels: one grouped query, not a count per row. The channels are the
    brand's, the adds the viewer's own: a region manager counts the relationships of its region only."""

    def get_results(self, request):
        super().get_results(request)
        ids = [channel.pk for channel in self.result_list]
        adds = dict(Relationship.objects.for_user(request.user).filter(channel_id__in=ids).order_by()
                    .values("channel_id")
                    .annotate(n=Count("pk")).values_list("channel_id", "n"))
        for channel in self.result_list:
            channel.adds_so_far = adds.get(channel.pk, 0)


class ChannelForm(forms.ModelForm):
    class Meta:
        model = Channel
        fields = ("code", "name", "kind", "owner", "goal", "auto_tags", "welcome", "active")

    def clean_code(self):
        try:
            return channel_code_validate(code=self.cleaned_data.get("code") or "")
        except AcquisitionError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Channel)
class ChannelAdmin(ScopedAdmin):
    form = ChannelForm
    list_display = ("code", "name", "kind", "owner", "goal", "adds", "goal_progress", "welcome", "active")
    list_filter = ("kind", "active")
    search_fields = ("name", "code__exact")
    list_select_related = ("owner", "welcome")
    raw_id_fields = ("owner",)
    filter_horizontal = ("auto_tags",)
    fields = ("code", "name", "kind", "owner", "goal", "auto_tags", "welcome", "active")

    def get_changelist(self, request, **kwargs):
        return ChannelChangeList

    def get_list_display(self, request):
        # The goal is the brand's; a viewer who counts only its own scope's adds is not shown a percentage of it.
        if user_scope(request.user).is_hq:
            return self.list_display
        return tuple(name for name in self.list_display if name != "goal_progress")

    @admin.display(description=_("已加粉"))
    def adds(self, obj):
        return getattr(obj, "adds_so_far", "—")

    @admin.display(description=_("目标完成"))
    def goal_progress(self, obj):
        adds = getattr(obj, "adds_so_far", None)
        if adds is None or not obj.goal:
            return "—"
        return f"{adds * 100 // obj.goal}%"


# -- welcome messages ------------------------------------------------------------------------------
class WelcomeMessageForm(forms.ModelForm):
    class Meta:
        model = WelcomeMessage
        fields = ("name", "text", "attachment", "attachment_data", "active")
        help_texts = {"text": _("可用变量：{客户昵称} {员工姓名} {门店名称}")}

    def clean(self):
        super().clean()
        data = self.cleaned_data
        try:
            welcome_text_validate(text=data.get("text") or "")
        except AcquisitionError as exc:
            self.add_error("text", str(exc))
        try:
            data["attachment_data"] = welcome_attachment_validate(attachment=data.get("attachment") or "",
                                                                  data=data.get("attachment_data") or {})
        except AcquisitionError as exc:
            self.add_error("attachment_data", str(exc))
        return data


@admin.register(WelcomeMessage)
class WelcomeMessageAdmin(ScopedAdmin):
    form = WelcomeMessageForm
    list_display = ("name", "preview", "attachment", "active")
    list_filter = ("active", "attachment")
    search_fields = ("name",)
    readonly_fields = ("preview",)

    @admin.display(description=_("预览（示例：客户小明、李导购、上海徐汇店）"))
    def preview(self, obj):
        return welcome_preview(welcome=obj) if obj and obj.pk else "—"


# -- contact-way codes -------------------------------------------------------------------------------
class ContactWayResource(SafeExportResource):
    store = fields.Field(attribute="store__code", column_name=_("门店编码"))
    staff = fields.Field(attribute="staff__userid", column_name=_("员工账号"))
    channel = fields.Field(attribute="channel__code", column_name=_("渠道编码"))

    class Meta:
        model = ContactWay
        fields = ("id", "name", "kind", "store", "staff", "channel", "campaign_ref", "state", "config_id", "qr_code",
                  "active", "last_error", "created_at")
        export_order = ("id", "name", "kind", "store", "staff", "channel", "campaign_ref", "state", "config_id",
                        "qr_code", "active", "last_error", "created_at")


class ContactWayAddForm(forms.ModelForm):
    class Meta:
        model = ContactWay
        fields = ("kind", "store", "staff", "channel", "campaign_ref", "welcome")

    def clean(self):
        super().clean()
        data = self.cleaned_data
        store, staff = data.get("store"), data.get("staff")
        if store is None:
            return data
        try:
            contact_way_validate(kind=data.get("kind") or "", store=store, staff=staff, channel=data.get("channel"))
            contact_state_encode(channel=data.get("channel"), store=store, staff=staff,
                                 campaign_ref=data.get("campaign_ref") or "")
        except AcquisitionError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class ContactWayStatusFilter(admin.SimpleListFilter):
    title = _("生成状态")
    parameter_name = "made"

    def lookups(self, request, model_admin):
        return (("ok", _("已生成")), ("error", _("生成失败")), ("pending", _("待生成")))

    def queryset(self, request, queryset):
        if self.value() == "ok":
            return queryset.filter(config_id__isnull=False)
        if self.value() == "error":
            return queryset.filter(config_id__isnull=True).exclude(last_error="")
        if self.value() == "pending":
            return queryset.filter(config_id__isnull=True, last_error="")
        return queryset


class RegionCodesForm(forms.Form):
    region = forms.ModelChoiceField(queryset=Region.objects.none(), label=_("区域（含下级区域）"))
    channel = forms.ModelChoiceField(queryset=Channel.objects.none(), label=_("渠道"), required=False)
    kind = forms.ChoiceField(choices=ContactWay.Kind.choices, label=_("活码类型"))

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["region"]).queryset = scoped(Region.objects.all(), user)
        channel = cast(forms.ModelChoiceField, self.fields["channel"])
        channel.queryset = scoped(Channel.objects.filter(active=True), user)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("kind") == ContactWay.Kind.CHANNEL_STORE and not data.get("channel"):
            self.add_error("channel", _("渠道门店码必须指定渠道"))
        if data.get("kind") == ContactWay.Kind.STORE and data.get("channel"):
            self.add_error("channel", _("门店码不带渠道；按渠道为门店生成活码请选“渠道门店码”"))
        return data


@admin.register(ContactWay)
class ContactWayAdmin(SpreadsheetAdminMixin, ExportMixin, ScopedAdmin):
    resource_classes = [ContactWayResource]
    change_list_template = "admin/customers/contactway/change_list.html"
    list_display = ("name", "kind", "store", "staff", "channel", "state", "active", "made", "last_error", "qr_link")
    list_filter = ("kind", "active", ContactWayStatusFilter, "channel", "store__region")
    search_fields = ("name", "state__exact", "config_id__exact", "store__code__exact")
    list_select_related = ("store", "staff", "channel")
    autocomplete_fields = ("store", "staff")
    actions = ("create_for_region", "deactivate_selected", "delete_selected")

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ContactWayAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ContactWayAddForm.Meta.fields
        return ("name", "welcome", "kind", "store", "staff", "channel", "campaign_ref", "state", "config_id",
                "qr_code", "active", "last_error", "created_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return ("kind", "store", "staff", "channel", "campaign_ref", "state", "config_id", "qr_code", "active",
                "last_error", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        way = contact_way_create(kind=data["kind"], store=data["store"], staff=data.get("staff"),
                                 channel=data.get("channel"), campaign_ref=data.get("campaign_ref") or "",
                                 welcome=data.get("welcome"), by=request.user)
        obj.pk = way.pk
        if way.last_error:
            self.message_user(request, _("活码未能在企业微信生成：%(error)s") % {"error": way.last_error},
                              messages.WARNING)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    def delete_model(self, request, obj):
        self.delete_queryset(request, ContactWay.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        deleted = contact_ways_delete(ways=queryset, by=request.user)
        if deleted < queryset.count():
            self.message_user(request, _("部分活码未能在企业微信删除，原因见“最近错误”"), messages.WARNING)

    @admin.display(description=_("已生成"), boolean=True)
    def made(self, obj):
        return bool(obj.config_id)

    @admin.display(description=_("二维码"))
    def qr_link(self, obj):
        if not obj.qr_code:
            return "—"
        url = reverse("admin:customers_contactway_qr", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("下载"))

    # -- QR download ------------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/qr.png", wrap(self.qr_view), name="customers_contactway_qr"),
            path("create-for-region/", wrap(self.region_view), name="customers_contactway_create_for_region"),
            *super().get_urls(),
        ]

    def qr_view(self, request, object_id):
        way = self.get_object(request, unquote(object_id))  # scoped: another store's code is not found
        if way is None or not self.has_view_permission(request, way):
            raise Http404
        if not way.qr_code:
            raise Http404(_("活码尚未在企业微信生成"))
        response = HttpResponse(qr_png_fetch_or_render(way.qr_code), content_type="image/png")
        response["Content-Disposition"] = f'attachment; filename="contact-way-{way.pk}.png"'
        return response

    # -- codes for every store of a region ---------------------------------------------------------
    @admin.action(description=_("为区域内每家门店批量生成活码"), permissions=["add"])
    def create_for_region(self, request, queryset):
        return HttpResponseRedirect(reverse("admin:customers_contactway_create_for_region"))

    def changelist_view(self, request, extra_context=None):
        # The region action needs no selected rows: it chooses its stores on its own form.
        if request.method == "POST" and request.POST.get("action") == "create_for_region":
            if not self.has_add_permission(request):
                raise PermissionDenied
            return self.create_for_region(request, self.get_queryset(request).none())
        runs = SyncRun.objects.filter(kind=RUN_KIND, progress__by=request.user.pk).order_by("-started_at")[:3]
        return super().changelist_view(request, {**(extra_context or {}), "region_runs": runs,
                                                 "can_create_for_region": self.has_add_permission(request)})

    def region_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = RegionCodesForm(request.POST or None, user=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                result = contact_ways_create_for_region(region=form.cleaned_data["region"],
                                                        channel=form.cleaned_data["channel"],
                                                        kind=form.cleaned_data["kind"], by=request.user)
            except AcquisitionError as exc:
                form.add_error(None, str(exc))
            else:
                text = _("已为 %(stores)d 家门店排队生成活码：新增 %(new)d 个，待在企业微信生成 %(pending)d 个，"
                         "进度见本页上方")
                self.message_user(request, text % {"stores": result.stores, "new": result.new_codes,
                                                   "pending": result.pending})
                return HttpResponseRedirect(reverse("admin:customers_contactway_changelist"))
        context = {**self.admin_site.each_context(request), "title": _("为区域批量生成活码"), "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/customers/contactway/create_for_region.html", context)

    @admin.action(description=_("停用所选活码（在企业微信删除，保留归因）"), permissions=["change"])
    def deactivate_selected(self, request, queryset):
        stopped = contact_ways_deactivate(ways=queryset, by=request.user)
        self.message_user(request, ngettext("已停用 %(n)d 个活码", "已停用 %(n)d 个活码", stopped) % {"n": stopped})


# -- welcome deliveries --------------------------------------------------------------------------
@admin.register(WelcomeDelivery)
class WelcomeDeliveryAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    list_display = ("sent_at", "status", "reason", "customer", "staff", "store", "welcome", "latency_ms")
    list_filter = ("status", "sent_at")
    search_fields = ("relationship__customer__external_userid__exact",)
    list_select_related = ("relationship__customer", "relationship__staff", "relationship__store", "welcome")
    raw_id_fields = ("relationship",)

    @admin.display(description=_("客户"))
    def customer(self, obj):
        return obj.relationship.customer

    @admin.display(description=_("员工"))
    def staff(self, obj):
        return obj.relationship.staff

    @admin.display(description=_("门店"))
    def store(self, obj):
        return obj.relationship.store
