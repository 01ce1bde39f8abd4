"""素材使用分析: the admin page, its Excel export and a material's own summary, by persona."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from materials.usage.admin import material_usage_context
from materials.usage.selectors import UsageFilters, materials_top, materials_unused, usage_by_region
from materials.usage.services import material_uses_flush
from tests.materials.helpers import script_published
from tests.materials.usage_helpers import use

pytestmark = pytest.mark.django_db

PAGE = "admin:materials_materialuse_analytics"
EXPORT = "admin:materials_materialuse_analytics_export"
VIEWERS = ["hq_operator", "hq_admin", "region_manager_east", "franchisee_owner", "store_manager_of_a"]


@pytest.fixture
def used(org, hq_operator, queue):
    """A poster used in A001 (3 views, 1 send), A002 (2 downloads) and B001 (5 sends); a script never used."""
    poster = script_published(by=hq_operator, title="双十一海报", everyone=True)
    idle = script_published(by=hq_operator, title="冷门话术", everyone=True)
    for _ in range(3):
        use(poster, store=org.store_a, staff=org.guide_a, action="view")
    use(poster, store=org.store_a, staff=org.manager_a, action="send")
    for _ in range(2):
        use(poster, store=org.store_a2, action="download")
    for _ in range(5):
        use(poster, store=org.store_b, staff=org.guide_b, action="send")
    material_uses_flush()
    return {"poster": poster, "idle": idle, "org": org}


def page(client, user, **query):
    client.force_login(user)
    return client.get(reverse(PAGE), query)


def stores_shown(response) -> dict[str, int]:
    return {cells[0]: cells[-1] for cells in response.context["store_rows"]}


@pytest.mark.parametrize("persona", VIEWERS)
def test_every_persona_with_the_view_permission_opens_the_analytics(persona, used, client, request):
    response = page(client, request.getfixturevalue(persona))

    assert response.status_code == 200
    assert "素材使用分析" in response.content.decode()


def test_store_staff_do_not_get_the_analytics(used, staff_of_a, client):
    response = page(client, staff_of_a)

    assert response.status_code == 302 and "/login/" in response["Location"]


def test_hq_sees_every_stores_use(used, hq_operator, client):
    response = page(client, hq_operator)

    assert stores_shown(response) == {"广州天河店（B001）": 5, "上海徐汇店（A001）": 4, "杭州西湖店（A002）": 2}
    assert response.context["figures"]["total"] == 11


def test_a_store_managers_figures_are_only_their_stores(used, store_manager_of_a, client):
    response = page(client, store_manager_of_a)
    html = response.content.decode()

    assert stores_shown(response) == {"上海徐汇店（A001）": 4}
    assert response.context["figures"]["total"] == 4
    assert [row.counts.total for row in response.context["figures"]["top"]] == [4]
    assert "广州天河店" not in html and "杭州西湖店" not in html


def test_a_region_managers_regions_include_their_sub_regions_stores(used, region_manager_east, client):
    response = page(client, region_manager_east)

    regions = {cells[0]: cells[-1] for cells in response.context["region_rows"]}
    assert regions == {"华东大区": 6, "上海": 4, "杭州": 2}
    assert "华南大区" not in response.content.decode()


def test_another_regions_id_is_refused_as_missing(used, region_manager_east, client):
    org = used["org"]

    theirs = page(client, region_manager_east, region=org.south.pk)
    nobodys = page(client, region_manager_east, region=org.south.pk + 10_000)

    assert "figures" not in theirs.context and theirs.context["form"].errors["region"]
    assert theirs.context["form"].errors["region"] == nobodys.context["form"].errors["region"]
    assert "广州" not in theirs.content.decode()


def test_another_stores_id_is_refused(used, store_manager_of_a, client):
    response = page(client, store_manager_of_a, store=used["org"].store_b.pk)

    assert "figures" not in response.context and response.context["form"].errors["store"]


def test_a_region_filter_narrows_to_that_region_and_below(used, hq_operator, client):
    response = page(client, hq_operator, region=used["org"].east.pk)

    assert stores_shown(response) == {"上海徐汇店（A001）": 4, "杭州西湖店（A002）": 2}


def test_use_over_time_has_every_day_of_the_period(used, hq_operator, client):
    today = timezone.localdate()
    response = page(client, hq_operator, date_from=(today - timedelta(days=6)).isoformat())

    days = response.context["day_rows"]
    assert [cells[0] for cells in days] == [(today - timedelta(days=6 - i)).isoformat() for i in range(7)]
    assert days[-1][1:] == [3, 2, 0, 0, 6, 11] and all(cells[-1] == 0 for cells in days[:-1])
    assert response.context["charts"]["over_time"].categories[-1] == today.isoformat()


def test_the_unused_list_holds_usable_materials_without_use(used, hq_operator, store_manager_of_a):
    filters = UsageFilters(date_from=timezone.localdate() - timedelta(days=30), date_to=timezone.localdate())

    assert list(materials_unused(viewer=hq_operator, filters=filters)) == [used["idle"]]
    assert list(materials_unused(viewer=store_manager_of_a, filters=filters)) == [used["idle"]]


def test_a_material_used_only_elsewhere_is_unused_for_a_store_manager(used, hq_operator, store_manager_of_a):
    org = used["org"]
    south_only = script_published(by=hq_operator, title="华南专用", regions=[org.south])
    only_a = script_published(by=hq_operator, title="A店专用", stores=[org.store_a])
    use(south_only, store=org.store_b)
    use(only_a, store=org.store_a)
    material_uses_flush()
    filters = UsageFilters(date_from=timezone.localdate(), date_to=timezone.localdate())

    assert set(materials_unused(viewer=store_manager_of_a, filters=filters)) == {used["idle"]}
    assert set(materials_unused(viewer=hq_operator, filters=filters)) == {used["idle"]}


def test_top_materials_rank_by_the_chosen_action(used, hq_operator):
    org = used["org"]
    other = script_published(by=hq_operator, title="会员日话术", everyone=True)
    for _ in range(4):
        use(other, store=org.store_a, action="view")
    material_uses_flush()
    filters = UsageFilters(date_from=timezone.localdate(), date_to=timezone.localdate())

    assert [r.label for r in materials_top(viewer=hq_operator, filters=filters)] == ["双十一海报", "会员日话术"]
    assert [r.label for r in materials_top(viewer=hq_operator, filters=filters, action="view")] == \
        ["会员日话术", "双十一海报"]
    assert [r.label for r in materials_top(viewer=hq_operator, filters=filters, action="send")] == ["双十一海报"]


def test_region_figures_follow_the_tree_for_hq(used, hq_operator):
    filters = UsageFilters(date_from=timezone.localdate(), date_to=timezone.localdate())

    regions = {r.label: r.counts.total for r in usage_by_region(viewer=hq_operator, filters=filters)}

    assert regions == {"华东大区": 6, "上海": 4, "杭州": 2, "华南大区": 5, "广州": 5}


@pytest.mark.parametrize("query, message", [
    ({"date_from": "2026-03-05", "date_to": "2026-03-01"}, "开始日期不能晚于结束日期"),
    ({"date_from": "yesterday"}, "输入一个有效的日期"),
    ({"kind": "hologram"}, "选择一个有效的选项"),
    ({"action": "like"}, "选择一个有效的选项"),
])
def test_bad_input_is_a_clear_error_on_the_page(used, hq_operator, client, query, message):
    response = page(client, hq_operator, **query)

    assert response.status_code == 200 and "figures" not in response.context
    assert message in response.content.decode()


def _sheet(response, title: str) -> list[list]:
    book = load_workbook(io.BytesIO(response.content))
    return [list(row) for row in book[title].iter_rows(values_only=True)]


def test_the_export_cells_equal_the_pages_figures(used, hq_operator, client):
    shown = page(client, hq_operator)

    response = client.get(reverse(EXPORT))

    assert response.status_code == 200 and ".xlsx" in response["Content-Disposition"]
    assert _sheet(response, "按日")[1:] == shown.context["day_rows"]
    assert _sheet(response, "区域")[1:] == shown.context["region_rows"]
    assert _sheet(response, "门店")[1:] == shown.context["store_rows"]
    assert _sheet(response, "素材排行")[1:] == [row["cells"] for row in shown.context["top_rows"]]
    assert _sheet(response, "未使用素材")[1:] == [list(row) for row in shown.context["unused_rows"]]
    assert _sheet(response, "按日")[0] == ["日期", *[str(c) for c in shown.context["columns"]]]


def test_a_store_managers_export_holds_only_their_store(used, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse(EXPORT))

    assert [row[0] for row in _sheet(response, "门店")[1:]] == ["上海徐汇店（A001）"]


def test_an_export_with_another_regions_id_exports_nothing(used, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse(EXPORT), {"region": used["org"].south.pk})

    assert response.status_code == 302 and reverse(PAGE) in response["Location"]


def test_a_materials_summary_shows_where_and_how_it_was_used_in_the_viewers_scope(used, store_manager_of_a,
                                                                                   hq_operator):
    request = RequestFactory().get("/")
    for viewer, stores in ((hq_operator, ["广州天河店（B001）", "上海徐汇店（A001）", "杭州西湖店（A002）"]),
                           (store_manager_of_a, ["上海徐汇店（A001）"])):
        request.user = viewer
        context = material_usage_context(request, used["poster"])
        summary = context["usage_summary"]
        assert [row.label for row in summary.stores] == stores
        html = render_to_string("admin/materials/material/usage_summary.html", context)
        assert all(store in html for store in stores)
    assert summary.counts.cells() == [3, 0, 0, 0, 1, 4]
    assert [(row.label, row.counts.total) for row in summary.versions] == [("第 1 版", 4)]
    assert "广州天河店" not in html


def test_the_event_list_is_read_only_and_scoped(used, store_manager_of_a, client):
    client.force_login(store_manager_of_a)

    response = client.get(reverse("admin:materials_materialuse_changelist"))

    assert response.status_code == 200
    assert {row.store_id for row in response.context["cl"].result_list} == {used["org"].store_a.pk}
    assert reverse(PAGE) in response.content.decode()


def test_the_analytics_page_draws_its_figures_as_echarts_charts(used, hq_operator, client):
    response = page(client, hq_operator)

    html = response.content.decode()
    for element_id in ("usage-over-time", "usage-regions", "usage-top"):
        assert f'id="{element_id}" class="xe-chart"' in html and f'id="{element_id}-option"' in html
    top = response.context["charts"]["top"]
    assert top.categories[0] == "双十一海报"
    assert sum(sum(series.values) for series in top.series) == 11
    assert "vendor/echarts.min.js" in html


def test_a_region_manager_opening_a_material_sees_its_use_in_their_region_only(used, region_manager_east, client):
    client.force_login(region_manager_east)

    response = client.get(reverse("admin:materials_material_change", args=[used["poster"].pk]))

    html = response.content.decode()
    assert response.status_code == 200 and 'id="material-usage"' in html
    assert "上海徐汇店（A001）" in html and "广州天河店" not in html
