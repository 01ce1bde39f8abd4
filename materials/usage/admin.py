"""素材使用分析 in the admin: the events as a read-only scoped list, and the analytics page with its export.

The page is two extra URLs on MaterialUseAdmin (``get_urls``), wrapped by ``admin_view`` and allowed to whoever
may view MaterialUse — the same permission and scope as the list beside it: /admin/materials/materialuse/analytics/
and …/analytics/export/. Every figure comes from materials/usage/selectors.py, in the viewer's scope; the
filters offer and accept only the viewer's regions and stores (another scope's id is an error on the form).

A material's own page shows ``material_usage_context(request, material)`` through the include
templates/admin/materials/material/usage_summary.html.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from materials.library.models import Material, MaterialKind
from materials.usage.models import MaterialUse, UseAction
from materials.usage.selectors import (
    ACTIONS,
    UsageError,
    UsageFilters,
    UsageRow,
    material_usage_summary,
    materials_top,
    materials_unused,
    usage_by_region,
    usage_by_store,
    usage_over_time,
    usage_range_clean,
)
from materials.usage.services import material_uses_queued
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin, scoped
from portal.charts import Chart, Series
from portal.spreadsheets import sheets_workbook_bytes
from stores.org.models import Region, Store

DEFAULT_DAYS_BACK = 30
TOP_LIMIT = 20
DISPLAY_LIMIT = 200  # unused materials and stores shown in the page; the export holds them all


def _date_input():
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class UsageForm(forms.Form):
    date_from = forms.DateField(label=gettext_lazy("开始日期"), widget=_date_input())
    date_to = forms.DateField(label=gettext_lazy("结束日期"), widget=_date_input())
    region = forms.ModelChoiceField(label=gettext_lazy("区域（含下级）"), queryset=Region.objects.none(),
                                    required=False)
    store = forms.ModelChoiceField(label=gettext_lazy("门店"), queryset=Store.objects.none(), required=False)
    kind = forms.ChoiceField(label=gettext_lazy("素材类型"), required=False,
                             choices=[("", gettext_lazy("全部")), *MaterialKind.choices])
    action = forms.ChoiceField(label=gettext_lazy("排行依据"), required=False,
                               choices=[("", gettext_lazy("全部使用")), *UseAction.choices])

    def __init__(self, *args, user, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        # Only what the viewer may see is offered, and only that validates: another scope's id is an error.
        region = cast(forms.ModelChoiceField, self.fields["region"])
        region.queryset = scoped(Region.objects.order_by("code"), user)
        store = cast(forms.ModelChoiceField, self.fields["store"])
        store.widget = AutocompleteSelect(MaterialUse._meta.get_field("store"), admin_site)
        store.queryset = scoped(Store.objects.all(), user)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("date_from") and data.get("date_to"):
            try:
                data["date_from"], data["date_to"] = usage_range_clean(date_from=data["date_from"],
                                                                       date_to=data["date_to"])
            except UsageError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def filters(self) -> UsageFilters:
        data = self.cleaned_data
        return UsageFilters(date_from=data["date_from"], date_to=data["date_to"],
                            region_id=data["region"].pk if data["region"] else None,
                            store_id=data["store"].pk if data["store"] else None, kind=data["kind"] or None)


def usage_form_data(request) -> dict:
    today = timezone.localdate()
    defaults = {"date_from": (today - timedelta(days=DEFAULT_DAYS_BACK)).isoformat(), "date_to": today.isoformat()}
    return {**defaults, **{key: value for key, value in request.GET.items() if value != ""}}


def action_columns() -> list[str]:
    return [str(label) for label in UseAction.labels] + [_("合计")]


def rows_cells(rows: list[UsageRow], *, with_note: bool = False) -> list[list]:
    return [[row.label, *([row.note] if with_note else []), *row.counts.cells()] for row in rows]


def chart_spec(*, element_id: str, title: str, rows: list[UsageRow], category_label: str) -> Chart:
    """Categories and one stacked series per action, drawn by ECharts ({% xiaoer_chart %})."""
    return Chart(element_id=element_id, title=title, category_label=category_label, value_label=_("次数"),
                 categories=[str(row.label) for row in rows], stacked=True,
                 series=[Series(name=str(label), values=[int(getattr(row.counts, action)) for row in rows])
                         for action, label in zip(ACTIONS, UseAction.labels, strict=True)])


def usage_figures(*, viewer, form: UsageForm) -> dict[str, Any]:
    """Every figure the page and its export show, computed once."""
    filters = form.filters()
    action = form.cleaned_data["action"] or None
    days = usage_over_time(viewer=viewer, filters=filters)
    unused = materials_unused(viewer=viewer, filters=filters)
    return {
        "filters": filters, "action": action,
        "days": days,
        "top": materials_top(viewer=viewer, filters=filters, action=action, limit=TOP_LIMIT),
        "regions": usage_by_region(viewer=viewer, filters=filters),
        "stores": usage_by_store(viewer=viewer, filters=filters),
        "unused": [(m.pk, m.title, str(m.get_kind_display()))
                   for m in unused.select_related(None).only("pk", "title", "kind")],
        "total": sum((row.counts.total for row in days), 0),
    }


def workbook_build(figures: dict[str, Any], *, filters_text: list[tuple[str, str]]) -> bytes:
    """The page's tables, each on its own sheet, exactly as shown (all rows) as .xlsx."""
    sheets = [
        (_("按日"), [_("日期"), *action_columns()], rows_cells(figures["days"])),
        (_("素材排行"), [_("素材"), _("类型"), *action_columns()], rows_cells(figures["top"], with_note=True)),
        (_("区域"), [_("区域"), _("上级区域"), *action_columns()], rows_cells(figures["regions"], with_note=True)),
        (_("门店"), [_("门店"), *action_columns()], rows_cells(figures["stores"])),
        (_("未使用素材"), [_("编号"), _("素材"), _("类型")], [list(row) for row in figures["unused"]]),
    ]
    return sheets_workbook_bytes(sheets=sheets, filters_text=filters_text, first_column_width=32)


