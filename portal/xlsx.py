"""Reading an uploaded .xlsx: bounded, and about 5× faster than openpyxl's read-only mode.

Every .xlsx an upload brings in is read here (the member import's preview and its job, the stores' and
staff imports), within limits (``XlsxLimits``) that a hostile file cannot get past:

- the archive: at most ``entries`` parts; each part's declared size (ZipInfo.file_size) within its cap
  — the sheet ``sheet_bytes``, the shared strings ``shared_strings_bytes``, every other part
  ``part_bytes`` — and all of them within ``total_bytes``, checked before anything is decompressed; then
  the bytes actually decompressed are counted while reading, since a header can lie (zipfile also stops at
  the declared size and fails the CRC);
- the sheet: row numbers up to ``rows`` (Excel's own maximum), values in the first ``columns`` columns,
  at most 16,384 cells a row (Excel's XFD), ``shared_strings`` strings. Missing rows are not padded when
  streaming (``xlsx_rows`` gives each row with its spreadsheet line number); ``xlsx_values`` pads the gaps
  between rows that have values with one shared blank row, so its size is the last line with a value;
  an empty formatted cell far to the right (column XFD) is ignored, a value there is refused.

Each limit refused raises FileRefused with a message saying which limit and what to do; a file that is not
a zip, or a truncated or damaged one, too.

Values are exactly what ``openpyxl.load_workbook(read_only=True, data_only=True)`` + ``iter_rows(
values_only=True)`` gives — numbers as int/float, date-formatted numbers as datetime/timedelta
(openpyxl's own format tests and conversions), booleans, strings (shared, inline, rich text joined),
formulas as their cached value, missing cells and rows as None — tested against openpyxl in
tests/customers/members/test_members_preview.py. Deliberate differences: rows past a wrong <dimension>
are read, not dropped; rows without a dimension are padded to the widest; blank rows after the last value
are left out. Anything unusual (strict OOXML, a chart sheet active, parts missing) raises XlsxUnsupported:
the caller may then use openpyxl (``openpyxl_rows``), after ``xlsx_archive_check``, with the same row
and column limits.
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from xml.etree.ElementTree import ParseError, fromstring, iterparse

from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format
from openpyxl.utils.cell import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601

from portal.uploads import FileRefused

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
CONTENT_TYPES = "{http://schemas.openxmlformats.org/package/2006/content-types}"
REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"

_C, _V, _T, _R, _IS, _ROW, _SI, _DIMENSION = (MAIN + tag for tag in ("c", "v", "t", "r", "is", "row", "si",
                                                                      "dimension"))
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384  # XFD
MB = 1024 * 1024


@dataclass(frozen=True)
class XlsxLimits:
    part_bytes: int  # a part read whole: workbook, relationships, styles, content types, anything else
    shared_strings_bytes: int
    shared_strings: int
    sheet_bytes: int  # the sheet, streamed
    total_bytes: int  # all parts together
    entries: int = 1000
    rows: int = EXCEL_MAX_ROWS
    columns: int = 128  # a value further right is refused (a member file has 10 columns)


# An import previewed in the admin (≤ 20,000 rows): read in the web request.
WEB_LIMITS = XlsxLimits(part_bytes=16 * MB, shared_strings_bytes=64 * MB, shared_strings=1_000_000,
                        sheet_bytes=256 * MB, total_bytes=320 * MB)
# The member import job (up to Excel's 1,048,576 rows): read in the worker.
JOB_LIMITS = XlsxLimits(part_bytes=16 * MB, shared_strings_bytes=256 * MB, shared_strings=6_000_000,
                        sheet_bytes=2048 * MB, total_bytes=2400 * MB)


class XlsxUnsupported(Exception):
    """Not a workbook this reader handles; openpyxl may."""


class XlsxRowLimit(Exception):
    """A value past the caller's row limit; ``rows`` is the sheet's size as far as known."""

    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


def _damaged() -> FileRefused:
    return FileRefused(_("Excel 文件已损坏或不完整（或不是 .xlsx 文件）：请用 Excel 打开后另存为 .xlsx 再上传"))


def _too_large(part: str, limit: int) -> FileRefused:
    return FileRefused(_("Excel 文件解压后过大（%(part)s 超过 %(max)s）：请删除多余的工作表、图片和格式，"
                         "或另存为 CSV 后再上传") % {"part": part, "max": filesizeformat(limit)})


def _column_refused(line: int, column: int, limit: int) -> FileRefused:
    return FileRefused(_("工作表第 %(line)s 行的 %(column)s 列有内容，超出上限（最多 %(max)s 列）："
                         "请删除多余的列后再上传") % {
        "line": f"{line:,}", "column": get_column_letter(min(column, 18_278)), "max": limit})


# -- the archive ------------------------------------------------------------------------------------

class _Budget:
    """Decompressed bytes left for the whole file, counted as they are read."""

    def __init__(self, limits: XlsxLimits):
        self.limits = limits
        self.left = limits.total_bytes

    def take(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise _too_large(_("全部内容"), self.limits.total_bytes)


class _CountedPart:
    """A part being decompressed, refused once it gives more than ``cap`` bytes (whatever its header says)."""

    def __init__(self, source, *, name: str, cap: int, budget: _Budget):
        self.source, self.name, self.cap, self.budget = source, name, cap, budget
        self.read_so_far = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.cap + 1 - self.read_so_far
        try:
            data = self.source.read(max(min(size, self.cap + 1 - self.read_so_far), 0))
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise _damaged() from exc
        self.read_so_far += len(data)
        if self.read_so_far > self.cap:
            raise _too_large(self.name, self.cap)
        self.budget.take(len(data))
        return data

    def close(self) -> None:
        self.source.close()


class _Archive:
    """The zip, checked: entry count, declared sizes by part kind (from [Content_Types].xml), the total."""

    def __init__(self, source, limits: XlsxLimits):
        self.limits = limits
        self.budget = _Budget(limits)
        if isinstance(source, bytes | bytearray | memoryview):
            source = BytesIO(source)
        try:
            self.zip = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
            raise _damaged() from exc
        try:
            self._check()
        except BaseException:
            self.zip.close()
            raise

    def _check(self) -> None:
        infos = self.zip.infolist()
        if len(infos) > self.limits.entries:
            raise FileRefused(_("Excel 文件包含 %(n)s 个部件，超过上限 %(max)s：请另存为只含数据的 .xlsx 或 CSV") % {
                "n": f"{len(infos):,}", "max": f"{self.limits.entries:,}"})
        kinds = self._content_kinds()
        total = 0
        for info in infos:
            cap = self.cap_for(info.filename, kinds)
            if info.file_size > cap:
                raise _too_large(info.filename, cap)
            total += info.file_size
            if total > self.limits.total_bytes:
                raise _too_large(_("全部内容"), self.limits.total_bytes)

    def _content_kinds(self) -> dict[str, str]:
        """Part name → "sheet" / "sharedStrings" for the parts [Content_Types].xml declares so."""
        try:
            info = self.zip.getinfo("[Content_Types].xml")
        except KeyError:
            raise _damaged() from None
        if info.file_size > self.limits.part_bytes:
            raise _too_large(info.filename, self.limits.part_bytes)
        root = self.parse_whole(info.filename, self.limits.part_bytes)
        kinds = {}
        for override in root.iter(CONTENT_TYPES + "Override"):
            content_type = override.get("ContentType", "")
            kind = ("sheet" if content_type.endswith(".worksheet+xml")
                    else "sharedStrings" if content_type.endswith(".sharedStrings+xml") else None)
            if kind:
                kinds[override.get("PartName", "").lstrip("/")] = kind
        return kinds

    def cap_for(self, name: str, kinds: dict[str, str]) -> int:
        kind = kinds.get(name)
        if kind == "sheet":
            return self.limits.sheet_bytes
        if kind == "sharedStrings":
            return self.limits.shared_strings_bytes
        return self.limits.part_bytes

    def open(self, name: str, cap: int) -> _CountedPart:
        try:
            info = self.zip.getinfo(name)
        except KeyError as exc:
            raise XlsxUnsupported(f"missing part {name}") from exc
        if info.file_size > cap:
            raise _too_large(name, cap)
        try:
            source = self.zip.open(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise _damaged() from exc
        return _CountedPart(source, name=name, cap=cap, budget=self.budget)

    def read_whole(self, name: str, cap: int | None = None) -> bytes:
        part = self.open(name, self.limits.part_bytes if cap is None else cap)
        try:
            chunks = []
            while chunk := part.read(1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            part.close()

    def parse_whole(self, name: str, cap: int | None = None):
        try:
            return fromstring(self.read_whole(name, cap))
        except ParseError as exc:
            raise _damaged() from exc

    def close(self) -> None:
        self.zip.close()


def xlsx_archive_check(source, *, limits: XlsxLimits) -> None:
    """FileRefused unless ``source`` (bytes or a binary file) is a zip within ``limits``: what must hold
    before openpyxl is given a file (it reads styles and shared strings whole)."""
    _Archive(source, limits).close()
    if hasattr(source, "seek"):
        source.seek(0)


def _rels(archive: _Archive, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: id → (type, target path in the archive)."""
    folder, name = posixpath.split(part)
    try:
        root = archive.parse_whole(posixpath.join(folder, "_rels", name + ".rels"))
    except XlsxUnsupported:
        return {}
    found = {}
    for rel in root.iter(PKG_REL + "Relationship"):
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found[rel.get("Id")] = (rel.get("Type", "").removeprefix(REL_TYPE), path)
    return found


