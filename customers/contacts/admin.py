"""Customers and relationships in the admin: fast at 10 M rows, scoped, one page per customer.

The list filters and counts only on the customer row itself (primary store, region, stage, tag ids);
searches are exact lookups or an indexed name prefix / trigram match, never a scan. The change page is
the unified customer view: relationships, tags, member data, stage history and transfer failures,
each shown only when there is something to show.
"""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.widgets import AutocompleteSelect
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields
from import_export.admin import ExportMixin

from customers.contacts.selection import (
    EXTERNAL_USERID,
    IDS_MAX,
    CustomerSelection,
    customer_selection_from_params,
    customer_selection_of_ids,
    customers_in_region,
    customers_search,
)
from customers.contacts.selectors import customer_sections
from customers.contacts.services import DESCRIPTION_MAX, REMARK_MAX, customer_sync_one, relationship_remark
from customers.members.services import mobile_masked
from customers.models import Customer, Member, Relationship, Tag
from customers.tags.services import customers_tag
from portal.admin_base import ScopedAdmin, scoped
from portal.pagination import capped_count
from portal.parsers import ValueInvalid, mobile_normalize
from portal.spreadsheets import SafeExportResource, SpreadsheetAdminMixin
from portal.wecom.gateway import WeComError
from portal.wecom.models import SyncRun
from stores.models import Region, Store

SYNC_NOW_MAX = 20
TAGS_SHOWN = 3


def _tag_names(tag_ids) -> dict[int, str]:
    return dict(Tag.objects.filter(pk__in=set(tag_ids)).values_list("pk", "name")) if tag_ids else {}


def _tags_text(names_by_id: dict[int, str], tag_ids: list[int]) -> str:
    names = [names_by_id.get(pk, "?") for pk in tag_ids or []]
    if not names:
        return "—"
    if len(names) > TAGS_SHOWN:
        return _("%(tags)s 等 %(n)d 个") % {"tags": "、".join(names[:TAGS_SHOWN]), "n": len(names)}
    return "、".join(names)


def _remark_mobile_masked(raw: str) -> str:
    try:
        return mobile_masked(mobile_normalize(raw))
    except ValueInvalid:  # a landline or a typo: show only its last digits
        return f"****{raw[-4:]}" if len(raw) > 4 else "****"


def _filter_id(list_filter: admin.SimpleListFilter) -> int | None:
    """The filter's chosen id; a non-numeric value in the URL is Django's "bad lookup" (a message, not a 500)."""
    value = list_filter.value()
    if value is None:
        return None
    if not value.isdigit():
        raise IncorrectLookupParameters(value)
    return int(value)


# -- filters ---------------------------------------------------------------------------------------------
class StoreAutocompleteFilter(admin.SimpleListFilter):
    """A store picked by typing (thousands of stores), offered and applied within the viewer's scope."""

    title = gettext_lazy("门店")
    parameter_name = "store__id__exact"
    template = "admin/customers/filter_autocomplete.html"

    def __init__(self, request, params, model, model_admin):
        self.request, self.model_admin = request, model_admin
        super().__init__(request, params, model, model_admin)

    @cached_property
    def chosen(self) -> Store | None:
        value = self.value()
        return scoped(Store.objects.all(), self.request.user).filter(pk=value).first() if \
            value and value.isdigit() else None

    def lookups(self, request, model_admin):
        return [(str(self.chosen.pk), str(self.chosen))] if self.chosen else []

    def has_output(self) -> bool:
        return True

    def queryset(self, request, queryset):
        chosen = _filter_id(self)
        return queryset if chosen is None else queryset.filter(store_id=chosen)

    def choices(self, changelist):
        self.base_query = changelist.get_query_string(remove=[self.parameter_name])
        widget = AutocompleteSelect(self.model_admin.model._meta.get_field("store"), self.model_admin.admin_site,
                                    attrs={"style": "width: 100%"})
        # A form field gives the widget its (scoped) choices; only the chosen store is ever rendered.
        field = forms.ModelChoiceField(queryset=scoped(Store.objects.all(), self.request.user), required=False,
                                       widget=widget)
        self.widget_html = field.widget.render(f"_filter_{self.parameter_name}",
                                               self.chosen.pk if self.chosen else None)
        yield {"selected": self.value() is None, "query_string": self.base_query, "display": _("全部")}


