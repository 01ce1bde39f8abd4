"""In a real phone browser inside WeCom (Playwright, 390×844, WeCom's user agent): a guide signs in, opens a task,
confirms it, ticks the checklist, takes the required photo and finishes; a store manager excuses a staff member;
a guide of store A typing store B's task URL gets 404."""

from __future__ import annotations

import io
import os

import pytest

from campaigns.tasks.models import Assignment, AssignmentEvent, Evidence
from campaigns.tasks.services import ChecklistSpec
from tests.browser.conftest import sign_in_as
from tests.campaigns.tasks.helpers import task_dispatched
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("XIAOER_SCREENSHOTS", "")


@pytest.fixture
def display_task(hq_operator, org):
    return task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff",
                           title="双十二堆头陈列", instructions="{门店名称}：堆头放在入口左侧",
                           checklist=[ChecklistSpec(text="堆头摆放"), ChecklistSpec(text="门头照片", photo="required")])


def _photo(tmp_path) -> str:
    from PIL import Image

    path = tmp_path / "storefront.jpg"
    out = io.BytesIO()
    Image.new("RGB", (120, 90), "orange").save(out, format="JPEG")
    path.write_bytes(out.getvalue())
    return str(path)


def test_a_guide_signs_in_confirms_ticks_photographs_and_finishes(phone, live_server, staff_of_a, display_task, org,
                                                                  page_problems, tmp_path):
    assignment = Assignment.objects.get(task=display_task, staff=org.guide_a)
    items = {i.text: i for i in display_task.checklist.all()}
    phone.goto("/m/login/")
    phone.fill("input[name=username]", staff_of_a.username)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("#password-login button[type=submit]")
    phone.wait_for_url("**/m/")
    assert "双十二堆头陈列" in phone.inner_text("#tasks")

    phone.click("#tasks a")
    phone.wait_for_url(f"**/m/tasks/{assignment.pk}/")
    assert "上海徐汇店：堆头放在入口左侧" in phone.inner_text("#task-text")
    phone.tap("#confirm")
    phone.wait_for_selector("#task-state:has-text('已确认')")
    assert "已确认收到" in phone.inner_text("#messages")

    phone.tap(f"#check-{items['堆头摆放'].pk}")
    phone.wait_for_selector(f"#check-{items['堆头摆放'].pk}[aria-pressed=true]")
    phone.tap(f"#check-{items['门头照片'].pk}")
    phone.wait_for_selector(f"#check-{items['门头照片'].pk}[aria-pressed=true]")
    phone.tap("#done")  # the photo is still missing: refused, with the reason
    phone.wait_for_selector("#messages [role=alert]")
    assert "这些检查项需要拍照：门头照片" in phone.inner_text("#messages")

    phone.set_input_files(f"#photo-{items['门头照片'].pk}", _photo(tmp_path))  # the camera's file; sent on change
    phone.wait_for_selector("#checklist img.xe-photo")
    assert "照片已上传" in phone.inner_text("#messages")
    phone.locator("#checklist img.xe-photo").scroll_into_view_if_needed()  # shown lazily, from the photo's URL
    phone.wait_for_function("document.querySelector('#checklist img.xe-photo').naturalWidth === 120")
    phone.tap("#done")
    phone.wait_for_selector("#task-finished")
    assert "任务已完成" in phone.inner_text("#messages")

    assignment.refresh_from_db()
    assert assignment.status == "done"
    assert Evidence.objects.get(assignment=assignment).item_id == items["门头照片"].pk
    assert list(AssignmentEvent.objects.filter(assignment=assignment).exclude(source="dispatch")
                .values_list("to_status", flat=True)) == ["confirmed", "done"]
    assert page_problems.errors == []
    if SHOTS:
        phone.screenshot(path=f"{SHOTS}/task.png", full_page=True)


def test_a_store_manager_excuses_a_staff_member_on_leave(phone, live_server, store_manager_of_a, display_task, org,
                                                         page_problems):
    own = Assignment.objects.get(task=display_task, staff=org.manager_a)
    guide = Assignment.objects.get(task=display_task, staff=org.guide_a)
    sign_in_as(phone, live_server, store_manager_of_a)
    phone.goto("/m/")
    assert "已完成 0/2" in phone.inner_text("#store-tasks")
    phone.click("#store-tasks a")
    phone.wait_for_url(f"**/m/tasks/{own.pk}/")
    row = phone.locator(f"#team-{guide.pk}")
    assert "李导购" in row.inner_text() and "王导购" not in phone.inner_text("#team")
    row.locator("select[name=reason]").select_option("leave")
    row.locator("button:has-text('免除')").tap()
    phone.wait_for_selector(f"#team-{guide.pk} .xe-state_excused")
    assert "已免除李导购的这项任务" in phone.inner_text("#messages")
    guide.refresh_from_db()
    assert (guide.status, guide.reason) == ("excused", "请假")
    assert page_problems.errors == []
    if SHOTS:
        phone.screenshot(path=f"{SHOTS}/task-manager.png", full_page=True)


def test_a_guide_of_store_a_opening_store_bs_task_gets_404(phone, live_server, staff_of_a, display_task, org):
    theirs = Assignment.objects.get(task=display_task, staff=org.guide_b)
    sign_in_as(phone, live_server, staff_of_a)
    response = phone.goto(f"/m/tasks/{theirs.pk}/")
    assert response.status == 404
    assert "王导购" not in phone.content() and "广州天河店" not in phone.content()