class _Book:
    """What a sheet needs from the rest of the workbook: the sheet's part (the active one, or the first),
    the date system, which cell styles are dates, and the shared strings."""

    def __init__(self, archive: _Archive, *, sheet: str):
        self.archive = archive
        package = [path for kind, path in _rels(archive, "").values() if kind == "officeDocument"]
        if len(package) != 1:
            raise XlsxUnsupported("no workbook part")
        workbook_path = package[0]
        workbook = archive.parse_whole(workbook_path)
        if workbook.tag != MAIN + "workbook":
            raise XlsxUnsupported("not a transitional SpreadsheetML workbook")
        rels = _rels(archive, workbook_path)
        properties = workbook.find(MAIN + "workbookPr")
        date1904 = properties is not None and properties.get("date1904", "") in ("1", "true")
        self.epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
        self.sheet_path = self._sheet(workbook, rels, active=sheet == "active")
        by_type = {kind: path for kind, path in rels.values()}
        self.date_styles, self.timedelta_styles = self._date_styles(by_type.get("styles"))
        self.shared_strings = self._shared_strings(by_type.get("sharedStrings"))

    def _sheet(self, workbook, rels, *, active: bool) -> str:
        view = workbook.find(f"{MAIN}bookViews/{MAIN}workbookView")
        try:
            index = int(view.get("activeTab", 0)) if view is not None and active else 0
        except ValueError as exc:
            raise XlsxUnsupported("bad activeTab") from exc
        sheets = workbook.findall(f"{MAIN}sheets/{MAIN}sheet")
        if not 0 <= index < len(sheets):
            raise XlsxUnsupported("no such sheet")
        kind, path = rels.get(sheets[index].get(DOC_REL + "id"), ("", ""))
        if kind != "worksheet":
            raise XlsxUnsupported(f"sheet is a {kind or 'missing part'}")
        return path

    def _date_styles(self, path: str | None) -> tuple[set[int], set[int]]:
        """As openpyxl's Stylesheet._normalise_numbers: a style is a date if its number format is."""
        if path is None:
            return set(), set()
        root = self.archive.parse_whole(path)
        custom = {int(fmt.get("numFmtId")): fmt.get("formatCode")
                  for fmt in root.iterfind(f"{MAIN}numFmts/{MAIN}numFmt")}
        dates, timedeltas = set(), set()
        for index, xf in enumerate(root.iterfind(f"{MAIN}cellXfs/{MAIN}xf")):
            number_format = int(xf.get("numFmtId", 0))
            code = custom[number_format] if number_format in custom else builtin_format_code(number_format)
            if is_date_format(code):
                dates.add(index)
            if is_timedelta_format(code):
                timedeltas.add(index)
        return dates, timedeltas

    def _shared_strings(self, path: str | None) -> list[str]:
        if path is None:
            return []
        limits = self.archive.limits
        strings = []
        source = self.archive.open(path, limits.shared_strings_bytes)
        try:
            for _event, element in iterparse(source):
                if element.tag == _SI:
                    strings.append(_text(element).replace("x005F_", ""))  # as openpyxl's read_string_table
                    element.clear()
                    if len(strings) > limits.shared_strings:
                        raise FileRefused(_("Excel 文件的不同文本超过 %(max)s 个：请另存为 CSV 后再上传") % {
                            "max": f"{limits.shared_strings:,}"})
        finally:
            source.close()
        return strings


