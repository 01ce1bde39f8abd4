"""素材库后台：总部维护全品牌素材，加盟商维护自己的本地素材；版本、可见范围、发布与归档都经由 services。"""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from import_export import fields as ie_fields
from import_export.admin import ExportMixin

from materials.library.models import Folder, Material, MaterialKind, MaterialStatus, MaterialTag, MaterialVersion
from materials.library.services import (
    MaterialRefused,
    VersionContent,
    material_archive,
    material_audience_set,
    material_create,
    material_editable_check,
    material_publish,
    material_unarchive,
    material_update,
    material_version_add,
    material_version_restore,
    materials_bulk_archive,
)
from portal.admin_base import ScopedAdmin, UserFormMixin, scoped
from portal.spreadsheets import SafeExportResource, SpreadsheetAdminMixin
from portal.uploads import upload_size_validate
from stores.access.scoping import user_scope
from stores.org.models import Franchisee, Region, Store


@admin.register(Folder)
class FolderAdmin(ScopedAdmin):
    list_display = ("name", "parent", "order")
    search_fields = ("name",)
    autocomplete_fields = ("parent",)


@admin.register(MaterialTag)
class MaterialTagAdmin(ScopedAdmin):
    list_display = ("name",)
    search_fields = ("name",)


class MaterialForm(forms.ModelForm):
    """The material and, when content is given, its next version; the audience is set by the service."""

    audience_all = forms.BooleanField(label=_("全品牌可见"), required=False,
                                      help_text=_("加盟商素材：勾选即本加盟商全部门店可见"))
    audience_regions = forms.ModelMultipleChoiceField(Region.objects.none(), label=_("可见区域（含下级）"),
                                                      required=False)
    audience_franchisees = forms.ModelMultipleChoiceField(Franchisee.objects.none(), label=_("可见加盟商"),
                                                          required=False)
    audience_store_kinds = forms.MultipleChoiceField(choices=Store.Kind.choices, label=_("可见门店类型"),
                                                     required=False, widget=forms.CheckboxSelectMultiple)
    audience_stores = forms.ModelMultipleChoiceField(Store.objects.none(), label=_("可见门店"), required=False)
    tag_set = forms.ModelMultipleChoiceField(MaterialTag.objects.all(), label=_("标签"), required=False)
    upload = forms.FileField(label=_("上传文件（新版本）"), required=False,
                             help_text=_("图片 JPG/PNG ≤ 10MB，视频 MP4 ≤ 10MB，文件 PDF/Office ≤ 20MB"))
    text = forms.CharField(label=_("文字内容（新版本）"), required=False, widget=forms.Textarea(attrs={"rows": 5}),
                           help_text=_("话术可用变量：{客户称呼} {导购姓名} {门店名称} {门店地址} {营业时间}"))
    link_url = forms.URLField(label=_("链接地址"), required=False, max_length=1000, assume_scheme="https")
    link_title = forms.CharField(label=_("链接/卡片标题"), required=False, max_length=128)
    miniprogram_appid = forms.CharField(label=_("小程序 AppID"), required=False, max_length=32)
    miniprogram_page = forms.CharField(label=_("小程序页面路径"), required=False, max_length=255)
    layout = forms.CharField(label=_("海报版式（JSON）"), required=False, widget=forms.Textarea(attrs={"rows": 6}))
    attachments = forms.ModelMultipleChoiceField(Material.objects.none(), label=_("朋友圈附带素材"), required=False)
    version_note = forms.CharField(label=_("版本说明"), required=False, max_length=200)

    class Meta:
        model = Material
        fields = ("kind", "title", "description", "folder", "valid_from", "expires_at")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        for name, model in (("audience_regions", Region), ("audience_franchisees", Franchisee),
                            ("audience_stores", Store), ("attachments", Material)):
            if name in self.fields:  # a read-only view has no fields
                cast(forms.ModelMultipleChoiceField, self.fields[name]).queryset = scoped(model.objects.all(), user)
        instance = self.instance
        if instance.pk:
            if "kind" in self.fields:
                self.fields["kind"].disabled = True
            self.initial.update(
                audience_all=instance.audience_all, audience_store_kinds=instance.audience_store_kinds,
                audience_regions=list(instance.audience_regions.all()),
                audience_franchisees=list(instance.audience_franchisees.all()),
                audience_stores=list(instance.audience_stores.all()), tag_set=list(instance.tags.all()))
            current = instance.current_version
            if current is not None and instance.kind == MaterialKind.POSTER_TEMPLATE and current.layout:
                self.initial["layout"] = json.dumps(current.layout, ensure_ascii=False, indent=1)

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload is not None:
            try:
                upload_size_validate(upload=upload)
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return upload

    def clean_layout(self):
        raw = (self.cleaned_data.get("layout") or "").strip()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("版式不是有效的 JSON：第 %(line)d 行第 %(col)d 列") % {
                "line": exc.lineno, "col": exc.colno}) from exc

    def version_content(self) -> VersionContent | None:
        """The new version's content, if this save brings any."""
        data = self.cleaned_data
        upload = data.get("upload")
        content = VersionContent(
            data=upload.read() if upload is not None else None, file_name=getattr(upload, "name", "") or "",
            text=data.get("text") or "", link_url=data.get("link_url") or "", link_title=data.get("link_title") or "",
            miniprogram_appid=data.get("miniprogram_appid") or "", miniprogram_page=data.get("miniprogram_page") or "",
            layout=data.get("layout"), attachment_ids=tuple(m.pk for m in data.get("attachments") or ()))
        current = self.instance.current_version if self.instance.pk else None
        layout_changed = content.layout is not None and (current is None or current.layout != content.layout)
        if not (content.data or content.text or content.link_url or content.miniprogram_appid
                or content.attachment_ids or layout_changed):
            return None
        if current is not None and content.data is None and current.file:
            # A new text or layout keeps the current file (a poster template's background, a card's cover).
            content = VersionContent(**{**content.__dict__, "data": _current_file_bytes(current),
                                        "file_name": current.file_name})
        return content


