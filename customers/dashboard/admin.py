"""The add-fan dashboard (每日加粉看板) in the admin, and the daily table as a read-only scoped list.

The dashboard is two extra URLs on AcquisitionDailyAdmin (``get_urls``), so the admin site itself is
untouched: it lives at /admin/customers/acquisitiondaily/dashboard/, is wrapped by ``admin_view``
(login, staff, CSRF), and is allowed to whoever may view AcquisitionDaily — the same permission
and the same scope as the changelist it sits next to.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast
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

from customers.dashboard.selectors import (
    AcquisitionFigures,
    AcquisitionFilters,
    AcquisitionRow,
    DashboardError,
    acquisition_figures,
    acquisition_leaderboards,
    acquisition_range_clean,
)
from customers.models import AcquisitionDaily
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin, scoped
from portal.charts import Chart, Series
from portal.spreadsheets import workbook_bytes
from stores.access.scoping import ScopeKind, user_scope
from stores.models import Franchisee, Region, Store

GROUP_BY_CHOICES = [("region", gettext_lazy("区域")), ("franchisee", gettext_lazy("加盟商")),
                    ("store", gettext_lazy("门店")), ("staff", gettext_lazy("员工")),
                    ("channel", gettext_lazy("渠道")), ("day", gettext_lazy("日期"))]
DEFAULT_GROUP_BY: dict[str, str] = {ScopeKind.ALL: "region", ScopeKind.REGIONS: "store", ScopeKind.FRANCHISEE: "store",
                    ScopeKind.STORE: "staff", ScopeKind.SELF: "day"}
DEFAULT_DAYS_BACK = 7  # the last 7 days and today
DISPLAY_LIMIT = 1000  # rows rendered in the page; the export holds them all
ADDS_COLOR, DELETIONS_COLOR = "#2e9d5b", "#d9534f"
DRILL_DOWN = {"region": ("region", "store"), "franchisee": ("franchisee", "store"), "store": ("store", "staff")}


def _date_input():
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class DashboardForm(forms.Form):
    date_from = forms.DateField(label=gettext_lazy("开始日期"), widget=_date_input())
    date_to = forms.DateField(label=gettext_lazy("结束日期"), widget=_date_input())
    group_by = forms.ChoiceField(label=gettext_lazy("分组"), choices=GROUP_BY_CHOICES)
    region = forms.ModelChoiceField(label=gettext_lazy("区域"), queryset=Region.objects.none(), required=False)
    franchisee = forms.ModelChoiceField(label=gettext_lazy("加盟商"), queryset=Franchisee.objects.none(),
                                        required=False)
    store = forms.ModelChoiceField(label=gettext_lazy("门店"), queryset=Store.objects.none(), required=False)
    min_adds = forms.IntegerField(label=gettext_lazy("删除率榜最少新增"), min_value=1, max_value=100_000)

    def __init__(self, *args, user, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        # Only what the viewer may see is offered, and only that validates: another scope's id is an error.
        for name, model in (("region", Region), ("franchisee", Franchisee), ("store", Store)):
            field = cast(forms.ModelChoiceField, self.fields[name])
            field.widget = AutocompleteSelect(AcquisitionDaily._meta.get_field(name), admin_site)
            field.queryset = scoped(model.objects.all(), user)  # also hands the widget its choices

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("date_from") and data.get("date_to"):
            try:
                data["date_from"], data["date_to"] = acquisition_range_clean(date_from=data["date_from"],
                                                                             date_to=data["date_to"])
            except DashboardError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def filters(self) -> AcquisitionFilters:
        data = self.cleaned_data
        return AcquisitionFilters(region_id=data["region"].pk if data["region"] else None,
                                  franchisee_id=data["franchisee"].pk if data["franchisee"] else None,
                                  store_id=data["store"].pk if data["store"] else None)


def dashboard_form_data(request) -> dict:
    """The query string over the defaults: the last 7 days and today, grouped by the level below the viewer."""
    today = timezone.localdate()
    defaults = {"date_from": (today - timedelta(days=DEFAULT_DAYS_BACK)).isoformat(), "date_to": today.isoformat(),
                "group_by": DEFAULT_GROUP_BY.get(user_scope(request.user).kind, "store"), "min_adds": "10"}
    given = {key: value for key, value in request.GET.items() if value != ""}
    return {**defaults, **given}


def table_columns(group_by: str) -> list[str]:
    return [str(dict(GROUP_BY_CHOICES)[group_by]), _("新增"), _("客户删除"), _("员工删除"), _("净增"), _("删除率(%)"),
            _("累计客户")]


def table_cells(row: AcquisitionRow) -> list:
    return [row.label, row.adds, row.deleted_by_customer, row.deleted_by_staff, row.net, row.deletion_rate,
            row.cumulative]


def acquisition_chart(daily: AcquisitionFigures) -> Chart:
    """Adds and deletions per day, every day of the range (a day without figures shows 0), for ECharts."""
    by_day = {row.key: row for row in daily.rows}
    days = [daily.date_from + timedelta(days=n) for n in range((daily.date_to - daily.date_from).days + 1)]
    rows = [by_day.get(day) for day in days]
    return Chart(
        element_id="dashboard-chart", title=_("每日新增与删除"), categories=[day.isoformat() for day in days],
        series=[Series(name=_("新增"), values=[row.adds if row else 0 for row in rows], color=ADDS_COLOR),
                Series(name=_("删除（客户删除＋员工删除）"), values=[row.deletions if row else 0 for row in rows],
                       color=DELETIONS_COLOR)],
        category_label=_("日期"), value_label=_("人数"))


def workbook_build(figures: AcquisitionFigures, *, filters_text: list[tuple[str, str]]) -> bytes:
    """The grouped table exactly as the page shows it (all rows, same order, same totals) as .xlsx."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = _("加粉统计")
    sheet.append(table_columns(figures.group_by))
    for row in figures.rows:
        sheet.append(_xlsx_cells(row))
    sheet.append(_xlsx_cells(figures.total))
    for cell in (*sheet[1], *sheet[sheet.max_row]):
        cell.font = Font(bold=True)
    sheet.column_dimensions["A"].width = 32
    sheet.freeze_panes = "B2"
    about = book.create_sheet(_("筛选条件"))
    for label, value in filters_text:
        about.append([label, value])
    about.column_dimensions["A"].width = 16
    about.column_dimensions["B"].width = 40
    return workbook_bytes(book)  # store, staff and channel names never run as formulas