class RegionFilter(admin.SimpleListFilter):
    """A region and all its sub-regions, over the customer's own (denormalised) region."""

    title = gettext_lazy("区域")
    parameter_name = "region__id__exact"

    def lookups(self, request, model_admin):
        regions = scoped(Region.objects.all(), request.user).order_by("code")[:500]
        return [(str(r.pk), f"{'　' * (0 if r.level == Region.Level.AREA else 1)}{r.name}") for r in regions]

    def queryset(self, request, queryset):
        chosen = _filter_id(self)
        return queryset if chosen is None else customers_in_region(queryset=queryset, region_id=chosen)


class TagFilter(admin.SimpleListFilter):
    """Customers carrying a tag: ``tag_ids @> [id]`` on the GIN index; a dropdown (up to 3,000 tags)."""

    title = gettext_lazy("标签")
    parameter_name = "tag"
    template = "admin/customers/filter_select.html"

    def lookups(self, request, model_admin):
        return [(str(t.pk), str(t)) for t in Tag.objects.filter(deleted=False).select_related("group")
                .order_by("group__name", "-order", "name")]

    def queryset(self, request, queryset):
        chosen = _filter_id(self)
        return queryset if chosen is None else queryset.filter(tag_ids__contains=[chosen])


# -- export ---------------------------------------------------------------------------------------------
class CustomerResource(SafeExportResource):
    store = fields.Field(attribute="store__code", column_name=gettext_lazy("门店编码"))
    staff = fields.Field(attribute="staff__userid", column_name=gettext_lazy("主跟进员工"))
    tags = fields.Field(column_name=gettext_lazy("标签"))

    class Meta:
        model = Customer
        fields = ("external_userid", "name", "unionid", "kind", "gender", "corp_name", "store", "staff", "stage",
                  "active", "first_added_at", "tags")
        export_order = fields

    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        self.tag_names = dict(Tag.objects.values_list("pk", "name"))

    def dehydrate_tags(self, customer):
        return "、".join(self.tag_names.get(pk, "?") for pk in customer.tag_ids or [])


# -- the customer admin ----------------------------------------------------------------------------------
class RelationshipInline(admin.TabularInline):
    model = Relationship
    fk_name = "customer"
    fields = ("staff", "store", "status", "added_at", "ended_at", "remark", "description", "state", "channel",
              "tag_names")
    readonly_fields = fields
    extra, max_num, can_delete, show_change_link = 0, 0, False, True
    verbose_name_plural = gettext_lazy("跟进关系")

    def get_queryset(self, request):
        # Each store sees its own relationships, even on a customer it shares with another store.
        return scoped(super().get_queryset(request), request.user).select_related("staff", "store", "channel")

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("标签"))
    def tag_names(self, obj):
        return _tags_text(_tag_names(obj.tag_ids), obj.tag_ids)


