"""The member Excel/CSV import in the admin, beyond its happy path: the preview shows the totals, the
first 100 rows to be written and every bad row (up to 500) with its spreadsheet line; a file over the
web limit is sent to 会员导入任务; re-importing updates what changed and leaves the rest alone; the
confirm never half-writes. Also: the fast .xlsx reader reads what openpyxl reads."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, time

import openpyxl
import pytest
import tablib
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont

from customers.members import resources as member_resources
from customers.members.resources import MemberResource, MemberXLSX
from customers.members.services import mobile_hash
from customers.models import Member
from portal import spreadsheets
from portal.xlsx import XlsxUnsupported, xlsx_values
from stores.models import Store
from tests.customers.members.test_members_import import HEADER, csv_bytes, xlsx_bytes

IMPORT = "admin:customers_member_import"
CONFIRM = "admin:customers_member_process_import"


def rows(count: int, *, bad_lines=(), store: str = "A001") -> list[list]:
    """Data rows; a line in bad_lines (line 1 is the header) gets a mobile that is not one."""
    return [[f"P{i:05d}", "12345" if i + 2 in bad_lines else f"139{i:08d}", "", f"会员{i}", "金卡", i, "1.50", 1,
             "2026-09-30", store] for i in range(count)]


def preview(client, content: bytes, *, name: str = "会员.xlsx"):
    file_format = "0" if name.endswith(".csv") else "1"
    return client.post(reverse(IMPORT), {"import_file": SimpleUploadedFile(name, content), "format": file_format,
                                         "resource": "0"})


def confirm(client, previewed):
    return client.post(reverse(CONFIRM), previewed.context["confirm_form"].initial, follow=True)


def test_hq_previews_a_clean_file_sees_the_totals_and_its_first_100_rows(client, hq_operator, org):
    client.force_login(hq_operator)
    response = preview(client, xlsx_bytes(rows(150)))
    page = response.content.decode()
    assert "文件共 150 行：新增 150 行，更新 0 行，无变化 0 行（不写入）" in page
    assert "共 150 行，仅显示前 100 行" in page
    assert page.count('<tr class="new">') == 100
    assert "P00099" in page and "P00100" not in page
    assert response.context["confirm_form"] is not None
    assert not Member.objects.exists()


def test_a_small_file_is_shown_whole_without_a_note(client, hq_operator, org):
    client.force_login(hq_operator)
    page = preview(client, xlsx_bytes(rows(3))).content.decode()
    assert page.count('<tr class="new">') == 3 and "仅显示前" not in page


def test_every_bad_row_is_listed_with_its_line_and_reason_even_past_the_first_100(client, hq_operator, org):
    client.force_login(hq_operator)
    data = rows(300, bad_lines={5, 150, 301})
    data[198][9] = "NOPE"  # line 200
    data[248][3] = "名" * 65  # line 250
    response = preview(client, xlsx_bytes(data))
    page = response.content.decode()
    assert [row.line for row in response.context["invalid_shown"]] == [5, 150, 200, 250, 301]
    for line in (5, 150, 200, 250, 301):
        assert f"<td>第 {line} 行</td>" in page
    assert page.count("手机号“12345”无效") == 3
    assert "归属门店编码“NOPE”不存在或不在您的权限范围内" in page
    assert "姓名超过 64 个字符" in page
    assert "139****0198" in page and "13900000198" not in page  # a good mobile in a bad row is shown masked
    assert "5 行数据有误，未导入任何数据" in page
    assert not response.context.get("confirm_form")
    assert not Member.objects.exists()


def test_more_than_500_bad_rows_show_the_first_500_and_say_how_many(client, hq_operator, org):
    client.force_login(hq_operator)
    response = preview(client, csv_bytes(rows(620, bad_lines=set(range(2, 700)))), name="会员.csv")
    page = response.content.decode()
    assert "共 620 行有误，仅显示前 500 行" in page
    assert page.count("手机号“12345”无效") == 500
    assert not Member.objects.exists()


def test_a_repeated_member_number_is_reported_on_its_later_line(client, hq_operator, org):
    client.force_login(hq_operator)
    data = rows(3)
    data[2][0] = data[0][0]
    page = preview(client, xlsx_bytes(data)).content.decode()
    assert "<td>第 4 行</td>" in page and "会员号“P00000”与第 2 行重复" in page


def test_a_file_without_the_member_number_column_says_so_without_a_traceback(client, hq_operator, org):
    client.force_login(hq_operator)
    header = ["卡号", *HEADER_ROW[1:]]
    response = preview(client, xlsx_bytes(rows(3), header=header))
    page = response.content.decode()
    assert "文件表头不正确：缺少“会员号”列" in page and "Traceback" not in page
    assert not response.context.get("confirm_form") and not Member.objects.exists()


def test_a_gbk_csv_is_refused_with_a_reason_instead_of_an_exception_name(client, hq_operator, org):
    client.force_login(hq_operator)
    response = preview(client, csv_bytes(rows(2), encoding="gbk"), name="会员.csv")
    assert "CSV 文件不是 UTF-8 编码" in response.content.decode() and not Member.objects.exists()


def test_a_csv_over_the_web_limit_is_sent_to_the_member_import_job(client, hq_operator, org):
    client.force_login(hq_operator)
    response = preview(client, csv_bytes(rows(20_001)), name="crm.csv")
    page = response.content.decode()
    assert "超过网页导入上限 20,000 行：请改用“会员导入任务”上传" in page
    assert f'<a href="{reverse("admin:customers_memberimport_add")}">' in page
    assert response.context.get("result") is None and not Member.objects.exists()


def test_an_excel_over_the_limit_is_refused_but_trailing_blank_rows_do_not_count(client, hq_operator, org,
                                                                                 monkeypatch):
    monkeypatch.setattr(member_resources, "WEB_IMPORT_MAX_ROWS", 50)
    client.force_login(hq_operator)
    page = preview(client, xlsx_bytes(rows(51))).content.decode()
    assert "超过网页导入上限 50 行" in page

    book = openpyxl.Workbook()
    sheet = book.active
    for row in [HEADER_ROW, *rows(50)]:
        sheet.append(row)
    for line in range(52, 60):  # formatted, empty: what Excel leaves below a pasted table
        sheet.cell(row=line, column=2).number_format = "0.00"
    buffer = io.BytesIO()
    book.save(buffer)
    response = preview(client, buffer.getvalue())
    assert response.context["result"].totals["new"] == 50 and not response.context["result"].invalid_rows


HEADER_ROW = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日",
              "归属门店编码"]


def test_reimporting_updates_what_changed_and_leaves_unchanged_members_alone(client, hq_operator, org):
    client.force_login(hq_operator)
    first = [["M1", "13800001234", "", "王芳", "金卡", 10, "1.50", 1, "2026-09-30", "A001"],
             ["M2", "13800005678", "", "李雷", "银卡", 20, "2.00", 2, "", "B001"],
             ["M3", "13800001111", "", "韩梅梅", "", 30, "", "", "", ""]]
    response = confirm(client, preview(client, xlsx_bytes(first)))
    assert "导入完成：新增 3 个会员，更新 0 个，0 行无变化" in response.content.decode()
    stamps = dict(Member.objects.values_list("member_no", "updated_at"))

    again = preview(client, xlsx_bytes(first))
    assert again.context["result"].totals["skip"] == 3 and "文件共 3 行：新增 0 行，更新 0 行，无变化 3 行" in (
        again.content.decode())

    second = [["M1", "13800001234", "", "王芳", "金卡", 11, "1.50", 1, "2026-09-30", "A001"],  # points changed
              first[1],  # unchanged
              ["M3", "13899991111", "", "", "", "", "", "", "", ""],  # another mobile, the same mask
              ["M4", "13700000000", "", "新\\会员\t甲", "", "", "", "", "", "A001"]]
    response = preview(client, xlsx_bytes(second))
    result = response.context["result"]
    assert (result.totals["new"], result.totals["update"], result.totals["skip"]) == (1, 2, 1)
    page = response.content.decode()
    assert "<del>10</del> → <ins>11</ins>" in page and "李雷" not in page
    response = confirm(client, response)
    assert "导入完成：新增 1 个会员，更新 2 个，1 行无变化" in response.content.decode()
    members = {m.member_no: m for m in Member.objects.all()}
    assert members["M1"].points == 11 and members["M1"].updated_at > stamps["M1"]
    assert members["M2"].updated_at == stamps["M2"]
    assert members["M3"].mobile_hash == mobile_hash("13899991111") and members["M3"].name == "韩梅梅"  # blank kept
    assert (members["M4"].name, members["M4"].home_store) == ("新\\会员\t甲", org.store_a)  # COPY escapes


def test_a_row_that_turns_bad_before_the_confirm_rolls_the_whole_import_back(client, hq_operator, org):
    client.force_login(hq_operator)
    data = rows(3)
    data[2][9] = "B001"
    previewed = preview(client, xlsx_bytes(data))
    Store.objects.filter(code="B001").update(code="B001-CLOSED")
    response = confirm(client, previewed)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse(IMPORT)
    assert "导入失败，未写入任何数据：第 4 行：归属门店编码“B001”不存在或不在您的权限范围内" in page
    assert not Member.objects.exists()


def test_the_resource_keeps_a_regional_importer_to_their_stores(region_manager_east, org):
    """Only HQ imports members in the admin today; the resource still scopes any other importer."""
    Member.objects.create(member_no="B-1", home_store=org.store_b)
    Member.objects.create(member_no="A-1", home_store=org.store_a)
    dataset = tablib.Dataset(["A-1", "", "", "王芳", "", 5, "", "", "", ""],
                             ["B-1", "", "", "李雷", "", 5, "", "", "", ""],
                             ["N-1", "", "", "", "", "", "", "", "", "B001"], headers=HEADER_ROW)
    result = MemberResource(user=region_manager_east).import_data(dataset, dry_run=True)
    errors = {row.number: str(row.error_dict) for row in result.invalid_rows}
    assert set(errors) == {2, 3}
    assert "该记录不在您的权限范围内，不能修改" in errors[2]
    assert "归属门店编码“B001”不存在或不在您的权限范围内" in errors[3]


# -- the .xlsx reader ---------------------------------------------------------------------------------

def _openpyxl_values(data: bytes) -> list[tuple]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    return list(book.active.iter_rows(values_only=True))


def test_the_fast_reader_reads_an_openpyxl_workbook_as_openpyxl_does():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["会员号", "数", "日期", "布尔", "公式", "富文本"])
    sheet.append(["  M1 ", 13800001234, datetime(2026, 1, 5, 8, 30), True, "=1+1",
                  CellRichText(["金", TextBlock(InlineFont(b=True), "卡")])])
    sheet.append([None, 0.1 + 0.2, date(2026, 1, 5), False, None, ""])
    sheet.append([-7, 88.5, time(12, 30), None, None, "全角１２３"])
    sheet["C5"] = 45000
    sheet["C5"].number_format = "yyyy-mm-dd"
    sheet["D5"] = 1.25
    sheet["D5"].number_format = "[h]:mm:ss"
    sheet["F7"] = "sparse"  # rows 6 and 7 mostly missing
    buffer = io.BytesIO()
    book.save(buffer)
    data = buffer.getvalue()
    assert xlsx_values(data) == _openpyxl_values(data)


def _handmade(sheets: list[str], *, shared: list[str], active: int = 0, date1904: bool = False) -> bytes:
    """An .xlsx as Excel writes it (shared strings, a styles part), not as openpyxl does."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    kinds = {"rels": "application/vnd.openxmlformats-package.relationships+xml", "xml": "application/xml"}
    overrides = [("/xl/workbook.xml", "sheet.main+xml"), ("/xl/styles.xml", "styles+xml"),
                 ("/xl/sharedStrings.xml", "sharedStrings+xml")]
    overrides += [(f"/xl/worksheets/sheet{i}.xml", "worksheet+xml") for i in range(1, len(sheets) + 1)]
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        + "".join(f'<Default Extension="{e}" ContentType="{t}"/>' for e, t in kinds.items())
        + "".join(f'<Override PartName="{p}" ContentType="application/vnd.openxmlformats-officedocument.'
                  f'spreadsheetml.{t}"/>' for p, t in overrides) + "</Types>",
        "_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook xmlns="{main}" xmlns:r="{rel}"><workbookPr date1904="{int(date1904)}"/>'
        f'<bookViews><workbookView activeTab="{active}"/></bookViews><sheets>'
        + "".join(f'<sheet name="S{i}" sheetId="{i}" r:id="rId{i}"/>' for i in range(1, len(sheets) + 1))
        + "</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        'relationships">'
        + "".join(f'<Relationship Id="rId{i}" Type="{rel}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                  for i in range(1, len(sheets) + 1))
        + f'<Relationship Id="rS" Type="{rel}/styles" Target="/xl/styles.xml"/>'
        f'<Relationship Id="rT" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
        "xl/styles.xml": f'<styleSheet xmlns="{main}"><numFmts count="1"><numFmt numFmtId="164" '
        'formatCode="yyyy/m/d;@"/></numFmts><fonts count="1"><font><sz val="11"/><name val="等线"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills><borders count="1"><border/>'
        '</borders><cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="5"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="46"/>'
        '<xf numFmtId="2"/></cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
        '</cellStyles></styleSheet>',
        "xl/sharedStrings.xml": f'<sst xmlns="{main}">' + "".join(shared) + "</sst>",
    }
    for i, rows_xml in enumerate(sheets, start=1):
        parts[f"xl/worksheets/sheet{i}.xml"] = f'<worksheet xmlns="{main}">{rows_xml}</worksheet>'
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in parts.items():
            archive.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + text)
    return buffer.getvalue()


