"""The add-fan dashboard page, its Excel export and the 工作台 panel, by persona."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from customers.dashboard.services import acquisition_daily_build
from customers.models import AcquisitionDaily, Relationship
from tests.customers.dashboard.helpers import at, follow

DASHBOARD = "admin:customers_acquisitiondaily_dashboard"
EXPORT = "admin:customers_acquisitiondaily_dashboard_export"
VIEWERS = ["hq_operator", "hq_admin", "hq_finance", "region_manager_east", "franchisee_owner", "store_manager_of_a"]


@pytest.fixture
def week(org):
    """Three days ago: adds in store_a and store_b (built by the nightly job); today: more in store_a, live."""
    three_days_ago = timezone.localdate() - timedelta(days=3)
    follow(org.guide_a, at(three_days_ago, 9))
    follow(org.manager_a, at(three_days_ago, 10), ended_at=at(three_days_ago, 11),
           status=Relationship.Status.DELETED_BY_CUSTOMER)
    follow(org.guide_b, at(three_days_ago, 9))
    follow(org.guide_b, at(three_days_ago, 9, 5))
    acquisition_daily_build(day=three_days_ago)
    follow(org.guide_a, timezone.now())
    return org


def page(client, user, **query):
    client.force_login(user)
    return client.get(reverse(DASHBOARD), query)


def table(response) -> list[list]:
    return [row["cells"] for row in response.context["rows"]] + [response.context["total_cells"]]


@pytest.mark.parametrize("persona", VIEWERS)
def test_every_persona_with_the_view_permission_opens_the_dashboard(persona, week, client, request):
    response = page(client, request.getfixturevalue(persona))

    assert response.status_code == 200
    assert "加粉看板" in response.content.decode()
    assert 'id="dashboard-chart"' in response.content.decode()


def chart_data(response) -> tuple[list[str], dict[str, list]]:
    chart = response.context["chart"]
    return chart.categories, {str(series.name): series.values for series in chart.series}


def test_the_chart_shows_every_day_of_the_range_with_its_adds_and_deletions(week, hq_operator, client):
    days, series = chart_data(page(client, hq_operator))

    today = timezone.localdate()
    assert days == [(today - timedelta(days=n)).isoformat() for n in range(7, -1, -1)]
    assert series == {"新增": [0, 0, 0, 0, 4, 0, 0, 1], "删除（客户删除＋员工删除）": [0, 0, 0, 0, 1, 0, 0, 0]}


def test_a_store_managers_chart_counts_their_store_only(week, store_manager_of_a, client):
    _days, series = chart_data(page(client, store_manager_of_a))

    assert series["新增"] == [0, 0, 0, 0, 2, 0, 0, 1]
    assert series["删除（客户删除＋员工删除）"] == [0, 0, 0, 0, 1, 0, 0, 0]


def test_the_chart_follows_the_chosen_range_and_filters(week, hq_operator, client, org):
    three_days_ago = timezone.localdate() - timedelta(days=3)
    days, series = chart_data(page(client, hq_operator, date_from=three_days_ago.isoformat(),
                                   date_to=three_days_ago.isoformat(), store=org.store_b.pk))

    assert days == [three_days_ago.isoformat()]
    assert series == {"新增": [2], "删除（客户删除＋员工删除）": [0]}


def test_the_page_hands_the_chart_to_echarts_as_data_with_its_table(week, hq_operator, client):
    html = page(client, hq_operator).content.decode()

    option = json.loads(re.search(r'<script id="dashboard-chart-option" type="application/json">(.*?)</script>',
                                  html, re.S).group(1))
    assert [series["data"] for series in option["series"]] == [[0, 0, 0, 0, 4, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0, 0]]
    assert 'id="dashboard-chart-table"' in html and "vendor/echarts.min.js" in html
    assert "<svg class=\"xe-chart\"" not in html  # the hand-drawn SVG chart is gone


def test_store_staff_do_not_get_the_dashboard(week, staff_of_a, client):
    response = page(client, staff_of_a)

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_default_range_is_the_last_seven_days_and_today(week, hq_operator, client):
    figures = page(client, hq_operator).context["figures"]

    today = timezone.localdate()
    assert (figures.date_from, figures.date_to) == (today - timedelta(days=7), today)
    assert figures.group_by == "region"


def test_hq_sees_every_store_with_history_and_todays_live_adds(week, hq_operator, client):
    response = page(client, hq_operator, group_by="store")

    rows = {cells[0]: cells[1:] for cells in table(response)}
    assert rows["上海徐汇店（A001）"] == [3, 1, 0, 2, rows["上海徐汇店（A001）"][4], 2]
    assert str(rows["上海徐汇店（A001）"][4]) == "33.3"
    assert rows["广州天河店（B001）"][:4] == [2, 0, 0, 2]
    assert rows["合计"][:4] == [5, 1, 0, 4]


def test_a_store_managers_dashboard_contains_only_their_store(week, store_manager_of_a, client):
    response = page(client, store_manager_of_a, group_by="staff")
    html = response.content.decode()

    assert {cells[0] for cells in table(response)} == {"李导购（a-guide）", "张店长（a-manager）", "合计"}
    assert "王导购" not in html and "广州天河店" not in html and "b-guide" not in html
    assert [r.key for r in response.context["boards"].top_stores] == [week.store_a.pk]


def test_another_stores_id_in_the_query_string_shows_nothing_of_it(week, store_manager_of_a, client):
    response = page(client, store_manager_of_a, group_by="store", store=week.store_b.pk)
    html = response.content.decode()

    assert response.status_code == 200
    assert "figures" not in response.context  # nothing computed, a clear error instead
    assert response.context["form"].errors["store"]
    assert "广州天河店" not in html and "王导购" not in html


def test_filters_offer_only_what_is_in_scope(week, region_manager_east, client):
    form = page(client, region_manager_east).context["form"]

    assert set(form.fields["store"].queryset) == {week.store_a, week.store_a2}
    assert week.south not in set(form.fields["region"].queryset)
    assert set(form.fields["franchisee"].queryset) == {week.franchisee_one}


def test_a_store_filter_narrows_within_the_scope(week, franchisee_owner, client):
    response = page(client, franchisee_owner, group_by="staff", store=week.store_a.pk)

    assert {cells[0] for cells in table(response)} == {"李导购（a-guide）", "张店长（a-manager）", "合计"}


def test_drill_down_links_open_the_level_below(week, hq_operator, client):
    response = page(client, hq_operator, group_by="store")

    url = next(row["url"] for row in response.context["rows"] if row["cells"][0] == "上海徐汇店（A001）")
    assert f"store={week.store_a.pk}" in url and "group_by=staff" in url


@pytest.mark.parametrize("query, message", [
    ({"date_from": "2026-03-05", "date_to": "2026-03-01"}, "开始日期不能晚于结束日期"),
    ({"date_from": "yesterday"}, "输入一个有效的日期"),
    ({"group_by": "customer"}, "选择一个有效的选项"),
    ({"min_adds": "0"}, "确保该值大于或等于1"),
])
def test_bad_input_is_a_clear_error_on_the_page(week, hq_operator, client, query, message):
    response = page(client, hq_operator, **query)

    assert response.status_code == 200 and "figures" not in response.context
    assert message in response.content.decode()


def test_the_excel_export_opens_and_matches_the_table(week, hq_operator, client):
    query = {"group_by": "store", "date_from": (timezone.localdate() - timedelta(days=5)).isoformat()}
    shown = page(client, hq_operator, **query)

    response = client.get(reverse(EXPORT), query)

    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"] and ".xlsx" in response["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == [str(c) for c in shown.context["columns"]]
    assert values[1:] == [[cells[0], *cells[1:5], float(cells[5]), cells[6]] for cells in table(shown)]


def test_a_store_managers_export_contains_only_their_store(week, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse(EXPORT), {"group_by": "store"})

    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    labels = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert labels == ["上海徐汇店（A001）", "合计"]


def test_an_export_with_another_stores_id_exports_nothing_and_returns_to_the_page(week, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse(EXPORT), {"store": week.store_b.pk})

    assert response.status_code == 302 and reverse(DASHBOARD) in response["Location"]


def test_the_panel_on_the_admin_home_shows_todays_figures_for_the_viewers_scope(week, client, store_manager_of_a,
                                                                                 hq_operator):
    follow(week.guide_b, timezone.now())
    follow(week.guide_a, at(timezone.localdate() - timedelta(days=9)), ended_at=timezone.now(),
           status=Relationship.Status.DELETED_BY_STAFF)

    for user, adds in ((store_manager_of_a, 1), (hq_operator, 2)):
        client.force_login(user)
        response = client.get(reverse("admin:index"))
        panel = next(p for p in response.context["panels"] if p["key"] == "acquisition")
        assert [s["value"] for s in panel["stats"]] == [adds, 1, adds - 1]
        assert panel["stats"][0]["url"] == reverse(DASHBOARD)
        assert 'id="panel-acquisition"' in response.content.decode()


def test_the_daily_changelist_is_read_only_and_scoped(week, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse("admin:customers_acquisitiondaily_changelist"))

    assert response.status_code == 200
    assert {row.store_id for row in response.context["cl"].result_list} == {week.store_a.pk}
    row = AcquisitionDaily.objects.filter(store=week.store_a).first()
    assert client.post(reverse("admin:customers_acquisitiondaily_change", args=[row.pk]), {}).status_code == 403
    assert reverse(DASHBOARD) in response.content.decode()