def _xlsx_cells(row: AcquisitionRow) -> list:
    cells = table_cells(row)
    cells[5] = float(cells[5])  # a number in Excel, not text
    return cells


@admin.register(AcquisitionDaily)
class AcquisitionDailyAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    """Read-only daily rows for drill-down; the dashboard is the page people use."""

    list_display = ("day", "store", "staff", "channel", "adds", "deleted_by_customer", "deleted_by_staff")
    list_filter = ("region", "franchisee", "channel")
    list_select_related = ("store", "staff", "channel")
    search_fields = ("=staff__userid", "=store__code")
    ordering = ("-day", "-store_id")  # the (day, store) index; "-store" would join to order by code
    change_list_template = "admin/customers/acquisitiondaily/change_list.html"

    def get_urls(self):
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view),
                 name="customers_acquisitiondaily_dashboard"),
            path("dashboard/export/", self.admin_site.admin_view(self.dashboard_export_view),
                 name="customers_acquisitiondaily_dashboard_export"),
            *super().get_urls(),
        ]

    def _form(self, request) -> DashboardForm:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return DashboardForm(dashboard_form_data(request), user=request.user, admin_site=self.admin_site)

    def _figures(self, request, form: DashboardForm, *, group_by: str | None = None, **options) -> AcquisitionFigures:
        data = form.cleaned_data
        return acquisition_figures(viewer=request.user, date_from=data["date_from"], date_to=data["date_to"],
                                   group_by=group_by or data["group_by"], filters=form.filters(), **options)

    def dashboard_view(self, request):
        form = self._form(request)
        context = {**self.admin_site.each_context(request), "title": _("加粉看板"), "opts": self.model._meta,
                   "form": form, "media": self.media + form.media}
        if form.is_valid():
            context.update(self._dashboard_context(request, form))
        return TemplateResponse(request, "admin/customers/acquisitiondaily/dashboard.html", context)

    def _dashboard_context(self, request, form: DashboardForm) -> dict:
        data = form.cleaned_data
        figures = self._figures(request, form)
        daily = figures if figures.group_by == "day" else self._figures(request, form, group_by="day",
                                                                          with_cumulative=False)
        boards = acquisition_leaderboards(viewer=request.user, date_from=data["date_from"], date_to=data["date_to"],
                                          filters=form.filters(), min_adds=data["min_adds"], known=figures)
        query = {key: value for key, value in request.GET.items() if value != ""}
        return {
            "figures": figures,
            "columns": table_columns(figures.group_by),
            "rows": [{"cells": table_cells(row), "url": self._drill_down_url(figures.group_by, row, query)}
                     for row in figures.rows[:DISPLAY_LIMIT]],
            "total_cells": table_cells(figures.total),
            "truncated": len(figures.rows) > DISPLAY_LIMIT, "display_limit": DISPLAY_LIMIT,
            "chart": acquisition_chart(daily),
            "boards": boards,
            "export_url": reverse("admin:customers_acquisitiondaily_dashboard_export") + "?" + urlencode(query),
        }

    def _drill_down_url(self, group_by: str, row: AcquisitionRow, query: dict) -> str | None:
        if group_by not in DRILL_DOWN or row.key is None:
            return None
        field, below = DRILL_DOWN[group_by]
        return "?" + urlencode({**query, field: row.key, "group_by": below})

    def dashboard_export_view(self, request):
        form = self._form(request)
        if not form.is_valid():  # the page shows the same errors
            return redirect(reverse("admin:customers_acquisitiondaily_dashboard") + "?" + request.GET.urlencode())
        figures = self._figures(request, form)
        content = workbook_build(figures, filters_text=self._filters_text(form, figures))
        response = HttpResponse(content, content_type="application/vnd.openxmlformats-officedocument."
                                                      "spreadsheetml.sheet")
        filename = f"{_('加粉看板')}_{figures.date_from:%Y%m%d}-{figures.date_to:%Y%m%d}.xlsx"
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
        return response

    def _filters_text(self, form: DashboardForm, figures: AcquisitionFigures) -> list[tuple[str, str]]:
        data = form.cleaned_data
        return [(_("日期"), f"{figures.date_from.isoformat()} ~ {figures.date_to.isoformat()}"),
                (_("分组"), str(dict(GROUP_BY_CHOICES)[figures.group_by])),
                (_("区域"), str(data["region"] or _("全部"))), (_("加盟商"), str(data["franchisee"] or _("全部"))),
                (_("门店"), str(data["store"] or _("全部"))),
                (_("导出时间"), timezone.localtime().strftime("%Y-%m-%d %H:%M"))]
