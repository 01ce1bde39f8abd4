"""Members and member imports in the admin: fast at tens of millions of members, mobiles shown masked.

Search is exact and indexed: a member number, a unionid, or a mobile (hashed here and matched on
mobile_hash) — never a LIKE over the table. Filters: level (distinct levels read by a loose index
scan) and the home store's region (with its sub-regions).
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import NON_FIELD_ERRORS
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from customers.members import resources as member_resources
from customers.members.imports import (
    ACCEPTED_SUFFIXES,
    MemberImportError,
    cell_text,
    member_file_check,
    member_import_create,
)
from customers.members.resources import (
    PREVIEW_ROWS,
    MemberCSV,
    MemberFileEmpty,
    MemberFileTooLarge,
    MemberResource,
    MemberXLSX,
    too_large_message,
)
from customers.members.selectors import member_levels
from customers.members.services import members_unify, mobile_hash, mobile_masked
from customers.models import Member, MemberImport
from portal.admin_base import ScopedAdmin
from portal.parsers import ValueInvalid, mobile_normalize
from portal.uploads import FileRefused, upload_size_validate
from stores.access.scoping import region_ids_with_descendants
from stores.models import Region
from stores.org.admin import ScopedImportExportAdmin

UNIFY_ACTION_MAX = 10_000
INVALID_ROWS_SHOWN = 500  # a file with more bad rows is fixed from the first 500 (the count says how many)


class LevelFilter(admin.SimpleListFilter):
    title = _("会员等级")
    parameter_name = "level"

    def lookups(self, request, model_admin):
        return [(level, level) for level in member_levels()]

    def queryset(self, request, queryset):
        return queryset.filter(level=self.value()) if self.value() else queryset


class HomeStoreRegionFilter(admin.SimpleListFilter):
    """The home store's region, a 大区 including its cities (stores sit in city regions)."""

    title = _("归属区域")
    parameter_name = "home_region"

    def lookups(self, request, model_admin):
        regions = Region.objects.for_user(request.user).order_by("code")[:300]
        return [(str(r.pk), f"{r.code} {r.name}") for r in regions]

    def queryset(self, request, queryset):
        value = self.value()
        if not value or not value.isdigit():
            return queryset
        return queryset.filter(home_store__region_id__in=region_ids_with_descendants(region_ids=[int(value)]))


class MemberForm(forms.ModelForm):
    mobile = forms.CharField(label=_("新手机号"), required=False, max_length=32,
                             help_text=_("只在更换手机号时填写；系统只保存其哈希和掩码"))

    class Meta:
        model = Member
        fields = ("member_no", "name", "mobile", "unionid", "level", "points", "lifetime_spend", "order_count",
                  "last_purchase_on", "home_store")

    def clean_mobile(self):
        raw = self.cleaned_data.get("mobile", "").strip()
        if not raw:
            return ""
        try:
            return mobile_normalize(raw)
        except ValueInvalid as exc:
            raise forms.ValidationError(str(exc)) from exc

    def save(self, commit=True):
        mobile = self.cleaned_data.get("mobile")
        if mobile:
            self.instance.mobile_hash, self.instance.mobile_masked = mobile_hash(mobile), mobile_masked(mobile)
        return super().save(commit)


@dataclass
class InvalidRowShown:
    line: int  # the spreadsheet's line (line 1 is the header)
    messages: list[str]
    values: tuple


def _invalid_row_shown(row, labels: dict[str, str], headers: list[str]) -> InvalidRowShown:
    messages_ = []
    for key, errors in row.error_dict.items():
        label = labels.get(key, "") if key != NON_FIELD_ERRORS else ""
        # The widgets' messages name their column already; other messages may not.
        messages_ += [m if not label or m.startswith(label) else f"{label}：{m}" for m in map(str, errors)]
    # Cells as the import read them (cell_text: 13800001234 not 13800001234.0, dates as 2026-01-05).
    return InvalidRowShown(line=row.number + 1, messages=messages_, values=tuple(
        _masked_if_mobile(value) if header == labels["mobile_masked"] else cell_text(value)
        for header, value in zip(headers, row.values, strict=False)))


def _masked_if_mobile(value):
    """A good mobile in a bad row is shown masked, like everywhere else; a bad one as typed (to fix it)."""
    try:
        return mobile_masked(mobile_normalize(cell_text(value).strip()))
    except ValueInvalid:
        return cell_text(value)


def _failure_reason(result) -> str:
    if result.base_errors:
        return str(result.base_errors[0].error)
    if result.invalid_rows:
        labels = {field.attribute: str(field.column_name) for field in MemberResource.fields.values()}
        row = _invalid_row_shown(result.invalid_rows[0], labels, result.diff_headers)
        more = len(result.invalid_rows) - 1
        suffix = _("（另有 %(n)s 行有误）") % {"n": more} if more else ""
        return _("第 %(line)s 行：%(message)s") % {"line": row.line, "message": "；".join(row.messages)} + suffix
    row_errors = result.row_errors()
    return str(row_errors[0][1][0].error) if row_errors else ""


