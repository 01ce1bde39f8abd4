"""In a real browser on a phone inside WeCom: a guide finds a script in the library and copies it in one tap."""

from __future__ import annotations

import os

import pytest

from materials.models import MaterialUse
from materials.usage.services import QUEUE_KEY, _redis, material_uses_flush
from stores.models import Store
from tests.browser.conftest import sign_in_as
from tests.materials.helpers import script_published

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("XIAOER_SCREENSHOTS", "")  # a folder to keep what the phone showed, when debugging


def test_a_guide_searches_the_library_opens_a_script_and_copies_it_filled(phone, live_server, org, staff_of_a,
                                                                          hq_operator, page_problems):
    _redis().delete(QUEUE_KEY)
    Store.objects.filter(pk=org.store_a.pk).update(opening_hours="10:00-22:00")
    script_published(by=hq_operator, title="周三会员日", everyone=True,
                     text="{客户称呼}好，{门店名称}本周三会员日积分翻倍，营业时间{营业时间}。我是{导购姓名}")
    script_published(by=hq_operator, title="开业话术", everyone=True)
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in_as(phone, live_server, staff_of_a)

    phone.goto("/m/")
    phone.click("#library a")
    phone.fill("input[name=q]", "积分翻倍")
    phone.press("input[name=q]", "Enter")
    phone.wait_for_url("**/m/materials/?q=*")
    assert phone.locator("#materials a").count() == 1 and "周三会员日" in phone.inner_text("#materials")
    phone.click("#materials a")
    script = phone.inner_text("#script-text")
    assert script == "您好，上海徐汇店本周三会员日积分翻倍，营业时间10:00-22:00。我是李导购"

    with phone.expect_response(lambda r: r.url.endswith("/used/") and r.request.method == "POST") as reported:
        phone.tap("#copy-script")
    assert reported.value.status == 204
    assert "已复制" in phone.inner_text("#copied")
    assert phone.evaluate("navigator.clipboard.readText()") == script
    button = phone.locator("#copy-script").bounding_box()
    assert button["height"] >= 44 and button["x"] + button["width"] <= 390  # a thumb's tap target, on screen

    assert material_uses_flush() == 2  # the view of the page and the copy
    assert sorted(MaterialUse.objects.values_list("action", flat=True)) == ["copy", "view"]
    assert page_problems.errors == []
    if SHOTS:
        phone.screenshot(path=f"{SHOTS}/material.png", full_page=True)
        phone.goto("/m/materials/")
        phone.screenshot(path=f"{SHOTS}/materials.png", full_page=True)
