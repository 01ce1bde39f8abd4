"""Hostile uploads are refused with a reason, write nothing and cost bounded memory (issue #10, finding 8).

The files: a 1 KB .xlsx whose only data row is row 2,000,000,000 (the reader padded every row before it);
a value in column XFD (16,384 slots a row); a zip bomb (1 GB of zeros in the styles part, ~1 MB zipped);
a part whose header lies about its size; a file named .xlsx that is not a zip; a truncated .xlsx; an
oversized upload; CSVs with a NUL character or a line without end. Each goes through every door: the
reader itself (with tracemalloc watching), the admin's member import preview, the stores import, the
member import job's upload form and the job itself.
"""

from __future__ import annotations

import io
import re
import struct
import tracemalloc
import zlib
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import models
from django.test import RequestFactory
from django.urls import reverse
from import_export.admin import ImportMixin

from customers.models import Member, MemberImport
from portal.spreadsheets import IMPORT_FORMATS, SafeImportForm
from portal.uploads import FileRefused
from portal.xlsx import JOB_LIMITS, WEB_LIMITS, XlsxLimits, _Budget, _CountedPart, xlsx_open, xlsx_values
from stores.models import Store
from tests.customers.members.test_members_import import HEADER, csv_bytes, run, xlsx_bytes

MB = 1024 * 1024
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


# -- hostile files, built by hand ------------------------------------------------------------------------

class Raw:
    """A part given as raw deflate bytes with the size its header declares (true or not)."""

    def __init__(self, deflated: bytes, declared: int):
        self.deflated, self.declared = deflated, declared


