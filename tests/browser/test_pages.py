"""In a real browser: the mobile page looks like WeCom (WeUI) and the dashboard's chart is drawn (ECharts)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from customers.dashboard.services import acquisition_daily_build
from tests.browser.conftest import sign_in_as
from tests.conftest import PASSWORD
from tests.customers.dashboard.helpers import at, follow

pytestmark = pytest.mark.browser

WEUI_BRAND = "#07c160"
WEUI_TITLE_COLOR = "rgba(0, 0, 0, 0.55)"  # .weui-cells__title: var(--weui-FG-1)


def test_store_staff_sign_in_on_the_phone_and_see_their_store_in_weui(phone, staff_of_a, page_problems):
    phone.goto("/m/")
    phone.fill("input[name=username]", staff_of_a.username)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("#password-login button[type=submit]")
    phone.wait_for_url("**/m/")

    assert "上海徐汇店" in phone.inner_text("#stores")
    assert "广州天河店" not in phone.inner_text("main")
    assert phone.evaluate("getComputedStyle(document.body).getPropertyValue('--weui-BRAND').trim()") == WEUI_BRAND
    assert phone.eval_on_selector(".weui-cells__title", "e => getComputedStyle(e).color") == WEUI_TITLE_COLOR
    assert phone.evaluate("typeof htmx") == "object"
    assert page_problems.errors == []


def test_hq_opens_the_dashboard_and_echarts_draws_the_days_adds_and_deletions(desktop, live_server, org,
                                                                              hq_operator, page_problems):
    two_days_ago = timezone.localdate() - timedelta(days=2)
    follow(org.guide_a, at(two_days_ago, 9))
    follow(org.guide_b, at(two_days_ago, 10), ended_at=at(two_days_ago, 11))
    acquisition_daily_build(day=two_days_ago)
    sign_in_as(desktop, live_server, hq_operator)

    desktop.goto("/admin/customers/acquisitiondaily/dashboard/")
    canvas = desktop.wait_for_selector("#dashboard-chart canvas")

    assert canvas.bounding_box()["width"] > 300
    drawn = desktop.evaluate("echarts.getInstanceByDom(document.getElementById('dashboard-chart'))"
                             ".getOption().series.map(s => [s.name, s.data])")
    assert drawn == [["新增", [0, 0, 0, 0, 0, 2, 0, 0]], ["删除（客户删除＋员工删除）", [0, 0, 0, 0, 0, 1, 0, 0]]]
    assert page_problems.errors == []