EXCEL_SHARED = ["<si><t>会员号</t></si>", "<si><t xml:space=\"preserve\"> 王芳 </t></si>",
                "<si><r><t>金</t></r><r><rPr><b/></rPr><t>卡</t></r></si>",
                "<si><t>東京</t><rPh sb=\"0\" eb=\"2\"><t>トウキョウ</t></rPh></si>", "<si><t>a_x005F_b</t></si>"]
EXCEL_ROWS = (
    '<sheetData><row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    '<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>13800001234</v></c><c r="C2" t="str"><f>A1</f>'
    '<v>会员号</v></c><c r="D2" t="b"><v>1</v></c><c r="E2" s="1"><v>45000</v></c><c r="F2" s="2"><v>45000.5</v>'
    '</c><c r="G2" s="3"><v>1.5</v></c><c r="H2" t="e"><v>#N/A</v></c><c r="I2" t="d"><v>2026-01-05T00:00:00</v>'
    '</c><c r="J2" s="4"><v>12.50</v></c></row>'
    '<row r="4"><c t="inlineStr"><is><t>无坐标</t></is></c><c><v>7</v></c><c t="s"><v>3</v></c></row>'
    '<row r="5"><c r="E5"><v>1E3</v></c><c r="F5" t="s"><v>4</v></c><c r="G5" s="1"/></row></sheetData>'
)


