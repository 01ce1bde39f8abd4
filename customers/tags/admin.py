"""Corp tag groups and tags (HQ only, by permission). Every edit calls WeCom first (customers/tags/services.py);
the forms check names and the 3,000-tag limit before that, so a mistake never reaches WeCom."""

from __future__ import annotations

from typing import cast

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from customers.models import Tag, TagGroup
from customers.tags.services import (
    TagError,
    tag_advance_set,
    tag_create,
    tag_group_create,
    tag_group_name_validate,
    tag_group_update,
    tag_names_validate,
    tag_update,
    tags_delete,
    tags_pull,
)
from portal.admin_base import ScopedAdmin
from portal.wecom.gateway import WeComError


def _validation(call):
    try:
        return call()
    except TagError as exc:
        raise forms.ValidationError(str(exc)) from exc


class SoftDeletedTagsMixin(ScopedAdmin):
    """Tags and groups are only marked deleted (as in WeCom), through the tag services. WeCom refusing an edit
    after our checks passed is a TagError, which ScopedAdmin says on the page (nothing changes)."""

    def _delete(self, request, objs: list) -> None:
        raise NotImplementedError  # each admin deletes through its own service

    def delete_queryset(self, request, queryset):
        self._delete(request, list(queryset))

    def delete_model(self, request, obj):
        self._delete(request, [obj])

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and not (obj is not None and obj.deleted)

    def get_deleted_objects(self, objs, request):
        # Rows are only marked deleted (as in WeCom), so PROTECTed tags never block deleting their group.
        objs = list(objs)
        return [str(obj) for obj in objs], {self.model._meta.verbose_name_plural: len(objs)}, set(), []


class TagGroupForm(forms.ModelForm):
    tag_names = forms.CharField(label=gettext_lazy("标签"), required=False, widget=forms.Textarea(attrs={"rows": 5}),
                                help_text=gettext_lazy("新建标签组时填写，每行一个标签（企业微信要求标签组至少有一个标签）"))

    class Meta:
        model = TagGroup
        fields = ("name", "order")

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if "name" in data:
            data["name"] = _validation(lambda: tag_group_name_validate(
                name=data["name"], exclude=self.instance if self.instance.pk else None))
        if not self.instance.pk:
            names = [line.strip() for line in (data.get("tag_names") or "").splitlines() if line.strip()]
            data["tag_names"] = _validation(lambda: tag_names_validate(names=names))
        return data


class TagInline(admin.TabularInline):
    model = Tag
    fields = ("name", "order", "advances_to", "deleted")
    readonly_fields = fields
    extra, max_num, can_delete, show_change_link = 0, 0, False, True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TagGroup)
class TagGroupAdmin(SoftDeletedTagsMixin, ScopedAdmin):
    form = TagGroupForm
    list_display = ("name", "order", "live_tags", "wecom_group_id", "deleted")
    list_filter = ("deleted",)
    search_fields = ("name",)
    readonly_fields = ("wecom_group_id", "deleted")
    inlines = [TagInline]
    change_list_template = "admin/customers/taggroup/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_live=Count("tags", filter=Q(tags__deleted=False)))

    @admin.display(description=gettext_lazy("标签数"), ordering="_live")
    def live_tags(self, obj):
        return obj._live

    def get_fields(self, request, obj=None):
        return ("name", "order", "tag_names") if obj is None else ("name", "order", "wecom_group_id", "deleted")

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = tag_group_update(group=TagGroup.objects.get(pk=obj.pk), name=data["name"], order=data["order"],
                                     by=request.user)
        else:
            saved = tag_group_create(name=data["name"], tag_names=data["tag_names"], order=data["order"],
                                     by=request.user)
        obj.pk, obj.wecom_group_id = saved.pk, saved.wecom_group_id

    def _delete(self, request, groups) -> None:
        tags_delete(groups=groups, by=request.user)

    def get_urls(self):
        pull = self.admin_site.admin_view(self.pull_view)
        return [path("pull/", pull, name="customers_taggroup_pull"), *super().get_urls()]

    @method_decorator(require_POST)
    def pull_view(self, request):
        if not self.has_change_permission(request):
            return HttpResponseRedirect(reverse("admin:customers_taggroup_changelist"))
        try:
            pulled = tags_pull()
            self.message_user(request, _("已从企业微信同步 %(g)d 个标签组、%(t)d 个标签") % {
                "g": pulled.groups, "t": pulled.tags}, messages.SUCCESS)
        except WeComError as exc:
            self.message_user(request, _("同步失败：%(error)s") % {"error": exc}, messages.ERROR)
        return HttpResponseRedirect(reverse("admin:customers_taggroup_changelist"))


class TagForm(forms.ModelForm):
    class Meta:
        model = Tag
        fields = ("group", "name", "order", "advances_to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "group" in self.fields:
            group = cast(forms.ModelChoiceField, self.fields["group"])
            group.queryset = TagGroup.objects.filter(deleted=False, wecom_group_id__isnull=False)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        group = data.get("group") or (self.instance.group if self.instance.pk else None)
        if "name" in data and group is not None:
            (data["name"],) = _validation(lambda: tag_names_validate(
                names=[data["name"]], group=group, exclude=self.instance if self.instance.pk else None))
        return data


@admin.register(Tag)
class TagAdmin(SoftDeletedTagsMixin, ScopedAdmin):
    form = TagForm
    list_display = ("name", "group", "order", "advances_to", "deleted")
    list_filter = ("deleted", "advances_to", "group")
    list_select_related = ("group",)
    search_fields = ("name",)

    def get_readonly_fields(self, request, obj=None):
        return ("group", "wecom_tag_id", "deleted") if obj is not None else ()

    def get_fields(self, request, obj=None):
        base = ("group", "name", "order", "advances_to")
        return base + ("wecom_tag_id", "deleted") if obj is not None else base

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            saved = tag_update(tag=Tag.objects.select_related("group").get(pk=obj.pk), name=data["name"],
                               order=data["order"], by=request.user)
            saved = tag_advance_set(tag=saved, advances_to=data["advances_to"], by=request.user)
        else:
            saved = tag_create(group=data["group"], name=data["name"], order=data["order"],
                               advances_to=data["advances_to"], by=request.user)
        obj.pk, obj.wecom_tag_id = saved.pk, saved.wecom_tag_id

    def _delete(self, request, tags) -> None:
        tags_delete(tags=tags, by=request.user)