def material_usage_context(request, material: Material) -> dict[str, Any]:
    """The context of templates/admin/materials/material/usage_summary.html for a material's change page."""
    return {"usage_summary": material_usage_summary(viewer=request.user, material=material),
            "usage_columns": action_columns()}


@admin.register(MaterialUse)
class MaterialUseAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    """Read-only events, newest first; the analytics page is what people use."""

    list_display = ("at", "material", "version", "store", "staff", "action")
    list_filter = ("action",)
    list_select_related = ("material", "version", "store", "staff")
    search_fields = ("=material__id",)
    ordering = ("-at",)
    show_full_result_count = False
    change_list_template = "admin/materials/materialuse/change_list.html"

    def get_urls(self):
        return [
            path("analytics/", self.admin_site.admin_view(self.analytics_view), name="materials_materialuse_analytics"),
            path("analytics/export/", self.admin_site.admin_view(self.analytics_export_view),
                 name="materials_materialuse_analytics_export"),
            *super().get_urls(),
        ]

    def _form(self, request) -> UsageForm:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return UsageForm(usage_form_data(request), user=request.user, admin_site=self.admin_site)

    def analytics_view(self, request):
        form = self._form(request)
        context = {**self.admin_site.each_context(request), "title": _("素材使用分析"), "opts": self.model._meta,
                   "form": form, "media": self.media + form.media, "columns": action_columns()}
        if form.is_valid():
            figures = usage_figures(viewer=request.user, form=form)
            query = {key: value for key, value in request.GET.items() if value != ""}
            context.update({
                "figures": figures,
                "day_rows": rows_cells(figures["days"]),
                "top_rows": [{"cells": cells, "url": reverse("admin:materials_material_change", args=[row.key])}
                             for row, cells in zip(figures["top"], rows_cells(figures["top"], with_note=True),
                                                   strict=True)],
                "region_rows": rows_cells(figures["regions"], with_note=True),
                "store_rows": rows_cells(figures["stores"])[:DISPLAY_LIMIT],
                "unused_rows": figures["unused"][:DISPLAY_LIMIT],
                "display_limit": DISPLAY_LIMIT,
                "charts": {
                    "over_time": chart_spec(element_id="usage-over-time", title=_("每日使用"),
                                            rows=figures["days"], category_label=_("日期")),
                    "top": chart_spec(element_id="usage-top", title=_("使用最多的素材"), rows=figures["top"],
                                      category_label=_("素材")),
                    "regions": chart_spec(element_id="usage-regions", title=_("各区域使用（含下级区域）"),
                                          rows=figures["regions"], category_label=_("区域")),
                },
                "queued": material_uses_queued(),
                "export_url": reverse("admin:materials_materialuse_analytics_export") + "?" + urlencode(query),
            })
        return TemplateResponse(request, "admin/materials/materialuse/analytics.html", context)

    def analytics_export_view(self, request):
        form = self._form(request)
        if not form.is_valid():  # the page shows the same errors
            return redirect(reverse("admin:materials_materialuse_analytics") + "?" + request.GET.urlencode())
        figures = usage_figures(viewer=request.user, form=form)
        content = workbook_build(figures, filters_text=self._filters_text(form))
        response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument."
                                                      "spreadsheetml.sheet")
        filters = figures["filters"]
        filename = f"{_('素材使用分析')}_{filters.date_from:%Y%m%d}-{filters.date_to:%Y%m%d}.xlsx"
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
        return response

    def _filters_text(self, form: UsageForm) -> list[tuple[str, str]]:
        data = form.cleaned_data
        return [(_("日期"), f"{data['date_from'].isoformat()} ~ {data['date_to'].isoformat()}"),
                (_("区域"), str(data["region"] or _("全部"))), (_("门店"), str(data["store"] or _("全部"))),
                (_("素材类型"), str(dict(MaterialKind.choices).get(data["kind"], _("全部")))),
                (_("排行依据"), str(dict(UseAction.choices).get(data["action"], _("全部使用")))),
                (_("导出时间"), timezone.localtime().strftime("%Y-%m-%d %H:%M"))]