def _text(element) -> str:
    """A string item's plain text: its <t>, then each rich-text run's <t> (phonetic runs left out)."""
    plain = element.findtext(_T) or ""  # find/findtext with a plain tag run in C; iterfind does not
    if len(element) == 1:
        return plain
    return plain + "".join(child.findtext(_T) or "" for child in element if child.tag == _R)


# -- the sheet --------------------------------------------------------------------------------------

class XlsxSheet:
    """One sheet's rows, streamed: ``rows()`` gives (line, values) for each row with a value, ``line``
    being the spreadsheet's row number and ``values`` a tuple up to the row's last value. ``width`` and
    ``dimension_rows`` are the sheet's <dimension> (None without one), known once the first row is read."""

    def __init__(self, book: _Book):
        self.book = book
        self.limits = book.archive.limits
        self.columns: dict[str, int] = {}  # "AB" → 28, computed once per column
        self.width: int | None = None
        self.dimension_rows: int | None = None

    def rows(self) -> Iterator[tuple[int, tuple]]:
        limits = self.limits
        source = self.book.archive.open(self.book.sheet_path, limits.sheet_bytes)
        try:
            next_line, cells_in_row = 1, 0
            for _event, element in iterparse(source):
                tag = element.tag
                if tag == _C:
                    cells_in_row += 1  # a row's cells stay in memory until the row ends: bounded here
                    if cells_in_row > EXCEL_MAX_COLUMNS:
                        raise _damaged()
                elif tag == _ROW:
                    line = self._line(element.get("r"), next_line)
                    values = self._cells(element, line)
                    element.clear()
                    next_line, cells_in_row = line + 1, 0
                    if values:
                        yield line, values
                elif tag == _DIMENSION:
                    try:
                        _min_col, _min_row, self.width, self.dimension_rows = range_boundaries(
                            element.get("ref", "A1"))
                    except (ValueError, TypeError):
                        self.width = self.dimension_rows = None
        except ParseError as exc:
            raise _damaged() from exc
        finally:
            source.close()

    def _line(self, ref: str | None, expected: int) -> int:
        try:
            line = int(ref) if ref else expected
        except ValueError:
            raise _damaged() from None
        if line < expected:  # rows out of order, or a row twice: not a sheet Excel writes
            raise _damaged()
        if line > self.limits.rows:
            raise FileRefused(_("工作表的第 %(line)s 行超出上限（最多 %(max)s 行）："
                                "请检查文件，或另存为 CSV 后再上传") % {
                "line": f"{line:,}", "max": f"{self.limits.rows:,}"})
        return line

    def _cells(self, row, line: int) -> tuple:
        cells: list = []
        next_column = 1
        columns, limit = self.columns, self.limits.columns
        for cell in row:
            if cell.tag != _C:
                continue
            ref = cell.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                column = columns.get(letters)
                if column is None:
                    try:
                        column = columns[letters] = column_index_from_string(letters)
                    except ValueError:
                        raise _damaged() from None
            else:
                column = next_column
            next_column = column + 1
            value = self._value(cell)
            if value is None:
                continue  # an empty (formatted) cell: not a slot, wherever it is
            if column > limit:
                raise _column_refused(line, column, limit)
            if column > len(cells):
                cells.extend([None] * (column - len(cells)))
            cells[column - 1] = value
        return tuple(cells)

    def _value(self, cell):
        """openpyxl's WorkSheetParser.parse_cell, data_only."""
        kind = cell.get("t", "n")
        if kind == "inlineStr":
            inline = cell.find(_IS)
            return None if inline is None else _text(inline)
        value = cell.findtext(_V) or None
        if value is None:
            return None
        if kind == "n":
            number = float(value) if ("." in value or "E" in value or "e" in value) else int(value)
            style = int(cell.get("s") or 0)
            if style in self.book.date_styles:
                try:
                    return from_excel(number, self.book.epoch, timedelta=style in self.book.timedelta_styles)
                except (OverflowError, ValueError):
                    return "#VALUE!"
            return number
        if kind == "s":
            return self.book.shared_strings[int(value)]
        if kind == "b":
            return bool(int(value))
        if kind == "d":
            return from_ISO8601(value)
        return value  # "str" (a formula's text) and "e" (an error such as #N/A)


