"""任务执行看板 in the admin: a task's (or a campaign's) rollup page, the HQ task dashboard, their Excel exports.

Four extra URLs on TaskAdmin (``TaskRollupAdminMixin.get_urls``), wrapped by ``admin_view`` and allowed to whoever
may view tasks — the same permission and scope as the task list:

* /admin/campaigns/task/rollup/?task=<id> (or ?campaign=<id>), narrowed by ?region= ?franchisee= ?city= ?store=
  (drill-down links in every table): totals, completion by region as stacked bars, done over time as a line, one
  table per level (region, franchisee, city, store, staff), the store and region leaderboards;
* …/rollup/export/ with the same query: every table of the page, each level on its own sheet;
* /admin/campaigns/task/dashboard/?date_from=&date_to=&campaign=&region=: the open tasks of the period with their
  completion (from the kept counts), completion per region, charts; …/dashboard/export/ the same as .xlsx.

Every figure comes from campaigns/tasks/rollups.py in the viewer's scope; the filters accept only the viewer's
tasks, campaigns, regions, franchisees, cities and stores (another scope's id is an error on the form, and the
page then shows no figures).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
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

from campaigns.tasks.models import Assignment, Campaign, Task
from campaigns.tasks.rollups import (
    DIRECT,
    LEVEL_LABELS,
    LEVELS,
    DashboardFilters,
    RollupCounts,
    RollupError,
    RollupFilters,
    RollupRow,
    campaign_first_day,
    count_columns,
    dashboard,
    leaderboard,
    rollup_levels,
    rollup_over_time,
)
from portal.admin_base import scoped
from portal.charts import Chart, Series
from portal.spreadsheets import sheets_workbook_bytes
from stores.org.models import Franchisee, Region, Store

DISPLAY_LIMIT = 100  # rows of a level rendered in the page (the rest is in the export: rendering is the cost)
BOARD_SIZE = 10
DEFAULT_DAYS_BACK = 30
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COMPLETION = (("on_time", gettext_lazy("按时完成"), "#2e9d5b"), ("late", gettext_lazy("逾期完成"), "#8bc34a"),
              ("in_progress", gettext_lazy("进行中"), "#5b8ff9"), ("overdue", gettext_lazy("已逾期"), "#d9534f"),
              ("excused", gettext_lazy("已免除"), "#bbbbbb"), ("rejected", gettext_lazy("已驳回"), "#f0ad4e"))
DRILL = {"region": "region", "franchisee": "franchisee", "city": "city", "store": "store"}


def _parts(counts: RollupCounts) -> dict[str, int]:
    in_progress = counts.dispatched - counts.done - counts.excused - counts.rejected - counts.overdue
    return {"on_time": counts.on_time, "late": counts.done - counts.on_time, "in_progress": max(in_progress, 0),
            "overdue": counts.overdue, "excused": counts.excused, "rejected": counts.rejected}


def completion_chart(*, element_id: str, title: str, rows: list[tuple[str, RollupCounts]],
                     category_label: str) -> Chart:
    """Where the work of each row stands, as stacked bars (ECharts through {% xiaoer_chart %})."""
    parts = [_parts(counts) for _label, counts in rows]
    return Chart(element_id=element_id, title=title, categories=[label for label, _counts in rows], stacked=True,
                 category_label=category_label, value_label=_("执行记录"),
                 series=[Series(name=str(label), values=[p[key] for p in parts], color=color)
                         for key, label, color in COMPLETION])


def _date_input():
    return forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})


class RollupForm(forms.Form):
    task = forms.ModelChoiceField(label=gettext_lazy("任务"), queryset=Task.objects.none(), required=False,
                                  widget=forms.HiddenInput)
    campaign = forms.ModelChoiceField(label=gettext_lazy("活动"), queryset=Campaign.objects.none(), required=False,
                                      widget=forms.HiddenInput)
    region = forms.ModelChoiceField(label=gettext_lazy("区域（含下级）"), queryset=Region.objects.none(),
                                    required=False)
    franchisee = forms.CharField(label=gettext_lazy("加盟商"), required=False, widget=forms.Select)
    city = forms.CharField(label=gettext_lazy("城市"), required=False, max_length=64)
    store = forms.ModelChoiceField(label=gettext_lazy("门店"), queryset=Store.objects.none(), required=False)

    def __init__(self, *args, user, admin_site, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Only what the viewer may see is offered, and only that validates: another scope's id is an error.
        for name, queryset in (("task", Task.objects.all()), ("campaign", Campaign.objects.all()),
                               ("region", Region.objects.order_by("code"))):
            cast(forms.ModelChoiceField, self.fields[name]).queryset = scoped(queryset, user)
        store = cast(forms.ModelChoiceField, self.fields["store"])
        store.widget = AutocompleteSelect(Assignment._meta.get_field("store"), admin_site)
        store.queryset = scoped(Store.objects.all(), user)
        self.franchisees = list(scoped(Franchisee.objects.order_by("name"), user).values_list("pk", "name"))
        self.fields["franchisee"].widget.choices = [("", _("全部")), (str(DIRECT), _("直营门店")),
                                                    *((str(pk), name) for pk, name in self.franchisees)]

    def clean_franchisee(self) -> int | None:
        value = self.cleaned_data.get("franchisee")
        if not value:
            return None
        if value == str(DIRECT) or value in {str(pk) for pk, _name in self.franchisees}:
            return int(value)
        raise forms.ValidationError(_("选择一个有效的加盟商"))

    def clean_city(self) -> str:
        city = (self.cleaned_data.get("city") or "").strip()
        if city and not scoped(Store.objects.all(), self.user).filter(city=city).exists():
            raise forms.ValidationError(_("你的门店里没有这个城市"))
        return city

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if not self.errors and bool(data.get("task")) == bool(data.get("campaign")):
            raise forms.ValidationError(_("请选择一个任务或活动"))
        return data

    def filters(self) -> RollupFilters:
        data = self.cleaned_data
        return RollupFilters(task_id=data["task"].pk if data["task"] else None,
                             campaign_id=data["campaign"].pk if data["campaign"] else None,
                             region_id=data["region"].pk if data["region"] else None,
                             franchisee_id=data["franchisee"], city=data["city"] or None,
                             store_id=data["store"].pk if data["store"] else None)


def rollup_figures(*, viewer, form: RollupForm) -> dict[str, Any]:
    """Every figure the rollup page and its export show, computed once."""
    filters = form.filters()
    subject = form.cleaned_data["task"] or form.cleaned_data["campaign"]
    levels = rollup_levels(viewer=viewer, filters=filters)
    first = (timezone.localdate(subject.start_at) if isinstance(subject, Task)
             else campaign_first_day(campaign=subject))
    return {"filters": filters, "subject": subject, "is_task": isinstance(subject, Task),
            "total": sum((row.counts for row in levels["store"]), RollupCounts()), "levels": levels,
            "days": rollup_over_time(viewer=viewer, filters=filters, first=first),
            "store_board": leaderboard(levels["store"], top=BOARD_SIZE),
            "region_board": leaderboard(levels["region"], top=BOARD_SIZE)}


def _drill_url(base: str, query: dict, level: str, row: RollupRow) -> str | None:
    if level not in DRILL or row.key is None:
        return None
    keep = {k: v for k, v in query.items() if k in ("task", "campaign")}
    return f"{base}?{urlencode({**keep, DRILL[level]: row.key})}"


def rollup_workbook(figures: dict[str, Any], *, filters_text: list[tuple[str, str]]) -> bytes:
    """The page's tables, each on its own sheet, exactly as shown (all rows), as .xlsx."""
    columns = count_columns()
    sheets: list[tuple[str, list[str], list[list]]] = [
        (_("汇总"), [_("范围"), *columns], [[str(figures["subject"]), *figures["total"].cells()]])]
    for level in LEVELS:
        sheets.append((str(LEVEL_LABELS[level]), [str(LEVEL_LABELS[level]), _("说明"), *columns],
                       [[row.label, row.note, *row.counts.cells()] for row in figures["levels"][level]]))
    for title, board in ((_("门店排行"), figures["store_board"]), (_("区域排行"), figures["region_board"])):
        sheets.append((title, [_("名次"), _("名称"), _("说明"), *columns],
                       [[r.rank, r.row.label, r.row.note, *r.row.counts.cells()] for r in board]))
    sheets.append((_("每日完成"), [_("日期"), _("当日完成"), _("累计完成")],
                   [[d.day.isoformat(), d.done, d.cumulative] for d in figures["days"]]))
    return sheets_workbook_bytes(sheets=sheets, filters_text=filters_text, first_column_width=28)