def zeros_deflated(size_mb: int) -> bytes:
    """``size_mb`` MB of zeros as one deflate stream of about 1 KB per MB, made in milliseconds."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(b"\0" * MB) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * size_mb + b"\x03\x00"  # identical self-contained blocks, then an empty final block


def zip_bytes(parts: dict[str, bytes | Raw]) -> bytes:
    """A zip (deflate) written field by field, so that a header can say what we like."""
    out, central = io.BytesIO(), []
    for name, content in parts.items():
        if isinstance(content, Raw):
            deflated, size, crc = content.deflated, content.declared, 0
        else:
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            deflated, size, crc = compressor.compress(content) + compressor.flush(), len(content), zlib.crc32(content)
        encoded, offset = name.encode(), out.tell()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(deflated), size,
                              len(encoded), 0) + encoded + deflated)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(deflated), size,
                                   len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    start = out.tell()
    out.write(b"".join(central))
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(central), len(central), out.tell() - start, start, 0))
    return out.getvalue()


def cell(ref: str, text) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


HEADER_ROW = '<row r="1">' + "".join(cell(f"{chr(65 + i)}1", label) for i, label in enumerate(HEADER)) + "</row>"


def book(rows_xml: str, **extra: bytes | Raw) -> bytes:
    """A minimal .xlsx: one sheet holding ``rows_xml``; ``extra`` parts (styles=…) added and declared."""
    parts: dict[str, bytes | Raw] = {
        "[Content_Types].xml": (
            b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.'
            b'spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="'
            b'application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>'),
        "_rels/.rels": (f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                        f'<Relationship Id="rId1" Type="{REL}/officeDocument" Target="xl/workbook.xml"/>'
                        "</Relationships>").encode(),
        "xl/workbook.xml": (f'<workbook xmlns="{MAIN}" xmlns:r="{REL}"><sheets><sheet name="会员" sheetId="1" '
                            'r:id="rId1"/></sheets></workbook>').encode(),
        "xl/_rels/workbook.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            + "".join(f'<Relationship Id="rX{name}" Type="{REL}/{name}" Target="{name}.xml"/>' for name in extra)
            + "</Relationships>").encode(),
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{MAIN}"><sheetData>{rows_xml}</sheetData></worksheet>'.encode(),
    }
    parts.update({f"xl/{name}.xml": content for name, content in extra.items()})
    return zip_bytes(parts)


TWO_BILLION = book(HEADER_ROW + '<row r="2000000000">' + cell("A2000000000", "M1") + "</row>")
COLUMN_XFD = book(HEADER_ROW + '<row r="2">' + cell("A2", "M1") + '<c r="XFD2"><v>1</v></c></row>')
ZIP_BOMB = book(HEADER_ROW, styles=Raw(zeros_deflated(1024), declared=1024 * MB))  # 1 GB of zeros
LYING_HEADER = book(HEADER_ROW, styles=Raw(zeros_deflated(1024), declared=1000))  # says 1,000 bytes
NOT_A_ZIP = b"\xef\xbb\xbf<html><body>\xe7\x99\xbb\xe5\xbd\x95\xe5\xb7\xb2\xe8\xbf\x87\xe6\x9c\x9f</body></html>"
TRUNCATED = xlsx_bytes([["M1", "13800000001", "", "王芳", "", "", "", "", "", ""]])[:-700]

HOSTILE_XLSX = {
    "row 2,000,000,000": (TWO_BILLION, "第 2,000,000,000 行超出上限"),
    "a value in column XFD": (COLUMN_XFD, "XFD 列有内容，超出上限"),
    "a zip bomb": (ZIP_BOMB, "解压后过大"),
    "a header that lies about its size": (LYING_HEADER, "已损坏或不完整"),
    "not a zip": (NOT_A_ZIP, "已损坏或不完整"),
    "a truncated zip": (TRUNCATED, "已损坏或不完整"),
}


@contextmanager
def memory_peak_below(megabytes: int):
    tracemalloc.start()
    try:
        yield
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < megabytes * MB, f"peak {peak / MB:.1f} MB"


def test_the_hostile_files_are_small():
    assert len(TWO_BILLION) < 2048 and len(COLUMN_XFD) < 2048
    assert len(ZIP_BOMB) < 1.2 * MB and len(LYING_HEADER) < 1.2 * MB


# -- the reader ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("limits", [WEB_LIMITS, JOB_LIMITS], ids=["web", "job"])
@pytest.mark.parametrize("name", list(HOSTILE_XLSX))
def test_the_reader_refuses_each_hostile_file_in_bounded_memory(name, limits):
    content, reason = HOSTILE_XLSX[name]
    with memory_peak_below(16), pytest.raises(FileRefused, match=reason):
        xlsx_values(content, limits=limits)


@pytest.mark.parametrize("name", list(HOSTILE_XLSX))
def test_the_streaming_reader_refuses_each_hostile_file_before_or_at_the_bad_row(name):
    content, reason = HOSTILE_XLSX[name]
    with memory_peak_below(16), pytest.raises(FileRefused, match=reason):
        with xlsx_open(io.BytesIO(content), limits=JOB_LIMITS, sheet="first") as sheet:
            for _line, _values in sheet.rows():
                pass


def test_rows_are_not_padded_and_keep_their_spreadsheet_line_numbers():
    content = book(HEADER_ROW + '<row r="900000">' + cell("A900000", "M1") + "</row>")
    with memory_peak_below(8), xlsx_open(content, limits=JOB_LIMITS) as sheet:
        rows = list(sheet.rows())
    assert [line for line, _values in rows] == [1, 900_000] and rows[1][1] == ("M1",)


def test_an_empty_formatted_cell_in_column_xfd_is_ignored_not_a_slot():
    content = book(HEADER_ROW + '<row r="2">' + cell("A2", "M1") + '<c r="XFD2" s="1"/></row>')
    with memory_peak_below(8):
        values = xlsx_values(content)
    assert len(values[1]) == len(HEADER) and values[1][0] == "M1"


def test_a_row_with_more_cells_than_excel_allows_is_refused():
    content = book('<row r="1">' + "<c/>" * 16_385 + "</row>")
    with pytest.raises(FileRefused, match="已损坏"):
        xlsx_values(content)


def test_parts_within_their_own_caps_are_refused_past_the_total():
    limits = XlsxLimits(part_bytes=2 * MB, shared_strings_bytes=MB, shared_strings=10, sheet_bytes=MB,
                        total_bytes=3 * MB)
    content = book(HEADER_ROW, styles=Raw(zeros_deflated(2), declared=2 * MB),
                   theme=Raw(zeros_deflated(2), declared=2 * MB))
    with pytest.raises(FileRefused, match="全部内容"):
        xlsx_values(content, limits=limits)


def test_decompressed_bytes_are_counted_whatever_the_header_says():
    limits = XlsxLimits(part_bytes=10, shared_strings_bytes=10, shared_strings=10, sheet_bytes=10, total_bytes=100)
    part = _CountedPart(io.BytesIO(b"x" * 1000), name="xl/styles.xml", cap=10, budget=_Budget(limits))
    with pytest.raises(FileRefused, match="解压后过大"):
        part.read(1 << 16)


def test_too_many_shared_strings_are_refused():
    limits = XlsxLimits(part_bytes=MB, shared_strings_bytes=MB, shared_strings=3, sheet_bytes=MB, total_bytes=8 * MB)
    strings = f'<sst xmlns="{MAIN}">' + "<si><t>x</t></si>" * 4 + "</sst>"
    content = book(HEADER_ROW, sharedStrings=strings.encode())
    with pytest.raises(FileRefused, match="不同文本超过 3 个"):
        xlsx_values(content, limits=limits)


# -- the admin's member import preview (django-import-export) ---------------------------------------------

def member_preview(client, content: bytes, name: str):
    file_format = "0" if name.endswith(".csv") else "1"
    return client.post(reverse("admin:customers_member_import"), {
        "import_file": SimpleUploadedFile(name, content), "format": file_format, "resource": "0"})


def form_errors(response) -> str:
    form = response.context["form"]
    return " ".join(str(error) for errors in form.errors.values() for error in errors).replace("\xa0", " ")


@pytest.mark.parametrize("name", list(HOSTILE_XLSX))
def test_the_member_import_preview_refuses_each_hostile_file_with_its_reason(name, client, hq_operator, org):
    content, reason = HOSTILE_XLSX[name]
    client.force_login(hq_operator)

    response = member_preview(client, content, "会员.xlsx")

    assert response.status_code == 200 and reason in form_errors(response)
    assert reason in response.content.decode().replace("\xa0", " ")  # shown on the page
    assert response.context.get("confirm_form") is None and not Member.objects.exists()


@pytest.mark.parametrize("name", ["row 2,000,000,000", "a zip bomb", "not a zip"])
def test_the_stores_import_refuses_hostile_files_with_their_reason(name, client, hq_operator, org):
    content, reason = HOSTILE_XLSX[name]
    client.force_login(hq_operator)

    response = client.post(reverse("admin:stores_store_import"), {
        "import_file": SimpleUploadedFile("门店.xlsx", content), "format": "1", "resource": "0"})

    assert response.status_code == 200 and reason in form_errors(response)
    assert Store.objects.count() == 4


def test_a_csv_with_a_nul_character_is_refused_by_the_web_imports(client, hq_operator, org):
    client.force_login(hq_operator)
    content = csv_bytes([["M1", "13800000001", "", "王\0芳", "", "", "", "", "", ""]])

    members = member_preview(client, content, "会员.csv")
    stores = client.post(reverse("admin:stores_store_import"), {
        "import_file": SimpleUploadedFile("门店.csv", "门店编码,门店名称\nN001,静\0安店\n".encode()), "format": "0",
        "resource": "0"})

    assert "第 2 行含有空字符（NUL）" in form_errors(members) and not Member.objects.exists()
    assert "第 2 行含有空字符（NUL）" in form_errors(stores) and Store.objects.count() == 4


def test_a_csv_line_without_end_is_refused_by_the_web_import(client, hq_operator, org):
    client.force_login(hq_operator)
    content = ",".join(HEADER).encode() + b"\n" + b"M1," + b"x," * 300_000 + b"\n"

    response = member_preview(client, content, "会员.csv")

    assert "第 2 行超过 65,536 个字符" in form_errors(response)


def test_a_csv_row_with_too_many_columns_is_refused_by_the_web_import(client, hq_operator, org):
    client.force_login(hq_operator)
    content = ",".join(HEADER).encode() + b"\n" + b"M1" + b",x" * 200 + b"\n"

    response = member_preview(client, content, "会员.csv")

    assert "第 2 行有 201 列，超过上限 128 列" in form_errors(response)


def test_an_upload_over_the_web_import_limit_is_refused_before_it_is_read(client, hq_operator, org, settings):
    settings.XIAOER_WEB_IMPORT_MAX_BYTES = 4096
    client.force_login(hq_operator)
    content = csv_bytes([[f"M{i}", "", "", "王芳", "", "", "", "", "", ""] for i in range(400)])
    assert len(content) > 4096

    response = member_preview(client, content, "会员.csv")

    assert "文件过大：上限为 4.0 KB" in form_errors(response) and not Member.objects.exists()


# -- the member import job: its upload form, and the job ----------------------------------------------------

def job_upload(client, content: bytes, name: str):
    return client.post(reverse("admin:customers_memberimport_add"), {"file": SimpleUploadedFile(name, content)})


@pytest.mark.parametrize("name", ["a zip bomb", "a header that lies about its size", "not a zip", "a truncated zip"])
def test_the_job_upload_form_refuses_a_file_it_cannot_open(name, client, hq_admin, org):
    content, reason = HOSTILE_XLSX[name]
    reason = "内容却不是 Excel 文件" if name == "not a zip" else reason
    client.force_login(hq_admin)

    response = job_upload(client, content, "会员.xlsx")

    assert response.status_code == 200 and reason in str(response.context["adminform"].form.errors)
    assert not MemberImport.objects.exists()


def test_an_upload_over_the_limit_is_refused_by_the_job_upload_form(client, hq_admin, org, settings):
    settings.XIAOER_UPLOAD_MAX_BYTES = 4096
    client.force_login(hq_admin)
    content = csv_bytes([[f"M{i}", "", "", "王芳", "", "", "", "", "", ""] for i in range(400)])

    response = job_upload(client, content, "会员.csv")

    assert "文件过大：上限为 4.0 KB" in str(response.context["adminform"].form.errors).replace("\xa0", " ")
    assert not MemberImport.objects.exists()


@pytest.mark.parametrize("name", ["row 2,000,000,000", "a value in column XFD"])
def test_the_job_fails_a_hostile_file_with_its_reason_and_writes_nothing(name, org):
    content, reason = HOSTILE_XLSX[name]

    job = run(content, "会员.xlsx")

    assert job.status == MemberImport.Status.FAILED and reason in job.errors[0]["message"]
    assert not Member.objects.exists()


def test_the_job_fails_a_csv_line_without_end_in_bounded_memory(org):
    content = ",".join(HEADER).encode() + b"\n" + b"M1," + b"0" * (8 * MB) + b"\n"

    with memory_peak_below(24):
        job = run(content)

    assert job.status == MemberImport.Status.FAILED and "第 2 行超过 65,536 个字符" in job.errors[0]["message"]


def test_the_upload_handler_keeps_no_more_than_the_limit(settings):
    settings.XIAOER_UPLOAD_MAX_BYTES = 1000
    request = RequestFactory().post("/", {"file": SimpleUploadedFile("big.csv", b"x" * 100_000)})

    assert request.FILES["file"].size == 1001  # one byte more than allowed: the form says "too large"


# -- every upload is covered ---------------------------------------------------------------------------------

def test_every_import_admin_uses_the_size_checked_form_and_the_bounded_readers(hq_admin):
    request = RequestFactory().get("/")
    request.user = hq_admin
    importing = {model: model_admin for model, model_admin in admin.site._registry.items()
                 if isinstance(model_admin, ImportMixin)}
    assert importing
    for model, model_admin in importing.items():
        assert issubclass(model_admin.get_import_form_class(request), SafeImportForm), model
        for file_format in model_admin.get_import_formats():
            assert issubclass(file_format, IMPORT_FORMATS), (model, file_format)


def test_every_file_field_and_upload_in_the_code_is_a_tested_upload():
    """Uploads enter through import-export's form (above) or a FileField: the member import job's, whose form
    checks the size (tested above), and the material form's (size checked by the form, content by
    materials.library.files: tests/materials/test_files.py and test_library_admin.py), and the phone's task photo
    (campaigns/mobile/tasks.py: read to one byte past XIAOER_EVIDENCE_MAX_BYTES, judged by the engine's
    evidence_add: tests/campaigns/mobile/test_task_page.py). A new one must check both and be tested."""
    root = Path(__file__).resolve().parents[2]
    found = set()
    for app in ("portal", "stores", "materials", "customers", "campaigns"):
        for path in (root / app).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "migrations" not in path.parts and re.search(r"(FileField|ImageField)\(|request\.FILES", text):
                found.add(str(path.relative_to(root)))
    assert found == {"customers/members/models.py", "materials/library/admin.py", "campaigns/mobile/tasks.py"}
    assert [f.name for f in MemberImport._meta.fields if isinstance(f, models.FileField)] == ["file"]