def import_preview_context(result) -> dict:
    """What the import page shows of a result: the bad rows (up to INVALID_ROWS_SHOWN) or the first
    PREVIEW_ROWS rows to be written, with the totals: rendering 10,000 rows took longer than reading them."""
    labels = {field.attribute: str(field.column_name) for field in MemberResource.fields.values()}
    invalid = [_invalid_row_shown(row, labels, result.diff_headers) for row in result.invalid_rows[:INVALID_ROWS_SHOWN]]
    shown = [row for row in result.rows if row.diff is not None][:PREVIEW_ROWS]
    totals = {key: f"{value:,}" for key, value in result.totals.items()}
    listed = result.totals["new"] + result.totals["update"]
    context = {
        "invalid_shown": invalid,
        "preview_rows": shown,
        "preview_totals": _("文件共 %(total)s 行：新增 %(new)s 行，更新 %(update)s 行，无变化 %(skip)s 行（不写入）")
        % {**totals, "total": f"{result.total_rows:,}"},
    }
    if len(result.invalid_rows) > len(invalid):
        context["invalid_note"] = _("共 %(n)s 行有误，仅显示前 %(shown)s 行") % {
            "n": f"{len(result.invalid_rows):,}", "shown": len(invalid)}
    if listed > len(shown):
        context["preview_note"] = _("共 %(n)s 行，仅显示前 %(shown)s 行") % {"n": f"{listed:,}", "shown": len(shown)}
    return context


@admin.register(Member)
class MemberAdmin(ScopedImportExportAdmin):
    resource_classes = [MemberResource]
    import_template_name = "admin/customers/member/import.html"
    skip_admin_log = True  # MemberResource records one audit event per imported file instead
    form = MemberForm
    list_display = ("member_no", "name", "mobile_masked", "level", "points", "lifetime_spend", "order_count",
                    "last_purchase_on", "home_store", "rfm", "customer_link")
    list_select_related = ("home_store", "customer")
    list_filter = (LevelFilter, HomeStoreRegionFilter)
    search_fields = ("=member_no",)  # replaced by get_search_results: exact, indexed lookups only
    search_help_text = _("输入完整的会员号、手机号或 UnionID 精确查找")
    autocomplete_fields = ("home_store",)
    readonly_fields = ("mobile_masked", "rfm", "customer_link", "updated_at")
    fieldsets = (
        (None, {"fields": ("member_no", "name", "mobile_masked", "mobile", "unionid", "level", "home_store")}),
        (_("消费"), {"fields": ("points", "lifetime_spend", "order_count", "last_purchase_on", "rfm")}),
        (_("关联"), {"fields": ("customer_link", "updated_at")}),
    )
    actions = ("unify_selected",)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(member_no=term) | Q(unionid=term)
        try:
            match |= Q(mobile_hash=mobile_hash(mobile_normalize(term)))
        except ValueInvalid:
            pass
        return queryset.filter(match), False

    # -- the Excel/CSV import (django-import-export) ----------------------------------------------------

    def get_import_formats(self):
        return [MemberCSV, MemberXLSX]  # what the fast path reads too; both refuse oversized files

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if context is not None:
            context["member_import_url"] = reverse("admin:customers_memberimport_add")
            context["member_import_max"] = f"{member_resources.WEB_IMPORT_MAX_ROWS:,}"
            if context.get("result") is not None:
                context.update(import_preview_context(context["result"]))
        return response

    def get_import_data_kwargs(self, **kwargs):
        # A row that turns bad between preview and confirm (a store closed meanwhile) rolls the whole
        # confirm back too: nothing is ever half-written.
        return {**super().get_import_data_kwargs(**kwargs), "rollback_on_validation_errors": True}

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            self.message_user(request, _("导入失败，未写入任何数据：%(reason)s。请重新上传文件预览。") % {
                "reason": _failure_reason(result)}, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:customers_member_import"))
        return super().process_result(result, request)

    def add_success_message(self, result, request):
        self.message_user(request, _("导入完成：新增 %(new)s 个会员，更新 %(update)s 个，%(skip)s 行无变化") % {
            key: f"{result.totals[key]:,}" for key in ("new", "update", "skip")}, messages.SUCCESS)

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, MemberFileTooLarge):
            form.add_error("import_file", format_html('{} <a href="{}">{}</a>', too_large_message(e.rows),
                                                      reverse("admin:customers_memberimport_add"), _("去上传")))
        elif isinstance(e, MemberFileEmpty):
            form.add_error("import_file", _("文件是空的"))
        elif isinstance(e, UnicodeDecodeError):
            form.add_error("import_file", _("CSV 文件不是 UTF-8 编码：请另存为 UTF-8 CSV 或 .xlsx"
                                            "（会员导入任务也接受 GBK）"))
        else:
            super().add_data_read_fail_error_to_form(form, e)

    @admin.display(description=_("RFM"))
    def rfm(self, obj):
        if obj.rfm_r is None and obj.rfm_f is None and obj.rfm_m is None:
            return "—"
        return "R{} F{} M{}".format(*(v if v is not None else "-" for v in (obj.rfm_r, obj.rfm_f, obj.rfm_m)))

    @admin.display(description=_("企业微信客户"))
    def customer_link(self, obj):
        customer = getattr(obj, "customer", None)
        if customer is None:
            return "—"
        try:
            url = reverse("admin:customers_customer_change", args=[customer.pk])
        except NoReverseMatch:
            return str(customer)
        return format_html('<a href="{}">{}</a>', url, customer)

    @admin.action(description=_("重新与企业微信客户匹配"), permissions=["change"])
    def unify_selected(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True)[:UNIFY_ACTION_MAX])
        result = members_unify(member_ids=ids)
        self.message_user(request, result.summary(), messages.WARNING if result.conflicts else messages.SUCCESS)


