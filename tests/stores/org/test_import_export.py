"""Stores and staff arrive by Excel: a preview first, a clear error per bad row, nothing half-written."""

from __future__ import annotations

import io

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from stores.models import Staff, Store

STORE_HEADER = ["门店编码", "门店名称", "城市", "地址", "纬度", "经度", "类型", "区域编码", "加盟商编码",
                "企业微信部门ID", "状态", "开业日期"]


def xlsx(header: list[str], rows: list[list]) -> SimpleUploadedFile:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return SimpleUploadedFile("stores.xlsx", buffer.getvalue(),
                              content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def import_preview(client, model: str, upload: SimpleUploadedFile):
    url = reverse(f"admin:stores_{model}_import")
    return client.post(url, {"import_file": upload, "format": "1", "resource": "0"})


def test_hq_operator_imports_stores_and_a_bad_row_blocks_the_whole_file(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = xlsx(STORE_HEADER, [
        ["N001", "上海静安店", "上海", "南京西路1号", 31.2, 121.4, "直营", "EAST-SH", "", 9001, "营业中", "2026-01-05"],
        ["N002", "上海长宁店", "上海", "", "", "", "加盟", "EAST-SH", "", "", "营业中", ""],  # franchise, no franchisee
        ["N003", "杭州滨江店", "杭州", "", "", "", "直营", "NOPE", "", "", "营业中", ""],  # unknown region
    ])
    response = import_preview(client, "store", upload)
    assert response.status_code == 200
    page = response.content.decode()
    assert "加盟店必须填写加盟商" in page
    assert "区域编码“NOPE”不存在或不在您的权限范围内" in page
    result = response.context["result"]
    assert result.has_validation_errors()
    assert sorted(row.number for row in result.invalid_rows) == [2, 3]
    assert not Store.objects.filter(code__startswith="N").exists()


def test_a_clean_file_previews_then_imports_all_rows(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = xlsx(STORE_HEADER, [
        ["N001", "上海静安店", "上海", "", 31.2, 121.4, "直营", "EAST-SH", "", "", "营业中", "2026-01-05"],
        ["N002", "上海长宁店", "上海", "", "", "", "加盟", "EAST-SH", "F-ONE", "", "营业中", ""],
    ])
    response = import_preview(client, "store", upload)
    assert not response.context["result"].has_errors()
    assert not response.context["result"].has_validation_errors()
    assert not Store.objects.filter(code__startswith="N").exists()  # a preview writes nothing
    confirm = response.context["confirm_form"]
    response = client.post(reverse("admin:stores_store_process_import"), confirm.initial)
    assert response.status_code == 302
    assert Store.objects.get(code="N002").franchisee == org.franchisee_one
    assert Store.objects.get(code="N001").kind == Store.Kind.DIRECT


STAFF_HEADER = ["企业微信账号", "姓名", "手机号", "门店编码", "岗位", "入职日期"]


def test_store_manager_cannot_import_staff_into_another_store(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    response = client.get(reverse("admin:stores_staff_import"))
    assert response.status_code == 403  # store managers may change staff, not add them


def test_region_manager_imports_staff_only_into_their_region(client, region_manager_east, org):
    region_manager_east.user_permissions.add(Permission.objects.get(codename="add_staff"))
    client.force_login(region_manager_east)
    upload = xlsx(STAFF_HEADER, [
        ["east-new", "赵新人", "13900000000", "A002", "导购", "2026-11-01"],
        ["south-new", "钱新人", "13900000001", "B001", "导购", "2026-11-01"],
        ["b-guide", "改名", "", "A001", "导购", ""],  # an existing member of store B
    ])
    response = import_preview(client, "staff", upload)
    page = response.content.decode()
    assert "门店编码“B001”不存在或不在您的权限范围内" in page
    assert "该记录不在您的权限范围内，不能修改" in page
    assert not Staff.objects.filter(userid__in=["east-new", "south-new"]).exists()
    assert Staff.objects.get(userid="b-guide").name == "王导购"


@pytest.mark.parametrize("content", [b"not an excel file", b"\x00\x01\x02garbage"])
def test_a_malformed_file_is_rejected_with_a_message(client, hq_operator, org, content):
    client.force_login(hq_operator)
    upload = SimpleUploadedFile("broken.xlsx", content)
    response = import_preview(client, "store", upload)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert Store.objects.count() == 4
