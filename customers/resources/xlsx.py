"""The active sheet of an .xlsx as rows of values, about 5× faster than openpyxl's read-only mode.

openpyxl builds an object per cell (and per inline or shared string); for a 10,000-row member file
that was a third of the preview. This reads the sheet XML with ElementTree and gives exactly what
``openpyxl.load_workbook(read_only=True, data_only=True)`` + ``iter_rows(values_only=True)`` gives
— numbers as int/float, date-formatted numbers as datetime/timedelta (openpyxl's own format tests
and conversions), booleans, strings (shared, inline, rich text joined), formulas as their cached
value, missing cells and rows as None — tested against openpyxl in tests/customers/test_members_preview.py.
Two deliberate differences: rows past a wrong <dimension> are read, not dropped, and rows without
a dimension are padded to the widest row. Anything unusual (strict OOXML, a chart sheet active,
parts missing) raises XlsxUnsupported: the caller then uses openpyxl.
"""

from __future__ import annotations

import posixpath
import zipfile
from io import BytesIO
from xml.etree.ElementTree import fromstring, iterparse

from openpyxl.styles.numbers import builtin_format_code, is_date_format, is_timedelta_format
from openpyxl.utils.cell import column_index_from_string, range_boundaries
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel, from_ISO8601

MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
DOC_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
REL_TYPE = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"

_C, _V, _T, _R, _IS, _ROW, _SI, _DIMENSION = (MAIN + tag for tag in ("c", "v", "t", "r", "is", "row", "si",
                                                                      "dimension"))


class XlsxUnsupported(Exception):
    """Not a workbook this reader handles; openpyxl may."""


class XlsxRowLimit(Exception):
    """More non-blank rows than the caller's limit; ``rows`` is the sheet's size as far as known."""

    def __init__(self, rows: int):
        super().__init__(rows)
        self.rows = rows


def xlsx_values(data: bytes, *, limit: int | None = None) -> list[tuple]:
    """Every row of the active sheet (the header too) as a tuple of values. ``limit`` caps the
    non-blank rows: one more raises XlsxRowLimit before the rest is read."""
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise XlsxUnsupported(exc) from exc
    with archive:
        book = _Book(archive)
        with archive.open(book.sheet_path) as source:
            return _SheetReader(book).rows(source, limit)


def _rels(archive: zipfile.ZipFile, part: str) -> dict[str, tuple[str, str]]:
    """A part's relationships: id → (type, target path in the archive)."""
    folder, name = posixpath.split(part)
    try:
        root = fromstring(archive.read(posixpath.join(folder, "_rels", name + ".rels")))
    except KeyError:
        return {}
    found = {}
    for rel in root.iter(PKG_REL + "Relationship"):
        target = rel.get("Target", "")
        path = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        found[rel.get("Id")] = (rel.get("Type", "").removeprefix(REL_TYPE), path)
    return found


class _Book:
    """What a sheet needs from the rest of the workbook: the active sheet's part, the date system,
    which cell styles are dates, and the shared strings."""

    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        package = [path for kind, path in _rels(archive, "").values() if kind == "officeDocument"]
        if len(package) != 1:
            raise XlsxUnsupported("no workbook part")
        workbook_path = package[0]
        try:
            workbook = fromstring(archive.read(workbook_path))
        except KeyError as exc:
            raise XlsxUnsupported(exc) from exc
        if workbook.tag != MAIN + "workbook":
            raise XlsxUnsupported("not a transitional SpreadsheetML workbook")
        rels = _rels(archive, workbook_path)
        properties = workbook.find(MAIN + "workbookPr")
        date1904 = properties is not None and properties.get("date1904", "") in ("1", "true")
        self.epoch = CALENDAR_MAC_1904 if date1904 else CALENDAR_WINDOWS_1900
        self.sheet_path = self._active_sheet(workbook, rels)
        by_type = {kind: path for kind, path in rels.values()}
        self.date_styles, self.timedelta_styles = self._date_styles(by_type.get("styles"))
        self.shared_strings = self._shared_strings(by_type.get("sharedStrings"))

    def _active_sheet(self, workbook, rels) -> str:
        view = workbook.find(f"{MAIN}bookViews/{MAIN}workbookView")
        active = int(view.get("activeTab", 0)) if view is not None else 0
        sheets = workbook.findall(f"{MAIN}sheets/{MAIN}sheet")
        if not 0 <= active < len(sheets):
            raise XlsxUnsupported("no active sheet")
        kind, path = rels.get(sheets[active].get(DOC_REL + "id"), ("", ""))
        if kind != "worksheet":
            raise XlsxUnsupported(f"active sheet is a {kind or 'missing part'}")
        return path

    def _date_styles(self, path: str | None) -> tuple[set[int], set[int]]:
        """As openpyxl's Stylesheet._normalise_numbers: a style is a date if its number format is."""
        if path is None:
            return set(), set()
        root = fromstring(self.archive.read(path))
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
        strings = []
        with self.archive.open(path) as source:
            for _event, element in iterparse(source):
                if element.tag == _SI:
                    strings.append(_text(element).replace("x005F_", ""))  # as openpyxl's read_string_table
                    element.clear()
        return strings


def _text(element) -> str:
    """A string item's plain text: its <t>, then each rich-text run's <t> (phonetic runs left out)."""
    plain = element.findtext(_T) or ""  # find/findtext with a plain tag run in C; iterfind does not
    if len(element) == 1:
        return plain
    return plain + "".join(child.findtext(_T) or "" for child in element if child.tag == _R)


class _SheetReader:
    def __init__(self, book: _Book):
        self.book = book
        self.columns: dict[str, int] = {}  # "AB" → 28, computed once per column

    def rows(self, source, limit: int | None) -> list[tuple]:
        rows: list[list] = []
        width = None  # from <dimension>, as openpyxl's read-only sheet
        dimension_rows = None
        next_line = 1
        filled = 0
        for _event, element in iterparse(source):
            tag = element.tag
            if tag == _ROW:
                line = int(element.get("r") or next_line)
                while next_line < line:  # rows missing from the XML are empty rows
                    rows.append([])
                    next_line += 1
                cells = self._cells(element)
                rows.append(cells)
                next_line = line + 1
                element.clear()
                if cells and any(value is not None for value in cells):
                    filled += 1
                    if limit is not None and filled > limit:
                        raise XlsxRowLimit(max(dimension_rows or 0, filled))
            elif tag == _DIMENSION:
                _min_col, _min_row, width, dimension_rows = range_boundaries(element.get("ref", "A1"))
        if width is None:
            width = max((len(cells) for cells in rows), default=0)
        return [tuple(cells[:width]) + (None,) * (width - len(cells)) for cells in rows]

    def _cells(self, row) -> list:
        cells: list = []
        for cell in row:
            if cell.tag != _C:
                continue
            ref = cell.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                column = self.columns.get(letters)
                if column is None:
                    column = self.columns[letters] = column_index_from_string(letters)
            else:
                column = len(cells) + 1
            if column > len(cells):
                cells.extend([None] * (column - len(cells)))
            cells[column - 1] = self._value(cell)
        return cells

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