class MemberImportForm(forms.ModelForm):
    class Meta:
        model = MemberImport
        fields = ("file",)
        help_texts = {"file": _("CSV（UTF-8 或 GBK 编码）或 .xlsx；列：会员号、手机号、unionid、姓名、等级、积分、"
                                "累计消费、消费次数、最近消费日、归属门店编码。空白单元格不会覆盖已有数据。")}

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith(ACCEPTED_SUFFIXES):
            raise forms.ValidationError(_("只支持 CSV 或 .xlsx 文件"))
        try:
            upload_size_validate(upload=upload)
            member_file_check(upload)
        except (FileRefused, MemberImportError) as exc:
            raise forms.ValidationError(str(exc)) from exc
        upload.seek(0)
        return upload


@admin.register(MemberImport)
class MemberImportAdmin(ScopedAdmin):
    form = MemberImportForm
    list_display = ("id", "file_name", "status", "progress", "rows_created", "rows_updated", "error_count",
                    "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    list_select_related = ("created_by",)
    change_form_template = "admin/customers/memberimport/change_form.html"
    change_list_template = "admin/customers/memberimport/change_list.html"
    shown_fields = ("file_shown", "status", "progress", "rows_created", "rows_updated", "created_by", "created_at",
                    "finished_at", "error_list")

    def get_fields(self, request, obj=None):
        return ("file",) if obj is None else self.shown_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.shown_fields

    def has_change_permission(self, request, obj=None):
        return False  # a job is read-only once uploaded: its progress is shown, not edited

    def save_model(self, request, obj, form, change):
        job = member_import_create(file=form.cleaned_data["file"], by=request.user)
        obj.pk, obj.file, obj.status, obj.created_by, obj.created_at = (
            job.pk, job.file.name, job.status, job.created_by, job.created_at)
        self.message_user(request, _("文件已上传，导入已排队；本页会自动刷新显示进度"), messages.SUCCESS)

    def response_add(self, request, obj, post_url_continue=None):
        return HttpResponseRedirect(reverse("admin:customers_memberimport_change", args=[obj.pk]))

    def changelist_view(self, request, extra_context=None):
        running = MemberImport.objects.filter(status__in=[MemberImport.Status.QUEUED,
                                                          MemberImport.Status.RUNNING]).exists()
        return super().changelist_view(request, {**(extra_context or {}), "auto_refresh": running})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        running = obj is not None and obj.status in (MemberImport.Status.QUEUED, MemberImport.Status.RUNNING)
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "auto_refresh": running})

    @admin.display(description=_("文件"))
    def file_name(self, obj):
        return obj.file.name.rsplit("/", 1)[-1]

    @admin.display(description=_("文件"))
    def file_shown(self, obj):
        """The name only, never a link: the file holds plaintext mobiles, and it is deleted when the import ends."""
        if obj.file_removed_at is not None:
            return _("%(name)s（已于 %(at)s 删除）") % {
                "name": self.file_name(obj), "at": timezone.localtime(obj.file_removed_at).strftime("%Y-%m-%d %H:%M")}
        return _("%(name)s（导入结束后删除）") % {"name": self.file_name(obj)}

    @admin.display(description=_("进度"))
    def progress(self, obj):
        total = max(obj.rows_total, obj.rows_done)
        percent = 100 if obj.status == MemberImport.Status.DONE else (obj.rows_done * 100 // total if total else 0)
        return format_html('<progress max="100" value="{}"></progress> {} / {}（{}%）', percent,
                           f"{obj.rows_done:,}", f"{total:,}" if total else "?", percent)

    @admin.display(description=_("错误"))
    def error_count(self, obj):
        return sum(1 for e in obj.errors if e.get("line") is not None) or "—"

    @admin.display(description=_("错误与提示"))
    def error_list(self, obj):
        if not obj.errors:
            return "—"
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", (
            (_("第 %(line)s 行") % {"line": e["line"]} if e.get("line") is not None else "", e["message"])
            for e in obj.errors))
        return format_html('<table><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>',
                           _("行"), _("说明"), rows)