@contextmanager
def xlsx_open(source, *, limits: XlsxLimits, sheet: str = "active") -> Iterator[XlsxSheet]:
    """The active (or the first: ``sheet="first"``) sheet of ``source`` (bytes or a binary file), checked
    against ``limits``. FileRefused for a file past a limit or damaged; XlsxUnsupported for a workbook
    this reader does not handle."""
    archive = _Archive(source, limits)
    try:
        yield XlsxSheet(_Book(archive, sheet=sheet))
    finally:
        archive.close()


def xlsx_values(source, *, limit: int | None = None, limits: XlsxLimits = WEB_LIMITS) -> list[tuple]:
    """Every row of the active sheet (the header too) up to its last row with a value, as tuples of one
    width. ``limit`` caps the rows: a value on a later line raises XlsxRowLimit before the rest is read."""
    with xlsx_open(source, limits=limits) as sheet:
        found: list[tuple[int, tuple]] = []
        for line, values in sheet.rows():
            if limit is not None and line > limit:
                raise XlsxRowLimit(max(sheet.dimension_rows or 0, line))
            found.append((line, values))
        width = sheet.width
    if width is None or width > limits.columns:
        width = max((len(values) for _line, values in found), default=0)
    return _padded(found, width)


def _padded(found: list[tuple[int, tuple]], width: int) -> list[tuple]:
    blank = (None,) * width
    rows: list[tuple] = []
    for line, values in found:
        rows.extend([blank] * (line - 1 - len(rows)))  # lines without a value
        rows.append(values[:width] + blank[len(values):])
    return rows


