"""Spreadsheets in and out of the portal: exports that cannot carry a formula, imports that are read
within limits.

Out — a cell whose text starts like a formula (``=``, ``+``, ``-``, ``@``, a tab or a CR, full-width
``＝＋－＠`` too, also after leading spaces) is run by Excel and WPS when the file is opened: a customer's
WeChat nickname ``=HYPERLINK("http://…","点我")`` would be a link in HQ's export. Such text gets a leading
``'`` (OWASP's advice: shown as text, the value still readable); numbers stay numbers, and text that is
just a number (``-5``, ``+1.5``) is left alone. One place per way of writing a spreadsheet:

- django-import-export: every resource derives from ``SafeExportResource`` (``export_field``), which covers
  every format; the admins offer CSV and .xlsx only (``SpreadsheetAdminMixin``);
- a workbook built with openpyxl is saved through ``workbook_bytes``, which neutralises every cell;
- a CSV written by hand: ``csv_rows`` before the writer.

tests/customers/test_exports_formula_injection.py exports a hostile row through each admin that exports
(a new one without a hostile row fails) and checks that nothing else writes spreadsheets.

In — ``SpreadsheetAdminMixin`` gives the import-export admins a size-checked upload form
(XIAOER_WEB_IMPORT_MAX_BYTES) and readers that refuse what cannot be read safely: .xlsx through
portal/xlsx.py (zip bombs, absurd rows and columns), CSV without NUL characters, overlong lines or too many
rows or columns. A refusal is shown on the form with its reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable

import tablib
from django import forms
from django.conf import settings
from django.utils.translation import gettext as _
from import_export import resources
from import_export.formats import base_formats
from import_export.forms import ImportForm

from portal.uploads import FileRefused, upload_size_validate
from portal.xlsx import WEB_LIMITS, XlsxLimits, XlsxUnsupported, openpyxl_values, xlsx_values

# -- out: no formulas -----------------------------------------------------------------------------------

FORMULA_STARTS = frozenset("=+-@＝＋－＠")
_CONTROL_STARTS = ("\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell_neutralise(value):
    """``value`` as a spreadsheet shows it without running it: formula-like text gets a leading ``'``.
    Anything that is not text (numbers, dates, None) is returned as it is; so is plain-number text."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_CONTROL_STARTS) or value.lstrip()[:1] in FORMULA_STARTS:
        if _NUMBER.fullmatch(value):
            return value
        return "'" + value
    return value


def csv_rows(rows: Iterable[Iterable]) -> Iterable[list]:
    """Rows for a hand-written ``csv.writer``: every cell through cell_neutralise."""
    for row in rows:
        yield [cell_neutralise(value) for value in row]


class SafeExportResource(resources.ModelResource):
    """The base of every django-import-export resource: each exported cell, in every format, through
    cell_neutralise (after the field's widget or dehydrate method made it)."""

    def export_field(self, field, instance, **kwargs):
        return cell_neutralise(super().export_field(field, instance, **kwargs))