class CustomerTagForm(forms.Form):
    tags = forms.ModelMultipleChoiceField(queryset=Tag.objects.none(), label=gettext_lazy("标签"),
                                          widget=forms.SelectMultiple(attrs={"size": 14}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tags = cast(forms.ModelChoiceField, self.fields["tags"])
        tags.queryset = (Tag.objects.filter(deleted=False, wecom_tag_id__isnull=False)
                         .select_related("group").order_by("group__name", "-order", "name"))


@admin.register(Customer)
class CustomerAdmin(SpreadsheetAdminMixin, ExportMixin, ScopedAdmin):
    resource_classes = [CustomerResource]
    list_display = ("name_shown", "store", "staff", "stage", "tags_shown", "first_added_at", "active")
    list_filter = ("stage", "active", RegionFilter, StoreAutocompleteFilter, TagFilter)
    list_select_related = ("store", "staff")
    search_fields = ("name",)  # shows the box; get_search_results decides how a term is matched
    search_help_text = gettext_lazy("昵称（开头匹配，3 个字以上也按包含匹配）；外部联系人ID（wm/wo 开头）、"
                                    "UnionID、会员手机号精确查找")
    raw_id_fields = ("staff", "store", "region", "franchisee", "channel", "member")
    ordering = ("-id",)
    sortable_by = ()  # every order but the primary key's would sort millions of rows
    inlines = [RelationshipInline]
    actions = ("tag_selected", "untag_selected", "sync_selected")
    change_form_template = "admin/customers/customer/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "external_userid", "unionid", "kind", "gender", "corp_name", "stage",
                           "tags_shown", "active", "first_added_at", "last_touch_at")}),
        (gettext_lazy("归属"), {"fields": ("store", "staff", "region", "franchisee", "channel", "member")}),
    )

    def get_resource_kwargs(self, request, *args, **kwargs):
        return {**super().get_resource_kwargs(request, *args, **kwargs), "user": request.user}

    def get_readonly_fields(self, request, obj=None):
        # Customers are WeCom's: nothing here is edited by hand (stage moves have their own actions).
        return [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]

    def get_fieldsets(self, request, obj=None):
        # The member link names the member: only when the viewer may see that member (its home store's scope).
        if obj is not None and obj.member_id and Member.objects.for_user(request.user).filter(
                pk=obj.member_id).exists():
            return self.fieldsets
        return [(name, {**options, "fields": tuple(f for f in options["fields"] if f != "member")})
                for name, options in self.fieldsets]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=gettext_lazy("昵称"), ordering="name")
    def name_shown(self, obj):
        return obj.name or obj.external_userid

    @admin.display(description=gettext_lazy("标签"))
    def tags_shown(self, obj):
        names = getattr(obj, "_tag_names", None)
        return _tags_text(names if names is not None else _tag_names(obj.tag_ids), obj.tag_ids)

    def get_changelist_instance(self, request):
        # One query for the names of every tag on the page (not one per row).
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        names = _tag_names({pk for row in rows for pk in row.tag_ids or []})
        for row in rows:
            row._tag_names = names
        return changelist

    @property
    def media(self):
        # The store filter's autocomplete widget (select2) on the changelist.
        widget = AutocompleteSelect(Customer._meta.get_field("store"), self.admin_site)
        return super().media + widget.media

    def get_search_results(self, request, queryset, search_term):
        # The same matching a stored selection (bulk tagging) applies in the worker.
        return customers_search(queryset=queryset, term=search_term), False

    # -- the unified customer page ------------------------------------------------------------------
    def get_urls(self):
        sync = self.admin_site.admin_view(self.sync_view)
        return [path("<int:object_id>/sync/", sync, name="customers_customer_sync"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        customer = self.get_object(request, object_id)
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                   "show_save_and_add_another": False, "show_delete": False}
        if customer is not None:
            context.update(customer_sections(customer=customer, viewer=request.user))
            context["can_sync"] = self.has_change_permission(request, customer)
        return super().change_view(request, object_id, form_url, context)

    def sync_view(self, request, object_id):
        customer = get_object_or_404(self.get_queryset(request), pk=object_id)
        if request.method != "POST" or not self.has_change_permission(request, customer):
            return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
        self._sync(request, [customer])
        return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))

    def _sync(self, request, customers) -> None:
        try:
            for customer in customers:
                customer_sync_one(customer=customer)
        except WeComError as exc:
            self.message_user(request, _("同步失败：%(error)s") % {"error": exc}, messages.ERROR)
            return
        self.message_user(request, _("已从企业微信同步 %(n)d 个客户") % {"n": len(customers)}, messages.SUCCESS)

    # -- actions ------------------------------------------------------------------------------------------
    @admin.action(description=gettext_lazy("立即从企业微信同步所选客户"), permissions=["change"])
    def sync_selected(self, request, queryset):
        customers = list(queryset.order_by("pk")[:SYNC_NOW_MAX + 1])
        if len(customers) > SYNC_NOW_MAX:
            self.message_user(request, _("一次最多同步 %(n)d 个客户；更多客户请用同步记录里的全量同步") % {
                "n": SYNC_NOW_MAX}, messages.WARNING)
            return
        self._sync(request, customers)

    @admin.action(description=gettext_lazy("给所选客户打标签"), permissions=["change"])
    def tag_selected(self, request, queryset):
        return self._tag_action(request, queryset, mode="add")

    @admin.action(description=gettext_lazy("给所选客户移除标签"), permissions=["change"])
    def untag_selected(self, request, queryset):
        return self._tag_action(request, queryset, mode="remove")

    def _tag_action(self, request, queryset, *, mode: str):
        if "apply" in request.POST:
            form = CustomerTagForm(request.POST)
            if form.is_valid():
                tags = list(form.cleaned_data["tags"])
                # a TagError or CustomerSelectionError is said on the list by ScopedAdmin
                run = customers_tag(selection=self._selection(request, queryset),
                                    add=tags if mode == "add" else [], remove=tags if mode == "remove" else [],
                                    viewer=request.user, by=request.user)
                self._tag_report(request, run)
                return None
        else:
            form = CustomerTagForm()
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "form": form,
                   "title": _("给客户打标签") if mode == "add" else _("给客户移除标签"),
                   "mode": mode, "action": "tag_selected" if mode == "add" else "untag_selected",
                   "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
                   "select_across": request.POST.get("select_across", "0"),
                   "count": capped_count(queryset), "preview": queryset[:10],
                   "action_checkbox_name": ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/customers/customer/tag.html", context)

    @staticmethod
    def _selection(request, queryset) -> CustomerSelection:
        """What the action means as data a job can store: the ticked rows (already scoped and filtered by the
        list), or with "select all" the list's own filters — the job re-applies them in the user's scope."""
        if request.POST.get("select_across") == "1":
            return customer_selection_from_params(params=request.GET)
        return customer_selection_of_ids(ids=list(queryset.values_list("pk", flat=True)[:IDS_MAX + 1]))

    def _tag_report(self, request, run: SyncRun) -> None:
        progress = run.progress
        if run.status == SyncRun.Status.DONE:
            text = _("已处理 %(c)d 个客户的 %(r)d 个跟进关系") % {"c": progress["customers_done"],
                                                        "r": progress["relationships_done"]}
            if progress["relationships_failed"]:
                text += _("；%(n)d 个被企业微信拒绝，原因见同步记录") % {"n": progress["relationships_failed"]}
            self.message_user(request, text, messages.WARNING if progress["relationships_failed"] else
                              messages.SUCCESS)
            return
        url = reverse("admin:wecom_syncrun_change", args=[run.pk])
        self.message_user(request, format_html(_("已开始为约 {} 个客户处理标签，<a href=\"{}\">查看进度</a>"),
                                               progress["customers_estimate"], url), messages.SUCCESS)