@pytest.mark.parametrize("dimension", ['<dimension ref="A1:J5"/>', ""])
@pytest.mark.parametrize("date1904", [False, True])
def test_the_fast_reader_reads_an_excel_workbook_as_openpyxl_does(dimension, date1904):
    decoy = '<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>'
    data = _handmade([decoy, dimension + EXCEL_ROWS], shared=EXCEL_SHARED, active=1, date1904=date1904)
    values = xlsx_values(data)
    if dimension:
        assert values == _openpyxl_values(data)
    else:  # without a dimension openpyxl gives ragged rows; the reader pads them to the widest
        assert values == [tuple(row) + (None,) * (10 - len(row)) for row in _openpyxl_values(data)]
    assert values[1][:4] == ("金卡", 13800001234, "会员号", True) and isinstance(values[1][4], datetime)
    assert values[3][:3] == ("无坐标", 7, "東京") and values[2] == (None,) * 10


def test_a_workbook_the_fast_reader_does_not_handle_is_read_by_openpyxl(monkeypatch):
    data = xlsx_bytes([["M1", 13800001234, "", "王芳", "", 1, 2.5, 1, datetime(2026, 1, 5), "A001"]])
    fast = MemberXLSX().create_dataset(data)

    def unsupported(*args, **kwargs):
        raise XlsxUnsupported("test")

    monkeypatch.setattr(spreadsheets, "xlsx_values", unsupported)
    slow = MemberXLSX().create_dataset(data)
    assert slow.headers == fast.headers and list(slow) == list(fast)
    assert list(fast)[0][9] == "A001" and list(fast)[0][8] == datetime(2026, 1, 5)


