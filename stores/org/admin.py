from typing import cast

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from import_export.admin import ImportExportMixin

from portal.admin_base import ScopedAdmin, scoped
from portal.field_policy import field_policy_for
from portal.spreadsheets import SpreadsheetAdminMixin
from stores.models import Franchisee, Region, Staff, Store
from stores.org.resources import StaffResource, StoreResource
from stores.org.services import staff_depart, staff_move, store_close, store_reopen


class ScopedImportExportAdmin(SpreadsheetAdminMixin, ImportExportMixin, ScopedAdmin):
    """Import/export through resources that know the importing user's scope (CSV and .xlsx, formulas
    neutralised on the way out, uploads bounded on the way in: portal/spreadsheets.py)."""

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {**super().get_resource_kwargs(request, *args, **kwargs), "user": request.user}


@admin.register(Region)
class RegionAdmin(ScopedAdmin):
    list_display = ("code", "name", "level", "parent", "store_count")
    ordering = ("code",)
    list_filter = ("level",)
    search_fields = ("name", "code")
    list_select_related = ("parent",)
    autocomplete_fields = ("parent",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_store_count=Count("stores"))

    @admin.display(description=_("门店数"), ordering="_store_count")
    def store_count(self, obj):
        return obj._store_count


@admin.register(Franchisee)
class FranchiseeAdmin(ScopedAdmin):
    list_display = ("code", "name", "contact_name", "contact_phone", "contract_start", "contract_end", "status",
                    "store_count")
    list_filter = ("status",)
    search_fields = ("name", "code", "contact_name")
    ordering = ("code",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_store_count=Count("stores"))

    @admin.display(description=_("门店数"), ordering="_store_count")
    def store_count(self, obj):
        return obj._store_count


@admin.register(Store)
class StoreAdmin(ScopedImportExportAdmin):
    resource_classes = [StoreResource]
    list_display = ("code", "name", "city", "kind", "franchisee", "region", "status", "opened_on", "active_staff")
    list_filter = ("status", "kind", "region", "franchisee")
    search_fields = ("name", "code", "city")
    ordering = ("code",)
    list_select_related = ("region", "franchisee")
    autocomplete_fields = ("region", "franchisee")
    actions = ("close_selected", "reopen_selected")
    date_hierarchy = None

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _active_staff=Count("staff", filter=Q(staff__status=Staff.Status.ACTIVE))
        )

    @admin.display(description=_("在职员工"), ordering="_active_staff")
    def active_staff(self, obj):
        return obj._active_staff

    @admin.action(description=_("关闭所选门店"), permissions=["change"])
    def close_selected(self, request, queryset):
        closed = store_close(stores=queryset, by=request.user)
        self.message_user(request, ngettext("已关闭 %(n)d 家门店", "已关闭 %(n)d 家门店", closed) % {"n": closed})

    @admin.action(description=_("重新开业所选门店"), permissions=["change"])
    def reopen_selected(self, request, queryset):
        reopened = store_reopen(stores=queryset, by=request.user)
        self.message_user(request, ngettext("已重新开业 %(n)d 家门店", "已重新开业 %(n)d 家门店", reopened) % {
            "n": reopened})


class StaffMoveForm(forms.Form):
    to_store = forms.ModelChoiceField(queryset=Store.objects.none(), label=_("调往门店"))

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["to_store"]).queryset = scoped(Store.objects.open(), user)


@admin.register(Staff)
class StaffAdmin(ScopedImportExportAdmin):
    resource_classes = [StaffResource]
    list_display = ("userid", "name", "store", "position", "status", "customer_count", "joined_on", "departed_at")
    list_filter = ("status", "position", "store__region")
    search_fields = ("name", "userid", "mobile", "store__code")
    list_select_related = ("store",)
    autocomplete_fields = ("store",)
    readonly_fields = ("status", "customer_count", "departed_at")  # a departure is an action (it locks logins out)
    actions = ("move_selected", "depart_selected")

    def has_move_permission(self, request) -> bool:
        """Moving members changes their store: the field policy's call (HQ editors), besides the change right."""
        policy = field_policy_for(Staff)
        locked = policy.locked(user=request.user, creating=False) if policy is not None else {}
        return self.has_change_permission(request) and "store" not in locked

    def has_depart_permission(self, request) -> bool:
        """A departure locks the member's login out (whatever its role): HQ editors only, as a move."""
        return self.has_move_permission(request)

    @admin.action(description=_("调动所选员工到其他门店"), permissions=["move"])
    def move_selected(self, request, queryset):
        if "apply" in request.POST:
            form = StaffMoveForm(request.POST, user=request.user)
            if form.is_valid():
                moved = staff_move(staff=queryset, to_store=form.cleaned_data["to_store"], by=request.user)
                self.message_user(request, ngettext("已调动 %(n)d 名员工", "已调动 %(n)d 名员工", moved) % {"n": moved})
                return None
        else:
            form = StaffMoveForm(user=request.user)
        context = {**self.admin_site.each_context(request), "title": _("调动员工"), "form": form,
                   "queryset": queryset, "opts": self.model._meta,
                   "action_checkbox_name": ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/stores/staff/move.html", context)

    @admin.action(description=_("标记所选员工离职"), permissions=["depart"])
    def depart_selected(self, request, queryset):
        departed = staff_depart(staff=queryset, by=request.user)  # an OrgError is said by ScopedAdmin
        self.message_user(request, ngettext("已标记 %(n)d 名员工离职", "已标记 %(n)d 名员工离职", departed) % {
            "n": departed})