def workbook_bytes(book) -> bytes:
    """An openpyxl workbook saved as .xlsx, every cell of every sheet neutralised first: a hand-built
    workbook never holds a formula (openpyxl makes one of any text that starts with ``=``)."""
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                value = cell.value
                if isinstance(value, str):
                    safe = cell_neutralise(value)
                    if safe is not value or cell.data_type == "f":
                        cell.value = safe
                        cell.data_type = "s"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def sheets_workbook_bytes(*, sheets: Iterable[tuple[str, list, list[list]]], filters_text: Iterable[tuple[str, str]],
                          first_column_width: int = 30) -> bytes:
    """A dashboard's export: one sheet per ``(title, header, rows)`` with a bold header, then a sheet of the
    filters it was made with; through workbook_bytes (no cell runs as a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    for index, (title, header, rows) in enumerate(sheets):
        sheet = book.active if index == 0 else book.create_sheet()
        sheet.title = title
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.column_dimensions["A"].width = first_column_width
    about = book.create_sheet(_("筛选条件"))
    for label, value in filters_text:
        about.append([label, value])
    return workbook_bytes(book)


# -- in: bounded readers --------------------------------------------------------------------------------

CSV_MAX_LINE_CHARS = 64 * 1024  # one physical line
CSV_MAX_ROWS = 200_000  # an import previewed in the admin
MAX_COLUMNS = WEB_LIMITS.columns


def csv_text_check(text: str, *, max_rows: int = CSV_MAX_ROWS, max_columns: int = MAX_COLUMNS) -> None:
    """FileRefused for CSV text a web import must not parse: NUL characters, more than ``max_rows`` lines, a
    line over CSV_MAX_LINE_CHARS, a row of more than ``max_columns`` cells."""
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise FileRefused(_("文件第 %(line)s 行含有空字符（NUL）：请检查导出文件，另存为 UTF-8 编码的 CSV 或 .xlsx 后"
                            "再上传") % {"line": f"{line:,}"})
    lines = text.count("\n")
    if lines > max_rows:
        raise FileRefused(_("文件有 %(n)s 行，超过上限 %(max)s 行：请拆分后分批上传") % {
            "n": f"{lines:,}", "max": f"{max_rows:,}"})
    if len(text) > CSV_MAX_LINE_CHARS:
        for number, line_text in enumerate(text.split("\n"), start=1):
            if len(line_text) > CSV_MAX_LINE_CHARS:
                raise FileRefused(line_too_long_message(number))
    reader = csv.reader(io.StringIO(text))
    try:
        for row in reader:
            if len(row) > max_columns:
                raise FileRefused(_("文件第 %(line)s 行有 %(n)s 列，超过上限 %(max)s 列：请删除多余的列后再上传") % {
                    "line": f"{reader.line_num:,}", "n": f"{len(row):,}", "max": max_columns})
    except csv.Error as exc:
        raise FileRefused(_("CSV 文件第 %(line)s 行无法读取（%(error)s）：请检查引号是否成对") % {
            "line": f"{reader.line_num:,}", "error": exc}) from exc


def line_too_long_message(line: int) -> str:
    return _("文件第 %(line)s 行超过 %(max)s 个字符：请检查文件（是否不是 CSV，或缺少换行）") % {
        "line": f"{line:,}", "max": f"{CSV_MAX_LINE_CHARS:,}"}


def csv_decode(in_stream, encoding: str | None) -> str:
    return in_stream.decode(encoding or "utf-8-sig") if isinstance(in_stream, bytes | bytearray) else in_stream


class SafeCSV(base_formats.CSV):
    """CSV for imports: checked by csv_text_check before tablib parses it."""

    max_rows = CSV_MAX_ROWS

    def create_dataset(self, in_stream, **kwargs):
        text = csv_decode(in_stream, self.encoding)
        csv_text_check(text, max_rows=self.max_rows)
        return super().create_dataset(text, **kwargs)


class SafeXLSX(base_formats.XLSX):
    """.xlsx for imports: the active sheet as values, read by portal/xlsx.py within ``limits``."""

    limits: XlsxLimits = WEB_LIMITS

    def create_dataset(self, in_stream):
        rows = self.read_rows(in_stream)
        if not rows:
            return tablib.Dataset()
        return tablib.Dataset(*rows[1:], headers=list(rows[0]))

    def read_rows(self, data: bytes, *, limit: int | None = None) -> list[tuple]:
        """The rows (the header too); openpyxl, within the same limits, for what the fast reader does not read."""
        try:
            return xlsx_values(data, limit=limit, limits=self.limits)
        except FileRefused:
            raise
        except (XlsxUnsupported, ValueError, KeyError, IndexError):
            return openpyxl_values(data, limit=limit, limits=self.limits)


EXPORT_FORMATS = (base_formats.CSV, base_formats.XLSX)
IMPORT_FORMATS = (SafeCSV, SafeXLSX)


class SafeImportForm(ImportForm):
    """django-import-export's upload form with the web import's size limit."""

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        try:
            upload_size_validate(upload=upload, max_bytes=settings.XIAOER_WEB_IMPORT_MAX_BYTES)
        except FileRefused as exc:
            raise forms.ValidationError(str(exc)) from exc
        return upload


class SpreadsheetAdminMixin:
    """For every admin with django-import-export's ImportMixin or ExportMixin (put it first): CSV and .xlsx
    only, exports through SafeExportResource resources, uploads size-checked and read by the bounded readers,
    and a refused file shown on the form with its reason."""

    import_form_class = SafeImportForm

    def get_export_formats(self):
        return list(EXPORT_FORMATS)

    def get_import_formats(self):
        return list(IMPORT_FORMATS)

    def add_data_read_fail_error_to_form(self, form, e):
        if isinstance(e, FileRefused):
            form.add_error("import_file", str(e))
        elif isinstance(e, UnicodeDecodeError):
            form.add_error("import_file", _("CSV 文件不是 UTF-8 编码：请另存为 UTF-8 编码的 CSV 或 .xlsx 后再上传"))
        else:
            super().add_data_read_fail_error_to_form(form, e)  # type: ignore[misc]  # import-export's, next in the MRO