def openpyxl_values(source, *, limit: int | None = None, limits: XlsxLimits = WEB_LIMITS) -> list[tuple]:
    """``xlsx_values`` by openpyxl, for a workbook this reader does not handle: the archive checked first,
    then at most ``limits.rows`` rows and ``limits.columns`` columns read."""
    found: list[tuple[int, tuple]] = []
    for line, values in openpyxl_rows(source, limits=limits):
        if limit is not None and line > limit:
            raise XlsxRowLimit(line)
        found.append((line, values))
    return _padded(found, max((len(values) for _line, values in found), default=0))


def openpyxl_rows(source, *, limits: XlsxLimits, sheet: str = "active") -> Iterator[tuple[int, tuple]]:
    """(line, values) of each row with a value, read by openpyxl within ``limits`` (archive, rows, columns)."""
    import openpyxl

    if isinstance(source, bytes | bytearray | memoryview):
        source = BytesIO(source)
    xlsx_archive_check(source, limits=limits)
    try:
        book = openpyxl.load_workbook(source, read_only=True, data_only=True)
    except FileRefused:
        raise
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException …
        raise _damaged() from exc
    try:
        chosen = book.active if sheet == "active" else book.worksheets[0]
        if not hasattr(chosen, "iter_rows"):
            raise _damaged()
        rows = chosen.iter_rows(max_row=limits.rows, max_col=limits.columns + 1, values_only=True)
        for line, values in enumerate(rows, start=1):
            if len(values) > limits.columns and values[limits.columns] is not None:
                raise _column_refused(line, limits.columns + 1, limits.columns)
            values = tuple(values[:limits.columns])
            last = len(values)
            while last and values[last - 1] is None:
                last -= 1
            if last:
                yield line, values[:last]
    finally:
        book.close()
