"""The admin's chart include: a Chart in Python, its ECharts option as JSON data, its numbers in a table."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from django.template import Context, Template

from portal.charts import Chart, Series


def chart(**overrides) -> Chart:
    values = {"element_id": "usage-chart", "title": "素材使用", "categories": ["05-01", "05-02"],
              "series": [Series(name="下载", values=[3, 5], color="#2e9d5b"),
                         Series(name="转化率", values=[Decimal("12.5"), None], kind="line")],
              "category_label": "日期", "value_label": "次数"}
    return Chart(**{**values, **overrides})


def render(text: str, **context) -> str:
    return Template("{% load xiaoer_charts %}" + text).render(Context(context))


def option_in(html: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}-option" type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    return json.loads(match.group(1))


def test_the_option_has_the_categories_and_one_series_each_with_its_kind_and_colour():
    option = chart().option()

    assert option["xAxis"]["data"] == ["05-01", "05-02"] and option["xAxis"]["name"] == "日期"
    assert [(s["name"], s["type"], s["data"]) for s in option["series"]] == [("下载", "bar", [3, 5]),
                                                                            ("转化率", "line", [12.5, None])]
    assert option["series"][0]["itemStyle"] == {"color": "#2e9d5b"}
    assert option["legend"]["data"] == ["下载", "转化率"]


def test_a_series_without_one_value_per_category_is_refused():
    with pytest.raises(ValueError, match="下载"):
        chart(series=[Series(name="下载", values=[1])])


def test_the_page_carries_the_option_as_json_data_and_an_element_to_draw_in():
    html = render("{% xiaoer_chart chart %}", chart=chart())

    assert '<div id="usage-chart" class="xe-chart" data-xiaoer-chart="usage-chart-option"' in html
    assert option_in(html, "usage-chart") == json.loads(json.dumps(chart().option()))


def test_a_name_that_looks_like_markup_stays_data_in_the_json_and_the_table():
    hostile = '</script><script>alert("门店")</script>'
    html = render("{% xiaoer_chart chart %}", chart=chart(categories=[hostile, "b"]))

    assert "<script>alert" not in html
    assert option_in(html, "usage-chart")["xAxis"]["data"][0] == hostile
    assert "&lt;/script&gt;&lt;script&gt;alert" in html


def test_the_numbers_are_readable_in_a_table_without_javascript():
    html = render("{% xiaoer_chart chart %}", chart=chart())
    table = re.search(r'<details class="xe-chart-data" id="usage-chart-table">(.*?)</details>', html, re.S).group(1)

    cells = [re.sub(r"<[^>]+>", "", row).split("|") for row in re.findall(
        r"<tr>(.*?)</tr>", table.replace("</th><th", "</th>|<th").replace("</td><td", "</td>|<td"), re.S)]
    assert cells == [["日期", "下载", "转化率"], ["05-01", "3", "12.5"], ["05-02", "5", "–"]]
    assert "数据表" in table


def test_two_charts_on_a_page_load_the_scripts_once():
    html = render("{% xiaoer_chart a %}{% xiaoer_chart b %}", a=chart(), b=chart(element_id="other-chart"))

    assert html.count("vendor/echarts.min.js") == 1 and html.count("xiaoer/chart.js") == 1
    assert option_in(html, "usage-chart") and option_in(html, "other-chart")
