"""The issue's acceptance case: a 10,000-row member Excel goes through the admin's import with a preview
and clear row errors, then imports whole once the bad rows are fixed."""

from __future__ import annotations

import io

import openpyxl
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.models import Member
from tests.customers.test_members_import import HEADER


def xlsx_bytes(rows: list[list]) -> bytes:
    """A real .xlsx, written by openpyxl's streaming writer (the quicker one for 10,000 rows)."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in [HEADER, *rows]:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


ROWS = 10_000
BAD_LINES = {2 + 17, 2 + 4_321, 2 + 9_998}  # spreadsheet lines (line 1 is the header)


def _rows(*, with_bad: bool) -> list[list]:
    rows = []
    for i in range(ROWS):
        line = i + 2
        mobile = "12345" if with_bad and line in BAD_LINES else f"139{i:08d}"
        rows.append([f"XL{i:06d}", mobile, "", f"会员{i}", "金卡" if i % 3 else "银卡", i % 700, f"{i % 900}.80",
                     i % 20, "2026-09-30" if i % 20 else "", "A001" if i % 2 else "B001"])
    return rows


def _preview(client, content: bytes):
    return client.post(reverse("admin:customers_member_import"),
                       {"import_file": SimpleUploadedFile("会员.xlsx", content), "format": "1", "resource": "0"})


def test_hq_previews_10000_rows_sees_each_bad_line_then_imports_the_fixed_file(client, hq_operator, org):
    client.force_login(hq_operator)
    response = _preview(client, xlsx_bytes(_rows(with_bad=True)))
    assert response.status_code == 200
    result = response.context["result"]
    assert {row.number for row in result.invalid_rows} == {line - 1 for line in BAD_LINES}  # data row numbers
    page = response.content.decode()
    assert page.count("手机号“12345”无效") == len(BAD_LINES)
    assert all(f"<td>第 {line} 行</td>" in page for line in BAD_LINES)  # the lines as the spreadsheet numbers them
    assert not response.context.get("confirm_form")  # nothing can be confirmed while rows are bad
    assert not Member.objects.exists()

    response = _preview(client, xlsx_bytes(_rows(with_bad=False)))
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == ROWS
    assert "共 10,000 行，仅显示前 100 行" in response.content.decode()  # the page stays small
    assert not Member.objects.exists()  # a preview writes nothing
    response = client.post(reverse("admin:customers_member_process_import"), response.context["confirm_form"].initial)
    assert response.status_code == 302
    assert Member.objects.count() == ROWS
    assert Member.objects.get(member_no="XL000123").mobile_masked == "139****0123"