def dashboard_form_data(request) -> dict:
    today = timezone.localdate()
    defaults = {"date_from": (today - timedelta(days=DEFAULT_DAYS_BACK)).isoformat(), "date_to": today.isoformat()}
    return {**defaults, **{key: value for key, value in request.GET.items() if value != ""}}


class DashboardForm(forms.Form):
    date_from = forms.DateField(label=gettext_lazy("开始日期"), widget=_date_input())
    date_to = forms.DateField(label=gettext_lazy("结束日期"), widget=_date_input())
    campaign = forms.ModelChoiceField(label=gettext_lazy("活动"), queryset=Campaign.objects.none(), required=False)
    region = forms.ModelChoiceField(label=gettext_lazy("区域（含下级）"), queryset=Region.objects.none(),
                                    required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        for name, queryset in (("campaign", Campaign.objects.all()), ("region", Region.objects.order_by("code"))):
            cast(forms.ModelChoiceField, self.fields[name]).queryset = scoped(queryset, user)

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if data.get("date_from") and data.get("date_to"):
            if data["date_to"] < data["date_from"]:
                raise forms.ValidationError(_("结束日期不能早于开始日期"))
            if (data["date_to"] - data["date_from"]).days > 366:
                raise forms.ValidationError(_("时间范围最长一年"))
        return data

    def filters(self) -> DashboardFilters:
        data = self.cleaned_data
        return DashboardFilters(date_from=data["date_from"], date_to=data["date_to"],
                                campaign_id=data["campaign"].pk if data["campaign"] else None,
                                region_id=data["region"].pk if data["region"] else None)


def dashboard_figures(*, viewer, form: DashboardForm) -> dict[str, Any]:
    filters = form.filters()
    figures = dashboard(viewer=viewer, filters=filters)
    return {"filters": filters, "tasks": figures.tasks, "regions": figures.regions}


def dashboard_workbook(figures: dict[str, Any], *, filters_text: list[tuple[str, str]]) -> bytes:
    columns = count_columns()
    sheets = [
        (_("任务"), [_("任务"), _("活动"), _("截止时间"), *columns],
         [[line.title, line.campaign, timezone.localtime(line.deadline).strftime("%Y-%m-%d %H:%M"),
           *line.counts.cells()] for line in figures["tasks"]]),
        (_("区域"), [_("区域"), _("上级区域"), *columns],
         [[row.label, row.note, *row.counts.cells()] for row in figures["regions"]]),
    ]
    return sheets_workbook_bytes(sheets=sheets, filters_text=filters_text, first_column_width=28)


def _xlsx_response(content: bytes, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=XLSX)
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
    return response


class TaskRollupAdminMixin:
    """The rollup page and the HQ dashboard on TaskAdmin."""

    admin_site: Any
    model: Any
    media: Any
    has_view_permission: Any  # the ModelAdmin's

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("rollup/", view(self.rollup_view), name="campaigns_task_rollup"),
            path("rollup/export/", view(self.rollup_export_view), name="campaigns_task_rollup_export"),
            path("dashboard/", view(self.dashboard_view), name="campaigns_task_dashboard"),
            path("dashboard/export/", view(self.dashboard_export_view), name="campaigns_task_dashboard_export"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}),
                         "rollup_url": reverse("admin:campaigns_task_rollup") + "?" + urlencode({"task": object_id})}
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "dashboard_url": reverse("admin:campaigns_task_dashboard")}
        return super().changelist_view(request, extra_context)  # type: ignore[misc]

    def _allowed(self, request) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    # -- one task or campaign -----------------------------------------------------------------------------
    def _rollup_form(self, request) -> RollupForm:
        self._allowed(request)
        return RollupForm(request.GET, user=request.user, admin_site=self.admin_site)

    def rollup_view(self, request):
        form = self._rollup_form(request)
        context = {**self.admin_site.each_context(request), "title": _("任务执行统计"), "opts": self.model._meta,
                   "form": form, "media": self.media + form.media, "columns": count_columns(),
                   "display_limit": DISPLAY_LIMIT}
        if form.is_valid():
            figures = rollup_figures(viewer=request.user, form=form)
            query = {key: value for key, value in request.GET.items() if value != ""}
            base = reverse("admin:campaigns_task_rollup")
            context["title"] = _("执行统计：%(name)s") % {"name": figures["subject"]}
            context.update({
                "figures": figures,
                "total_cells": figures["total"].cells(),
                "tables": [{"level": level, "label": LEVEL_LABELS[level], "count": len(rows),
                            "rows": [{"label": row.label, "note": row.note, "cells": row.counts.cells(),
                                      "url": _drill_url(base, query, level, row)} for row in rows[:DISPLAY_LIMIT]]}
                           for level, rows in figures["levels"].items()],
                "store_board": figures["store_board"], "region_board": figures["region_board"],
                "charts": {
                    "regions": completion_chart(element_id="rollup-regions", title=_("各区域完成情况（含下级区域）"),
                                                rows=[(r.label, r.counts) for r in figures["levels"]["region"]],
                                                category_label=_("区域")),
                    "over_time": Chart(
                        element_id="rollup-over-time", title=_("每日完成"), category_label=_("日期"),
                        value_label=_("执行记录"), categories=[d.day.isoformat() for d in figures["days"]],
                        series=[Series(name=_("当日完成"), values=[d.done for d in figures["days"]]),
                                Series(name=_("累计完成"), values=[d.cumulative for d in figures["days"]],
                                       kind="line", color="#2e9d5b")]),
                },
                "export_url": reverse("admin:campaigns_task_rollup_export") + "?" + urlencode(query),
                "narrowed": any(query.get(k) for k in ("region", "franchisee", "city", "store")),
                "top_url": base + "?" + urlencode({k: v for k, v in query.items() if k in ("task", "campaign")}),
            })
        return TemplateResponse(request, "admin/campaigns/task/rollup.html", context)

    def rollup_export_view(self, request):
        form = self._rollup_form(request)
        if not form.is_valid():  # the page shows the same errors
            return redirect(reverse("admin:campaigns_task_rollup") + "?" + request.GET.urlencode())
        figures = rollup_figures(viewer=request.user, form=form)
        content = rollup_workbook(figures, filters_text=self._rollup_filters_text(form))
        return _xlsx_response(content, f"{_('任务执行统计')}_{figures['subject']}_{timezone.localdate():%Y%m%d}.xlsx")

    def _rollup_filters_text(self, form: RollupForm) -> list[tuple[str, str]]:
        data = form.cleaned_data
        franchisee = data["franchisee"]
        names = dict(form.franchisees)
        return [(_("任务"), str(data["task"] or "—")), (_("活动"), str(data["campaign"] or "—")),
                (_("区域"), str(data["region"] or _("全部"))),
                (_("加盟商"), _("全部") if franchisee is None else _("直营门店") if franchisee == DIRECT
                 else names.get(franchisee, "")),
                (_("城市"), data["city"] or str(_("全部"))), (_("门店"), str(data["store"] or _("全部"))),
                (_("导出时间"), timezone.localtime().strftime("%Y-%m-%d %H:%M"))]

    # -- the HQ dashboard ---------------------------------------------------------------------------------
    def _dashboard_form(self, request) -> DashboardForm:
        self._allowed(request)
        return DashboardForm(dashboard_form_data(request), user=request.user)

    def dashboard_view(self, request):
        form = self._dashboard_form(request)
        context = {**self.admin_site.each_context(request), "title": _("任务看板"), "opts": self.model._meta,
                   "form": form, "media": self.media + form.media, "columns": count_columns()}
        if form.is_valid():
            try:
                figures = dashboard_figures(viewer=request.user, form=form)
            except RollupError as exc:  # the form checks the same; kept for a direct call
                form.add_error(None, str(exc))
                return TemplateResponse(request, "admin/campaigns/task/dashboard.html", context)
            query = {key: value for key, value in request.GET.items() if value != ""}
            rollup = reverse("admin:campaigns_task_rollup")
            lines = figures["tasks"]
            context.update({
                "figures": figures,
                "task_rows": [{"title": line.title, "campaign": line.campaign, "deadline": line.deadline,
                               "cells": line.counts.cells(),
                               "url": rollup + "?" + urlencode({"task": line.task_id,
                                                                **({"region": query["region"]}
                                                                   if "region" in query else {})})}
                              for line in lines],
                "region_rows": [{"label": r.label, "note": r.note, "cells": r.counts.cells()}
                                for r in figures["regions"]],
                "total_cells": sum((line.counts for line in lines), RollupCounts()).cells(),
                "charts": {
                    "tasks": completion_chart(element_id="dashboard-tasks", title=_("各任务完成情况"),
                                              rows=[(line.title, line.counts) for line in lines[:30]],
                                              category_label=_("任务")),
                    "regions": completion_chart(element_id="dashboard-regions", title=_("各区域完成情况（含下级区域）"),
                                                rows=[(r.label, r.counts) for r in figures["regions"]],
                                                category_label=_("区域")),
                },
                "export_url": reverse("admin:campaigns_task_dashboard_export") + "?" + urlencode(query),
            })
        return TemplateResponse(request, "admin/campaigns/task/dashboard.html", context)

    def dashboard_export_view(self, request):
        form = self._dashboard_form(request)
        if not form.is_valid():
            return redirect(reverse("admin:campaigns_task_dashboard") + "?" + request.GET.urlencode())
        figures = dashboard_figures(viewer=request.user, form=form)
        data = form.cleaned_data
        text = [(_("日期"), f"{data['date_from'].isoformat()} ~ {data['date_to'].isoformat()}"),
                (_("活动"), str(data["campaign"] or _("全部"))), (_("区域"), str(data["region"] or _("全部"))),
                (_("导出时间"), timezone.localtime().strftime("%Y-%m-%d %H:%M"))]
        return _xlsx_response(dashboard_workbook(figures, filters_text=text),
                              f"{_('任务看板')}_{data['date_from']:%Y%m%d}-{data['date_to']:%Y%m%d}.xlsx")


__all__ = ["DashboardForm", "RollupForm", "TaskRollupAdminMixin", "completion_chart", "dashboard_figures",
           "dashboard_workbook", "rollup_figures", "rollup_workbook"]
