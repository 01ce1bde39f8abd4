"""Charts in the admin: a chart is data in Python, drawn in the browser by Apache ECharts.

Build a ``Chart`` in the view (its categories along the x axis, one ``Series`` per line or set of bars)
and render it with the include's template tag::

    # the view / admin panel
    from portal.charts import Chart, Series
    context["chart"] = Chart(
        element_id="usage-chart", title=_("素材使用"), categories=["2026-05-01", "2026-05-02"],
        series=[Series(name=_("下载"), values=[3, 5]), Series(name=_("转发"), values=[1, 2], kind="line")],
        category_label=_("日期"), value_label=_("次数"))

    {# the template #}
    {% load xiaoer_charts %}
    {% xiaoer_chart chart %}

The tag (templates/admin/xiaoer/chart.html) renders:

- ``<div id="{element_id}" class="xe-chart">``, which portal/static/xiaoer/chart.js fills with an ECharts
  canvas; the option is ``Chart.option()``, handed over by ``json_script`` (``{element_id}-option``, JSON
  that is never executed: names of stores or staff stay data, and no inline script is needed, so a
  Content-Security-Policy of ``script-src 'self'`` holds);
- a data table under a 数据表 toggle (``<details>``, id ``{element_id}-table``): the same numbers,
  readable without JavaScript, by screen readers and by tests;
- the two scripts (``vendor/echarts.min.js`` from npm, ``xiaoer/chart.js``), once per page however many
  charts it has.

Values are ints, floats or Decimals (drawn as numbers); ``None`` is a gap. Every series has one value per
category (``Chart`` refuses otherwise). Names and labels are shown as given: pass translated strings.
Tests assert on the ``Chart`` in the response context (``categories``, ``series``) or on ``table()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from django.utils.functional import Promise

Number = int | float | Decimal | None
Label = str | Promise


@dataclass(frozen=True)
class Series:
    """One set of values, drawn as bars (default) or a line, with an optional CSS colour (``#2e9d5b``)."""

    name: Label
    values: list[Number]
    kind: Literal["bar", "line"] = "bar"
    color: str | None = None


@dataclass(frozen=True)
class Chart:
    element_id: str
    title: Label
    categories: list[str]
    series: list[Series]
    category_label: Label = ""
    value_label: Label = ""
    height: int = 260
    stacked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # top-level ECharts option keys, merged last

    def __post_init__(self) -> None:
        for series in self.series:
            if len(series.values) != len(self.categories):
                raise ValueError(f"series {series.name!s} has {len(series.values)} values "
                                 f"for {len(self.categories)} categories")

    def option(self) -> dict[str, Any]:
        """The ECharts option: plain JSON (strings, numbers, lists), the same for every browser."""
        series = []
        for item in self.series:
            entry: dict[str, Any] = {"name": str(item.name), "type": item.kind,
                                     "data": [_number(value) for value in item.values]}
            if item.color:
                entry["itemStyle"] = {"color": item.color}
            if self.stacked:
                entry["stack"] = "total"
            series.append(entry)
        option: dict[str, Any] = {
            "aria": {"enabled": True},
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0, "data": [str(item.name) for item in self.series]},
            "grid": {"left": 8, "right": 16, "top": 36, "bottom": 8, "containLabel": True},
            "xAxis": {"type": "category", "name": str(self.category_label), "data": list(self.categories)},
            "yAxis": {"type": "value", "name": str(self.value_label), "minInterval": 1},
            "series": series,
        }
        option.update(self.extra)
        return option

    def table(self) -> tuple[list[str], list[list[Number]]]:
        """The fallback table: a header (category label, then each series) and one row per category."""
        header = [str(self.category_label), *(str(item.name) for item in self.series)]
        rows: list[list[Any]] = [[category, *(item.values[i] for item in self.series)]
                                 for i, category in enumerate(self.categories)]
        return header, rows


def _number(value: Number) -> int | float | None:
    if isinstance(value, Decimal):
        return float(value)
    return value
