"""The admin of logins' access (role and scope) and API tokens."""
from collections.abc import Callable
from typing import cast

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ScopedAdmin
from portal.api_defaults import api_resources
from stores.access.field_policy import user_edits_for_hq
from stores.access.services import (
    AccessError,
    ApiTokenError,
    access_grant,
    access_revoke,
    access_validate,
    api_token_default_expiry,
    api_token_issue,
    api_token_revoke,
    api_token_validate,
)
from stores.models import Access, ApiToken


class AccessForm(forms.ModelForm):
    class Meta:
        model = Access
        fields = ("user", "role", "regions", "franchisee", "store", "staff")

    def clean(self):
        super().clean()
        data = self.cleaned_data
        try:
            access_validate(role=data.get("role"), regions=list(data.get("regions") or []),
                            franchisee=data.get("franchisee"), store=data.get("store"), staff=data.get("staff"))
        except AccessError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(Access)
class AccessAdmin(ScopedAdmin):
    form = AccessForm
    list_display = ("user", "role", "franchisee", "store", "staff")
    list_filter = ("role",)
    search_fields = ("user__username", "user__display_name")
    list_select_related = ("user", "franchisee", "store", "staff")
    autocomplete_fields = ("user", "regions", "franchisee", "store", "staff")

    # Every field of an Access is HQ's (stores/access/field_policy.py): anyone else with a permission only reads.
    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and user_edits_for_hq(request.user)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and user_edits_for_hq(request.user)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = access_grant(user=data["user"], role=data["role"], regions=list(data["regions"]),
                             franchisee=data["franchisee"], store=data["store"], staff=data["staff"],
                             by=request.user)
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        pass  # access_grant already set the regions

    def delete_model(self, request, obj):
        access_revoke(accesses=Access.objects.filter(pk=obj.pk), by=request.user)

    def delete_queryset(self, request, queryset):
        access_revoke(accesses=queryset, by=request.user)


class ApiTokenForm(forms.ModelForm):
    resources = forms.MultipleChoiceField(label=_("可访问的接口"), required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text=_("不勾选表示全部接口"))

    class Meta:
        model = ApiToken
        fields = ("name", "user", "mode", "resources", "expires_at")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["resources"]).choices = list(api_resources().items())

    def clean(self):
        super().clean()
        data = self.cleaned_data
        try:
            api_token_validate(mode=data.get("mode") or "", resources=data.get("resources") or [],
                               expires_at=data.get("expires_at"))
        except ApiTokenError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class ApiTokenStateFilter(admin.SimpleListFilter):
    title = _("状态")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return ApiToken.State.choices

    def queryset(self, request, queryset):
        now = timezone.now()
        by_state: dict[str | None, Callable[[], QuerySet[ApiToken]]] = {
            ApiToken.State.ACTIVE: lambda: queryset.filter(revoked_at__isnull=True, expires_at__gt=now),
            ApiToken.State.EXPIRED: lambda: queryset.filter(revoked_at__isnull=True, expires_at__lte=now),
            ApiToken.State.REVOKED: lambda: queryset.filter(revoked_at__isnull=False),
        }
        return by_state.get(self.value(), lambda: queryset)()


@admin.register(ApiToken)
class ApiTokenAdmin(ScopedAdmin):
    form = ApiTokenForm
    list_display = ("name", "prefix", "user", "mode", "resources_display", "created_at", "expires_at", "state_display",
                    "last_used_at")
    list_filter = (ApiTokenStateFilter, "mode")
    search_fields = ("name", "prefix")
    fields = ("name", "user", "mode", "resources", "expires_at")
    radio_fields = {"mode": admin.HORIZONTAL}
    autocomplete_fields = ("user",)
    actions = ("revoke_selected",)

    def has_change_permission(self, request, obj=None):
        return False

    def get_changeform_initial_data(self, request):
        # Issued from the admin, a token starts read-only: HQ opts into writes.
        return {"mode": ApiToken.Mode.READ_ONLY, "expires_at": api_token_default_expiry(),
                **super().get_changeform_initial_data(request)}

    @admin.display(description=_("可访问的接口"))
    def resources_display(self, obj):
        return "、".join(obj.resources) if obj.resources else _("全部")

    @admin.display(description=_("状态"))
    def state_display(self, obj):
        return ApiToken.State(obj.state()).label

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        issued = api_token_issue(name=data["name"], user=data["user"], by=request.user, mode=data["mode"],
                                 resources=data["resources"], expires_at=data["expires_at"])
        obj.pk = issued.token.pk
        self.message_user(request, _("令牌已创建，请立即复制保存（只显示这一次）：%(key)s") % {"key": issued.key},
                          messages.WARNING)

    @admin.action(description=_("吊销所选令牌"), permissions=["delete"])
    def revoke_selected(self, request, queryset):
        revoked = api_token_revoke(tokens=queryset, by=request.user)
        self.message_user(request, _("已吊销 %(n)d 个令牌") % {"n": revoked})