def _current_file_bytes(version: MaterialVersion) -> bytes:
    from materials.library.storage import file_read

    return file_read(name=version.file)


class MaterialVersionInline(admin.TabularInline):
    model = MaterialVersion
    fk_name = "material"
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("number", "note", "summary", "created_by", "created_at", "restore_link")
    readonly_fields = fields
    ordering = ("-number",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("内容"))
    def summary(self, version: MaterialVersion):
        if version.file:
            url = reverse("admin:materials_material_version_file", args=[version.material_id, version.pk])
            return format_html('<a href="{}">{}</a>（{}）', url, version.file_name or _("文件"), version.mime)
        return (version.text or version.link_url or version.link_title)[:80]

    @admin.display(description=_("操作"))
    def restore_link(self, version: MaterialVersion):
        if version.material.current_version_id == version.pk:
            return _("当前版本")
        url = reverse("admin:materials_material_version_restore", args=[version.material_id, version.pk])
        return format_html('<form method="post" action="{}"><input type="hidden" name="csrfmiddlewaretoken" '
                           'value="{}"><button type="submit">{}</button></form>', url,
                           self._csrf_token, _("恢复为当前版本"))

    _csrf_token = ""


class MaterialResource(SafeExportResource):
    kind_label = ie_fields.Field(attribute="get_kind_display", column_name=str(_("类型")))
    status_label = ie_fields.Field(attribute="get_status_display", column_name=str(_("状态")))
    folder_name = ie_fields.Field(attribute="folder__name", column_name=str(_("文件夹")))
    version = ie_fields.Field(attribute="current_version__number", column_name=str(_("当前版本")))

    class Meta:
        model = Material
        fields = ("id", "title", "kind_label", "status_label", "folder_name", "version", "valid_from",
                  "expires_at", "updated_at")
        export_order = fields


class UsableFilter(admin.SimpleListFilter):
    title = _("可用性")
    parameter_name = "usable"

    def lookups(self, request, model_admin):
        return (("yes", _("门店可用")), ("expired", _("已过期")), ("expiring", _("7 天内过期")))

    def queryset(self, request, queryset):
        from datetime import timedelta

        from django.utils import timezone

        now = timezone.now()
        if self.value() == "yes":
            return queryset.usable()
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "expiring":
            return queryset.usable().filter(expires_at__lte=now + timedelta(days=7))
        return queryset