# -- the acceptance case: 10,000 rows through the preview, each bad line shown, then the fixed file imported --
def _xlsx_streamed(rows: list[list]) -> bytes:
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
    response = _preview(client, _xlsx_streamed(_rows(with_bad=True)))
    assert response.status_code == 200
    result = response.context["result"]
    assert {row.number for row in result.invalid_rows} == {line - 1 for line in BAD_LINES}  # data row numbers
    page = response.content.decode()
    assert page.count("手机号“12345”无效") == len(BAD_LINES)
    assert all(f"<td>第 {line} 行</td>" in page for line in BAD_LINES)  # the lines as the spreadsheet numbers them
    assert not response.context.get("confirm_form")  # nothing can be confirmed while rows are bad
    assert not Member.objects.exists()

    response = _preview(client, _xlsx_streamed(_rows(with_bad=False)))
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert result.totals["new"] == ROWS
    assert "共 10,000 行，仅显示前 100 行" in response.content.decode()  # the page stays small
    assert not Member.objects.exists()  # a preview writes nothing
    response = client.post(reverse("admin:customers_member_process_import"), response.context["confirm_form"].initial)
    assert response.status_code == 302
    assert Member.objects.count() == ROWS
    assert Member.objects.get(member_no="XL000123").mobile_masked == "139****0123"