# -- relationships --------------------------------------------------------------------------------------
class RelationshipForm(forms.ModelForm):
    """Remark and description go to WeCom: its limits are checked here, before any call."""

    class Meta:
        model = Relationship
        fields = ("remark", "description")

    def _limited(self, name: str, limit: int, label: str) -> str:
        value = (self.cleaned_data.get(name) or "").strip()
        if len(value) > limit:
            raise forms.ValidationError(_("%(label)s最多 %(max)d 个字，现在有 %(n)d 个字") % {
                "label": label, "max": limit, "n": len(value)})
        return value

    def clean_remark(self):
        return self._limited("remark", REMARK_MAX, _("备注"))

    def clean_description(self):
        return self._limited("description", DESCRIPTION_MAX, _("描述"))


@admin.register(Relationship)
class RelationshipAdmin(ScopedAdmin):
    form = RelationshipForm
    list_display = ("customer", "staff", "store", "status", "added_at", "ended_at", "remark")
    list_filter = ("status", StoreAutocompleteFilter)
    list_select_related = ("customer", "staff", "store")
    search_fields = ("remark",)  # shows the box; exact lookups below
    search_help_text = gettext_lazy("外部联系人ID（wm/wo 开头）或员工企业微信账号，精确查找")
    raw_id_fields = ("customer", "staff", "store", "channel", "contact_way")
    ordering = ("-id",)
    sortable_by = ()
    fields = ("customer", "staff", "store", "status", "added_at", "ended_at", "add_way", "state", "channel",
              "contact_way", "campaign_ref", "remark", "description", "remark_mobiles_masked", "tags_shown",
              "synced_at")

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.fields if f not in ("remark", "description")]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @property
    def media(self):
        widget = AutocompleteSelect(Relationship._meta.get_field("store"), self.admin_site)
        return super().media + widget.media

    @admin.display(description=gettext_lazy("标签"))
    def tags_shown(self, obj):
        return _tags_text(_tag_names(obj.tag_ids), obj.tag_ids)

    @admin.display(description=gettext_lazy("备注手机号"))
    def remark_mobiles_masked(self, obj):
        # HQ and region users see many stores' customers: masked, as members' mobiles are.
        return "、".join(_remark_mobile_masked(m) for m in obj.remark_mobiles) or "—"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if EXTERNAL_USERID.match(term):
            return queryset.filter(customer__external_userid=term), False
        return queryset.filter(staff__userid=term), False

    def save_model(self, request, obj, form, change):
        current = Relationship.objects.select_related("staff", "customer").get(pk=obj.pk)
        relationship_remark(relationship=current, remark=form.cleaned_data["remark"],
                            description=form.cleaned_data["description"], by=request.user)

    # WeCom refusing the remark, or one too long, is a RemarkError: ScopedAdmin says so, nothing changes.