@admin.register(Material)
class MaterialAdmin(UserFormMixin, SpreadsheetAdminMixin, ExportMixin, ScopedAdmin):
    form = MaterialForm
    resource_classes = [MaterialResource]
    list_display = ("thumb", "title", "kind", "status", "folder", "version_number", "window", "owner_franchisee",
                    "updated_at")
    list_display_links = ("title",)
    list_per_page = 30  # rows with thumbnails: a screenful, and half the render time of 50 (bench material_search)
    list_filter = ("kind", "status", UsableFilter, "folder", "tags", "owner_franchisee")
    search_fields = ("search_text",)
    list_select_related = ("folder", "current_version", "owner_franchisee")
    autocomplete_fields = ("folder",)
    inlines = (MaterialVersionInline,)
    actions = ("publish_selected", "archive_selected", "unarchive_selected", "posters_generate_selected")
    change_list_template = "admin/materials/material/change_list.html"  # + the viewer's poster jobs
    fieldsets = (
        (None, {"fields": ("kind", "title", "description", "folder", "tag_set")}),
        (_("有效期"), {"fields": ("valid_from", "expires_at")}),
        (_("可见范围（任一满足即可见）"), {"fields": ("audience_all", "audience_regions", "audience_franchisees",
                                             "audience_store_kinds", "audience_stores")}),
        (_("内容（保存即生成新版本）"), {"fields": ("upload", "text", "link_url", "link_title", "miniprogram_appid",
                                           "miniprogram_page", "layout", "attachments", "version_note")}),
    )

    def get_fieldsets(self, request, obj=None):
        if user_scope(request.user).is_hq:
            return self.fieldsets
        # A franchisee's own material reaches its own stores: all of them, or some.
        return tuple((title, {"fields": tuple(f for f in opts["fields"] if f not in (
            "audience_regions", "audience_franchisees", "audience_store_kinds"))}) for title, opts in self.fieldsets)

    def has_delete_permission(self, request, obj=None):
        return False  # materials are archived, never deleted: their history and usage stay

    def has_change_permission(self, request, obj=None):
        if not super().has_change_permission(request, obj):
            return False
        if obj is None:
            return True
        try:
            material_editable_check(material=obj, by=request.user)
        except MaterialRefused:
            return False
        return True

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """The page also shows where and how the material was used, in the viewer's scope."""
        from materials.usage.admin import material_usage_context

        context = dict(extra_context or {})
        material = self.get_object(request, object_id)
        if material is not None:
            context.update(material_usage_context(request, material))
        return super().change_view(request, object_id, form_url, context)

    def get_inline_instances(self, request, obj=None):
        instances = super().get_inline_instances(request, obj) if obj is not None else []
        from django.middleware.csrf import get_token

        for inline in instances:
            if isinstance(inline, MaterialVersionInline):
                inline._csrf_token = get_token(request)
        return instances

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            material_update(material=obj, by=request.user, title=data["title"], description=data["description"],
                            folder=data.get("folder"), tags=data.get("tag_set") or [],
                            valid_from=data.get("valid_from"), expires_at=data.get("expires_at"))
            return
        material = material_create(by=request.user, kind=data["kind"], title=data["title"],
                                   description=data.get("description") or "", folder=data.get("folder"),
                                   tags=data.get("tag_set") or [], valid_from=data.get("valid_from"),
                                   expires_at=data.get("expires_at"))
        obj.pk = obj.id = material.pk
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        data = form.cleaned_data
        material = form.instance
        is_hq = user_scope(request.user).is_hq
        material_audience_set(material=material, by=request.user, everyone=bool(data.get("audience_all")),
                              regions=data.get("audience_regions") or [] if is_hq else [],
                              franchisees=data.get("audience_franchisees") or [] if is_hq else [],
                              store_kinds=data.get("audience_store_kinds") or [] if is_hq else [],
                              stores=data.get("audience_stores") or [])
        content = form.version_content()
        if content is not None:
            material_version_add(material=material, by=request.user, content=content,
                                 note=data.get("version_note") or "")
        elif not change:
            self.message_user(request, _("素材已创建为草稿：上传内容后才能发布"), messages.WARNING)

    # -- columns -----------------------------------------------------------------------------------------
    @admin.display(description=_("预览"))
    def thumb(self, obj: Material):
        version = obj.current_version
        if version is None or not version.thumbnail:
            return "—"
        url = reverse("admin:materials_material_thumbnail", args=[obj.pk])
        return format_html('<img src="{}" alt="" style="max-height:48px;max-width:64px" loading="lazy">', url)

    @admin.display(description=_("版本"))
    def version_number(self, obj: Material):
        return obj.current_version.number if obj.current_version else "—"

    @admin.display(description=_("有效期"))
    def window(self, obj: Material):
        start = obj.valid_from.strftime("%m-%d") if obj.valid_from else ""
        end = obj.expires_at.strftime("%Y-%m-%d") if obj.expires_at else _("长期")
        return f"{start}～{end}" if start else end

    # -- actions -----------------------------------------------------------------------------------------
    @admin.action(description=_("发布所选素材"), permissions=["change"])
    def publish_selected(self, request, queryset):
        done, refused = 0, []
        for material in queryset.select_related("current_version")[:500]:  # a page at a time, each checked
            try:
                material_publish(material=material, by=request.user)
                done += 1
            except MaterialRefused as exc:
                refused.append(f"{material.title}：{exc}")
        self.message_user(request, _("已发布 %(n)d 份素材") % {"n": done}, messages.SUCCESS)
        for line in refused[:10]:
            self.message_user(request, line, messages.WARNING)

    @admin.action(description=_("归档所选素材（门店不再可见）"), permissions=["change"])
    def archive_selected(self, request, queryset):
        count = materials_bulk_archive(materials=queryset, by=request.user)
        self.message_user(request, _("已归档 %(n)d 份素材") % {"n": count}, messages.SUCCESS)

    @admin.action(description=_("恢复所选已归档素材为草稿"), permissions=["change"])
    def unarchive_selected(self, request, queryset):
        count = 0
        for material in queryset.filter(status=MaterialStatus.ARCHIVED)[:500]:
            material_unarchive(material=material, by=request.user)
            count += 1
        self.message_user(request, _("已恢复 %(n)d 份素材为草稿") % {"n": count}, messages.SUCCESS)

    def has_posters_permission(self, request) -> bool:
        from materials.posters.services import JOB_SCOPES

        return self.has_view_permission(request) and user_scope(request.user).kind in JOB_SCOPES

    @admin.action(description=_("为全部门店员工生成海报"), permissions=["posters"])
    def posters_generate_selected(self, request, queryset):
        """One job per selected poster template: every active staff member of the viewer's stores it reaches."""
        from materials.posters.services import PosterRefused, posters_job_start

        started = 0
        for material in queryset.select_related("current_version")[:20]:
            try:
                posters_job_start(material=material, by=request.user)
                started += 1
            except PosterRefused as exc:
                self.message_user(request, str(exc), messages.WARNING)
        if started:
            self.message_user(request, _("已开始为 %(n)d 份海报模板生成门店员工海报，进度见本页上方")
                              % {"n": started}, messages.SUCCESS)

    def changelist_view(self, request, extra_context=None):
        from materials.posters.services import posters_job_runs

        runs = posters_job_runs(by=request.user) if self.has_posters_permission(request) else []
        return super().changelist_view(request, {**(extra_context or {}), "poster_runs": runs})

    # -- files, restore -----------------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/thumbnail/", wrap(self.thumbnail_view), name="materials_material_thumbnail"),
            path("<path:object_id>/versions/<int:version_id>/file/", wrap(self.version_file_view),
                 name="materials_material_version_file"),
            path("<path:object_id>/versions/<int:version_id>/restore/", wrap(self.version_restore_view),
                 name="materials_material_version_restore"),
            path("<path:object_id>/archive/", wrap(self.archive_view), name="materials_material_archive"),
            *super().get_urls(),
        ]

    def _material(self, request, object_id) -> Material:
        material = self.get_object(request, unquote(object_id))  # scoped: another scope's material is not found
        if material is None or not self.has_view_permission(request, material):
            raise Http404
        return material

    def thumbnail_view(self, request, object_id):
        material = self._material(request, object_id)
        version = material.current_version
        if version is None or not version.thumbnail:
            raise Http404
        from materials.library.storage import file_response

        return file_response(name=version.thumbnail, download_name=f"{material.pk}.jpg", content_type="image/jpeg",
                             inline=True)

    def version_file_view(self, request, object_id, version_id: int):
        material = self._material(request, object_id)
        version = material.versions.filter(pk=version_id).first()
        if version is None or not version.file:
            raise Http404
        from materials.library.storage import file_response

        return file_response(name=version.file, download_name=version.file_name or f"material-{material.pk}",
                             content_type=version.mime or "application/octet-stream", inline=False)

    def version_restore_view(self, request, object_id, version_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        material = self._material(request, object_id)
        version = material.versions.filter(pk=version_id).first()
        if version is None:
            raise Http404
        try:
            restored = material_version_restore(version=version, by=request.user)
        except MaterialRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, _("已恢复第 %(old)d 版，成为第 %(new)d 版") % {
                "old": version.number, "new": restored.number}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:materials_material_change", args=[material.pk]))

    def archive_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        material = self._material(request, object_id)
        try:
            material_archive(material=material, by=request.user)
        except MaterialRefused as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:materials_material_change", args=[material.pk]))


__all__: list[Any] = ["MaterialAdmin"]
