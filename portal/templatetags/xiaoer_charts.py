"""``{% xiaoer_chart chart %}``: a ``portal.charts.Chart`` drawn by ECharts, with its data table.

The interface is documented in portal/charts.py.
"""

from __future__ import annotations

from django import template

from portal.charts import Chart

register = template.Library()

_SCRIPTS_DONE = "xiaoer_chart_scripts"


@register.inclusion_tag("admin/xiaoer/chart.html", takes_context=True)
def xiaoer_chart(context, chart: Chart) -> dict:
    # The page's render context is shared by the page, its parents and its includes: the scripts go out once.
    render_context = context.render_context
    with_scripts = not render_context.get(_SCRIPTS_DONE, False)
    render_context[_SCRIPTS_DONE] = True
    header, rows = chart.table()
    return {"chart": chart, "option": chart.option(), "option_id": f"{chart.element_id}-option",
            "header": header, "rows": rows, "with_scripts": with_scripts}
