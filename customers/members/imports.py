"""The fast path for member files with millions of rows: stream, validate, COPY, set-based write.

    a reader thread: read (CSV streamed; XLSX with openpyxl read_only) → validate each row in Python
        (cheap string checks and the mobile's HMAC; bad rows are collected with their line numbers)
        → chunks of good rows, the last line of each member number kept → binary COPY of each
        chunk into a TEMP staging table on the import's connection, between the importing
        thread's statements; and the progress
    the importing thread, in ONE transaction: per chunk, one statement (CHUNK_WRITE_SQL) that
        probes member_no once per staged row and splits the chunk: new members are INSERTed
        plainly, changed ones are updated, unchanged ones are neither written nor locked; then
        ANALYZE if the table grew much, unify with customers the members that are new or whose
        unionid/mobile changed, and mark the job done.
The two overlap (Python reads chunk n+1 while PostgreSQL writes chunk n): on two cores that is
most of the speed. Chunks are applied in file order, so the last line of a member number wins.
bench/members.py prints where the time goes: at 1 M new members it is PostgreSQL's index
maintenance and the home store's foreign key checks, hence member_mobile_hash as a hash index
(see the model).

Durability: the staging table is TEMP (never WAL-logged, gone with the session), so there is no
staging commit whose synchronous_commit could be relaxed; the members are written by the job's
single transaction and committed with the server's synchronous_commit, i.e. durably.

A file that cannot be read as a whole (not CSV/XLSX, wrong columns, an encoding that is neither
UTF-8 — with or without BOM — nor GBK) fails with a message and writes nothing. Importing the
same file twice writes nothing the second time. An import that collides with another writer
creating the same members is run again from the start (ATTEMPTS).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
import operator
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.files import File
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.members.services import (
    LEVEL_MAX,
    MEMBER_NO_MAX,
    NAME_MAX,
    UNIONID_MAX,
    MemberDataError,
    members_unify_scope_table,
)
from customers.members.tasks import member_import_task
from customers.models import MemberImport
from portal.errors import DomainError
from portal.locks import IdLock, session_lock_try
from portal.parsers import INT_MAX, ValueInvalid, amount_parse, date_parse, int_parse, mobile_normalize
from portal.spreadsheets import CSV_MAX_LINE_CHARS, line_too_long_message
from portal.tasks import enqueue_after_commit
from portal.uploads import FileRefused
from portal.xlsx import JOB_LIMITS, XlsxUnsupported, openpyxl_rows, xlsx_open

if TYPE_CHECKING:
    from portal.models import User

logger = logging.getLogger(__name__)

# File header → field. 会员号 is required; a missing optional column counts as blank (keeps values).
COLUMNS = {"会员号": "member_no", "手机号": "mobile", "unionid": "unionid", "姓名": "name", "等级": "level",
           "积分": "points", "累计消费": "lifetime_spend", "消费次数": "order_count", "最近消费日": "last_purchase_on",
           "归属门店编码": "store_code"}
ERRORS_SHOWN = 1000
# Rows per COPY + write; progress is written after each. 25,000 staged rows (~5 MB) stay within the
# session's default 8 MB of temp_buffers, so the staging table never goes to disk.
CHUNK_ROWS = 25_000
FIRST_CHUNK_ROWS = 10_000  # a small first chunk starts the database sooner
SNIFF_BYTES = 64 * 1024
STAGE = "member_import_stage"
TOUCHED = "member_import_touched"
ANALYZE_AFTER_ROWS = 10_000
ANALYZE_AFTER_SHARE = 0.1  # … and more than this share of the table (autovacuum's default threshold)
ATTEMPTS = 3  # a member number created by someone else mid-import: the whole file is run again
MEMBER_NO_CONSTRAINT = "member_member_no_unique"
DEADLOCK_DETECTED = "40P01"


class MemberImportError(DomainError):
    """The file as a whole cannot be imported; the message tells the user what to fix."""


# -- reading ----------------------------------------------------------------------------------------

def _sniff_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\0" in head:
        raise MemberImportError(_("文件不是 CSV 或 Excel（.xlsx）文件，或是 UTF-16 编码；"
                                  "请另存为 UTF-8 或 GBK 编码的 CSV"))
    for encoding in ("utf-8", "gb18030"):  # gb18030 reads GBK and GB2312 files
        try:
            codecs.getincrementaldecoder(encoding)().decode(head, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    raise MemberImportError(_("无法识别文件编码：请另存为 UTF-8 或 GBK 编码的 CSV"))


def cell_text(value) -> str:
    """An XLSX cell as the text a CSV would hold (numbers without '.0', dates as ISO)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, ".15g")
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


@dataclass
class OpenedFile:
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (line number in the file, cells)
    rows_estimate: int


def _open_csv(binary, head: bytes) -> OpenedFile:
    encoding = _sniff_encoding(head)
    text = io.TextIOWrapper(binary, encoding=encoding, newline="", errors="strict")
    reader = csv.reader(_bounded_lines(text))
    try:
        header = next(reader)
    except StopIteration:
        raise MemberImportError(_("文件是空的")) from None

    def rows():
        for cells in reader:
            yield reader.line_num, cells

    return OpenedFile(header=header, rows=rows(), rows_estimate=0)


def _bounded_lines(text) -> Iterator[str]:
    """The CSV's physical lines, none longer than CSV_MAX_LINE_CHARS: a file without line breaks (or not
    a CSV at all) is refused at its first long line instead of being read whole into one row."""
    limit = CSV_MAX_LINE_CHARS + 2  # the longest line allowed and its "\r\n"
    readline, number = text.readline, 0
    while line := readline(limit):
        number += 1
        if len(line) > CSV_MAX_LINE_CHARS and len(line.rstrip("\r\n")) > CSV_MAX_LINE_CHARS:
            raise MemberImportError(line_too_long_message(number))
        yield line


class _XlsxLines:
    """(line, values) of each row with a value of the first sheet, read by portal/xlsx.py within JOB_LIMITS
    (zip bombs, absurd rows or columns refused with their reason; rows never padded), or by openpyxl within
    the same limits for a workbook that reader does not handle. ``dimension_rows`` once a row is read."""

    def __init__(self, binary):
        self.binary = binary
        self.dimension_rows: int | None = None

    def __iter__(self) -> Iterator[tuple[int, tuple]]:
        started = False
        try:
            try:
                with xlsx_open(self.binary, limits=JOB_LIMITS, sheet="first") as sheet:
                    for row in sheet.rows():
                        self.dimension_rows, started = sheet.dimension_rows, True
                        yield row
                    return
            except XlsxUnsupported:
                if started:
                    raise
            self.binary.seek(0)
            yield from openpyxl_rows(self.binary, limits=JOB_LIMITS, sheet="first")
        except FileRefused as exc:
            raise MemberImportError(str(exc)) from exc
        except (XlsxUnsupported, ValueError, KeyError, IndexError, OverflowError) as exc:
            raise MemberImportError(_("Excel 文件无法读取（%(error)s）：请用 Excel 另存为 .xlsx 或 CSV 后再上传") % {
                "error": exc}) from exc


def _open_xlsx(binary) -> OpenedFile:
    lines = _XlsxLines(binary)
    found = iter(lines)
    try:
        line, values = next(found)
    except StopIteration:
        raise MemberImportError(_("文件是空的")) from None
    header = [cell_text(v) for v in values] if line == 1 else []  # the header is line 1, or missing

    def rows():
        if line != 1:
            yield line, [cell_text(v) for v in values]
        for number, cells in found:
            yield number, [cell_text(v) for v in cells]

    return OpenedFile(header=header, rows=rows(), rows_estimate=max((lines.dimension_rows or 1) - 1, 0))


def _count_lines(binary) -> int:
    """Data rows in a CSV, for the progress bar (quoted line breaks make it an estimate)."""
    binary.seek(0)
    lines, last = 0, b"\n"
    while chunk := binary.read(1 << 20):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    binary.seek(0)
    return max(lines + (last != b"\n") - 1, 0)


def _xlsx_in_name_only(binary) -> None:
    """A file named .xlsx that is not a zip (a renamed CSV, a web page): said so."""
    if str(getattr(binary, "name", "") or "").lower().endswith(".xlsx"):
        raise MemberImportError(_("文件名是 .xlsx，内容却不是 Excel 文件：请用 Excel 打开后另存为 .xlsx 再上传"))


def member_file_open(binary) -> OpenedFile:
    """A binary file object → its header and rows, whatever the format; MemberImportError if unreadable."""
    head = binary.read(SNIFF_BYTES)
    binary.seek(0)
    if not head:
        raise MemberImportError(_("文件是空的"))
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(binary)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise MemberImportError(_("不支持旧版 Excel（.xls）文件：请另存为 .xlsx 或 CSV"))
    _xlsx_in_name_only(binary)
    estimate = _count_lines(binary)
    opened = _open_csv(binary, head)
    opened.rows_estimate = estimate
    return opened


# -- validating -------------------------------------------------------------------------------------

# A staged row: what CHUNK_WRITE_SQL reads. None = blank in the file (the stored value is kept).
STAGE_COLUMNS = ("member_no", "mobile_hash", "mobile_masked", "unionid", "name", "level", "points",
                 "lifetime_spend", "order_count", "last_purchase_on", "home_store_id")
# Binary COPY (half the CPU of text COPY on both sides, measured); the amount travels as validated
# text and is cast in SQL, which saves building a Decimal per row in Python.
STAGE_TYPES = ("text", "text", "text", "text", "text", "text", "int4", "text", "int4", "date", "int8")
STAGE_TABLE_SQL = f"""
CREATE TEMP TABLE {STAGE} (
    member_no text NOT NULL, mobile_hash text, mobile_masked text, unionid text, name text, level text,
    points integer, lifetime_spend text, order_count integer, last_purchase_on date, home_store_id bigint
)
"""


def _hmac_sha256_hex(key: bytes) -> Callable[[str], str]:
    """HMAC-SHA256 (hex) with the key's padded blocks hashed once: copying a hash state per row is
    2.5× faster than hmac.digest(), which sets the key up again for every mobile."""
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def digest(mobile: str) -> str:
        h = inner.copy()
        h.update(mobile.encode())
        o = outer.copy()
        o.update(h.digest())
        return o.hexdigest()

    return digest


class RowParser:
    """Turns one row's cells into a staged tuple (STAGE_COLUMNS) or raises ValueInvalid (MemberDataError for a
    row's own faults, the parsers' ValueInvalid for a value).

    Runs a million times per file, so it is written for speed: the cells are picked with one
    itemgetter, the common shapes (an 11-digit mobile, a plain integer) take a short path, and the
    full parsers in portal.parsers handle everything else and word the errors."""

    def __init__(self, *, header: list[str], store_ids: dict[str, int]):
        self.store_ids = store_ids
        fields, unknown = {}, []
        for position, label in enumerate(header):
            name = COLUMNS.get(label.strip().lstrip("\ufeff")) or COLUMNS.get(label.strip().lower())
            if name is None:
                if label.strip():
                    unknown.append(label.strip())
                continue
            if name in fields:
                raise MemberImportError(_("表头中“%(column)s”列重复") % {"column": label.strip()})
            fields[name] = position
        expected = "、".join(COLUMNS)
        if unknown or "member_no" not in fields:
            problem = (_("未知列：%(columns)s") % {"columns": "、".join(unknown[:10])} if unknown
                       else _("缺少“会员号”列"))
            raise MemberImportError(_("文件表头不正确（%(problem)s）。应为：%(expected)s") % {
                "problem": problem, "expected": expected})
        self.width = len(header)
        # A missing optional column reads as an empty cell appended at the end of the row.
        self.pad = len(fields) < len(COLUMNS)
        self.pick = operator.itemgetter(*(fields.get(name, self.width) for name in COLUMNS.values()))
        self.hash = _hmac_sha256_hex(settings.MEMBER_MOBILE_HASH_KEY.encode())
        # Translated once: gettext per row would cost more than the validation itself.
        self.labels = {"points": _("积分"), "spend": _("累计消费"), "orders": _("消费次数"), "date": _("最近消费日")}

    def parse(self, cells: list[str]) -> tuple:
        if len(cells) != self.width:
            if len(cells) > self.width and any(c.strip() for c in cells[self.width:]):
                raise MemberDataError(_("本行有 %(n)d 列，多于表头的 %(width)d 列（单元格中的逗号要用引号括起来）") % {
                    "n": len(cells), "width": self.width})
            cells = (cells + [""] * self.width)[: self.width]  # trailing empty cells left out by some tools
        (member_no, mobile, unionid, name, level, points, spend, orders, last_on, store) = map(
            str.strip, self.pick([*cells, ""] if self.pad else cells))
        if not member_no:
            raise MemberDataError(_("会员号不能为空"))
        if len(member_no) > MEMBER_NO_MAX:
            raise MemberDataError(_("会员号超过 %(max)d 个字符") % {"max": MEMBER_NO_MAX})
        hashed: str | None
        masked: str | None
        if mobile:
            if not (len(mobile) == 11 and mobile[0] == "1" and mobile.isdigit() and mobile.isascii()):
                mobile = mobile_normalize(mobile)
            hashed, masked = self.hash(mobile), f"{mobile[:3]}****{mobile[7:]}"
        else:
            hashed = masked = None
        if len(unionid) > UNIONID_MAX or len(name) > NAME_MAX or len(level) > LEVEL_MAX:
            label = (_("UnionID") if len(unionid) > UNIONID_MAX else _("姓名") if len(name) > NAME_MAX
                     else _("等级"))
            raise MemberDataError(_("%(label)s过长") % {"label": label})
        if "\0" in member_no or "\0" in unionid or "\0" in name or "\0" in level:
            raise MemberDataError(_("单元格中含有空字符（NUL），请检查导出文件"))
        if store:
            store_id = self.store_ids.get(store)
            if store_id is None:
                # The same words as the web import and the API: another scope's code reads like an unknown one.
                raise MemberDataError(_("归属门店编码“%(value)s”不存在或不在您的权限范围内") % {"value": store[:32]})
        else:
            store_id = None
        labels = self.labels
        return (member_no, hashed, masked, unionid or None, name or None, level or None,
                int_parse(points, label=labels["points"], minimum=-INT_MAX) if points else None,
                amount_parse(spend, label=labels["spend"]) if spend else None,
                int_parse(orders, label=labels["orders"]) if orders else None,
                date_parse(last_on, label=labels["date"]) if last_on else None,
                store_id)


# -- the reader thread ------------------------------------------------------------------------------

class _Errors:
    def __init__(self):
        self.shown: list[dict] = []
        self.total = 0

    def add(self, line: int, message: str) -> None:
        self.total += 1
        if len(self.shown) < ERRORS_SHOWN:
            self.shown.append({"line": line, "message": message})

    def as_json(self, notes: list[str]) -> list[dict]:
        rows = list(self.shown)
        if self.total > len(self.shown):
            rows.append({"line": None, "message": _("另有 %(n)d 行错误未列出（共 %(total)d 行有错误）") % {
                "n": self.total - len(self.shown), "total": self.total}})
        rows += [{"line": None, "message": note} for note in notes]
        return rows


@dataclass
class ImportTimings:
    """Where an import's time went, in seconds (the benchmark prints them). The reader thread's
    figures overlap the importing thread's: their sum is more than the wall time."""

    read_validate: float = 0.0  # reader thread: CSV/XLSX parsing, validation, hashing
    copy: float = 0.0  # reader thread: TRUNCATE + binary COPY of each chunk into the staging table
    wait_for_rows: float = 0.0  # importing thread idle: the COPYs, plus any time Python was the bottleneck
    write: float = 0.0  # importing thread: the per-chunk INSERT/UPDATE, foreign key checks included
    analyze: float = 0.0
    unify: float = 0.0
    commit: float = 0.0
    total: float = 0.0
    chunks: int = 0

    def summary(self) -> str:
        return " ".join(f"{name}={value:.2f}s" if isinstance(value, float) else f"{name}={value}"
                        for name, value in self.__dict__.items())


_END = object()


class _ChunkReader:
    """Reads and validates the file in a thread, CHUNK_ROWS good rows at a time, and COPYs each chunk
    into the staging table while the importing thread waits; then, while the database writes that
    chunk, it reads the next: on two cores Python's work and PostgreSQL's overlap.

    The COPY runs in this thread, on the import's own connection (its transaction, its TEMP table),
    strictly between the importing thread's statements (``stage_free``). Done by the importing
    thread instead, each 32 KB COPY buffer sent gave up the GIL to this busy thread and waited up
    to 5 ms to get it back: a third of the import's wall time at 1 M rows, measured.

    A chunk is a dict member_no → staged row, so a number repeated within a chunk keeps its last
    line. The thread also writes the progress, on its own connection, so the admin sees it while
    the import's transaction is still open."""

    def __init__(self, *, opened: OpenedFile, parser: RowParser, errors: _Errors, job: MemberImport,
                 progress: Callable[[MemberImport], None], timings: ImportTimings, database):
        self.opened, self.parser, self.errors, self.job, self.progress = opened, parser, errors, job, progress
        self.timings = timings
        self.database = database  # the importing thread's psycopg connection
        self.rows_read = 0
        self.rows_good = 0
        self.chunks: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.stage_free = threading.Event()
        self.stage_free.set()
        self.thread = threading.Thread(target=self._run, name=f"member-import-{job.pk}", daemon=True)

    def __iter__(self):
        """Yields the size of each staged chunk; asking for the next one frees the staging table."""
        self.thread.start()
        while True:
            started = time.perf_counter()
            item = self.chunks.get()
            self.timings.wait_for_rows += time.perf_counter() - started
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            self.stage_free.set()

    def close(self) -> None:
        self.stop.set()
        self.stage_free.set()
        while self.thread.is_alive():
            try:
                self.chunks.get(timeout=0.1)  # unblock a put() waiting for room
            except queue.Empty:
                pass
        self.thread.join()

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.chunks.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def _stage(self, chunk: dict[str, tuple]) -> None:
        """TRUNCATE + binary COPY the chunk, once the importing thread is done with the previous one."""
        self.stage_free.wait()
        if self.stop.is_set():
            return
        self.stage_free.clear()
        started = time.perf_counter()
        with self.database.cursor() as cursor:
            cursor.execute(f"TRUNCATE {STAGE}")
            with cursor.copy(f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(STAGE_TYPES)
                write_row = copy.write_row
                for row in chunk.values():
                    write_row(row)
        self.timings.copy += time.perf_counter() - started
        self._put(len(chunk))

    def _run(self) -> None:
        busy_since = time.perf_counter()
        try:
            parse, add_error, chunk, limit, count = self.parser.parse, self.errors.add, {}, FIRST_CHUNK_ROWS, 0
            for count, (line, cells) in enumerate(self.opened.rows, start=1):
                if not any(cells):
                    continue  # blank lines are not errors
                try:
                    row = parse(cells)
                except ValueInvalid as exc:
                    add_error(line, str(exc))
                    continue
                chunk[row[0]] = row
                self.rows_good += 1
                if len(chunk) == limit:
                    self.rows_read = count
                    self.timings.read_validate += time.perf_counter() - busy_since
                    self._stage(chunk)
                    self._report()
                    busy_since = time.perf_counter()
                    chunk, limit = {}, CHUNK_ROWS
                    if self.stop.is_set():
                        return
            self.rows_read = count
            self.timings.read_validate += time.perf_counter() - busy_since
            if chunk:
                self._stage(chunk)
            self._put(_END)
        except BaseException as exc:  # decoding errors, broken CSV quoting, COPY … handed to the importing thread
            self._put(exc)
        finally:
            connection.close()  # this thread's own connection, used for progress

    def _report(self) -> None:
        _job_update(self.job, rows_done=self.rows_read, rows_total=max(self.job.rows_total, self.rows_read))
        self.progress(self.job)


# -- writing ----------------------------------------------------------------------------------------

_VALUES = STAGE_COLUMNS[1:]  # the member's columns an import writes (member_no is the key)
# What a new member gets for a blank cell: the model's defaults.
_DEFAULTS = {"mobile_hash": "''", "mobile_masked": "''", "unionid": "''", "name": "''", "level": "''",
             "points": "0", "lifetime_spend": "0", "order_count": "0", "last_purchase_on": "NULL",
             "home_store_id": "NULL"}


def _merged(column: str) -> str:
    """A staged value over the member's current one, over the default (a blank never erases)."""
    staged = f"s.{column}::numeric(14, 2)" if column == "lifetime_spend" else f"s.{column}"
    return f"COALESCE({staged}, m.{column}, {_DEFAULTS[column]})"


_COLUMNS = ", ".join(_VALUES)

# One statement per chunk, with no join the planner could get wrong (it plans from statistics that
# an import itself makes stale: autovacuum may analyze the members mid-import and count 0 rows).
# ``src`` probes member_no once per staged row (LATERAL … LIMIT 1 is always an index probe) and
# merges the file's values over the member's; unchanged members drop out there, neither written
# nor locked. New members: a plain INSERT (ON CONFLICT's speculative insertion costs 20 % more,
# measured). Changed members: INSERT … ON CONFLICT DO UPDATE, whose conflict check is an index
# probe too; it writes only if the row is still as ``src`` read it (same updated_at), so a
# concurrent API write to a column the file leaves blank is not overwritten with the value read
# before it: that row is left for the next round (``stale``), which reads it again.
# TOUCHED gets the ids the unification that follows must look at: new members, and members whose
# unionid or mobile changed (a new points balance cannot change who a member is).
CHUNK_WRITE_SQL = f"""
WITH src AS MATERIALIZED (
    SELECT s.member_no, m.id AS member_id, m.updated_at AS seen_at,
           {", ".join(f"{_merged(c)} AS {c}" for c in _VALUES)},
           m.id IS NOT NULL AND ({", ".join(f"m.{c}" for c in _VALUES)})
               IS DISTINCT FROM ({", ".join(_merged(c) for c in _VALUES)}) AS changed,
           (m.unionid, m.mobile_hash) IS DISTINCT FROM ({_merged("unionid")}, {_merged("mobile_hash")}) AS relinks
    FROM {STAGE} s
    LEFT JOIN LATERAL (SELECT * FROM customers_member m0 WHERE m0.member_no = s.member_no LIMIT 1) m ON true
), ins AS (
    INSERT INTO customers_member (member_no, {_COLUMNS}, updated_at)
    SELECT member_no, {_COLUMNS}, now() FROM src WHERE member_id IS NULL
    RETURNING id
), upd AS (
    INSERT INTO customers_member AS t (member_no, {_COLUMNS}, updated_at)
    SELECT member_no, {_COLUMNS}, seen_at FROM src WHERE changed
    ON CONFLICT (member_no) DO UPDATE SET ({_COLUMNS}, updated_at) = (
        {", ".join(f"EXCLUDED.{c}" for c in _VALUES)}, now())
    WHERE t.updated_at = EXCLUDED.updated_at
    RETURNING t.id, t.member_no, t.xmax = 0 AS inserted
), touched AS (
    INSERT INTO {TOUCHED} (id)
    SELECT id FROM ins
    UNION ALL
    SELECT upd.id FROM upd JOIN src USING (member_no) WHERE upd.inserted OR src.relinks
)
SELECT (SELECT count(*) FROM ins) + (SELECT count(*) FROM upd WHERE inserted),
       (SELECT count(*) FROM upd WHERE NOT inserted),
       (SELECT count(*) FROM src WHERE changed) - (SELECT count(*) FROM upd)
"""
STALE_ROUNDS = 10  # rounds for rows changed by someone else meanwhile (one is the rule)

# The home store's foreign key is DEFERRABLE INITIALLY DEFERRED (Django's default): its checks would
# queue up for the whole file (memory for 10 M rows) and run after the last chunk, when nothing else
# overlaps them. Checked per chunk statement instead, they run while Python reads the next chunk.
DEFERRED_FKS_SQL = """
SELECT conname FROM pg_constraint
WHERE conrelid = 'customers_member'::regclass AND contype = 'f' AND condeferrable AND condeferred
"""


@dataclass
class _Totals:
    staged: int = 0  # good rows
    distinct: int = 0  # after keeping the last line of a number repeated within a chunk
    created: int = 0
    updated: int = 0


def _chunk_write(cursor, staged: int, totals: _Totals, timings: ImportTimings) -> None:
    """Insert the staged chunk's new members and update its changed ones."""
    started = time.perf_counter()
    for _round in range(STALE_ROUNDS):
        cursor.execute(CHUNK_WRITE_SQL)
        created, updated, stale = cursor.fetchone()
        totals.created += created
        totals.updated += updated
        if not stale:
            break
        logger.info("member import: %d members changed by someone else meanwhile, merging again", stale)
    else:
        raise MemberImportError(_("导入期间有 %(n)d 个会员被其他来源反复修改，未写入任何数据，请稍后重新导入") % {
            "n": stale})
    timings.write += time.perf_counter() - started
    timings.chunks += 1
    totals.distinct += staged


def _drop_temp_tables(cursor) -> None:
    for table in (STAGE, TOUCHED):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _deferred_fks(cursor) -> list[str]:
    cursor.execute(DEFERRED_FKS_SQL)
    return [connection.ops.quote_name(name) for (name,) in cursor.fetchall()]


# -- running ----------------------------------------------------------------------------------------

def _job_update(job: MemberImport, **values) -> None:
    for name, value in values.items():
        setattr(job, name, value)
    MemberImport.objects.filter(pk=job.pk).update(**values)


def _lost_a_race(exc: DatabaseError) -> bool:
    """The import collided with another writer, and running the file again will succeed: a member
    number it saw as new was created meanwhile (by the API, or another import), or two imports
    creating the same new members deadlocked."""
    cause = exc.__cause__
    if getattr(cause, "sqlstate", None) == DEADLOCK_DETECTED:
        return True
    return isinstance(exc, IntegrityError) and (
        getattr(getattr(cause, "diag", None), "constraint_name", None) == MEMBER_NO_CONSTRAINT)


FINISHED = (MemberImport.Status.DONE, MemberImport.Status.FAILED)  # never run again


def member_import_run(*, job: MemberImport, progress: Callable[[MemberImport], None] | None = None,
                      timings: ImportTimings | None = None) -> MemberImport:
    """Run a queued (or interrupted) import job to the end. Idempotent: a finished job is left alone.
    ``timings``, if given, is filled with where the time went."""
    # A second delivery of the same job (acks_late) skips it; a worker that dies releases the lock with its
    # connection, so the job can be run again.
    with session_lock_try(IdLock.MEMBER_IMPORT, job.pk) as got:
        job.refresh_from_db()
        if not got or job.status in FINISHED:
            return job
        try:
            for attempt in range(1, ATTEMPTS + 1):
                _job_update(job, status=MemberImport.Status.RUNNING, rows_done=0, rows_total=0, rows_created=0,
                            rows_updated=0, errors=[], finished_at=None)
                try:
                    _import(job, progress or (lambda _job: None), timings or ImportTimings())
                    break
                except DatabaseError as exc:
                    if attempt == ATTEMPTS or not _lost_a_race(exc):
                        raise
                    logger.warning("member import %s: collided with another writer (%s); run %d again",
                                   job.pk, exc, attempt + 1)
        except (MemberImportError, UnicodeDecodeError, csv.Error) as exc:
            message = str(exc) if isinstance(exc, MemberImportError) else _(
                "文件无法读取（第 %(line)s 行附近：%(error)s）。请另存为 UTF-8 或 GBK 编码的 CSV，或 .xlsx 文件") % {
                "line": job.rows_done + 1, "error": exc}
            _job_update(job, status=MemberImport.Status.FAILED, errors=[{"line": None, "message": message}],
                        finished_at=timezone.now())
        except Exception as exc:
            logger.exception("member import %s failed", job.pk)
            _job_update(job, status=MemberImport.Status.FAILED, finished_at=timezone.now(),
                        errors=[{"line": None, "message": _("导入失败，未写入任何数据：%(error)s") % {"error": exc}}])
            raise
        finally:
            with connection.cursor() as cursor:
                _drop_temp_tables(cursor)
            if job.status in FINISHED:
                member_import_file_remove(job=job)  # done or failed for good: the mobiles leave the disk
    return job


def _stores_of_importer(job: MemberImport):
    """The worker re-applies the uploader's scope when the job runs: member imports are HQ's (the file may
    touch any store's members), so an uploader who no longer has HQ scope imports nothing. A job without an
    uploader was made on the server by ``manage.py import_members``."""
    from stores.access.scoping import user_scope
    from stores.models import Store

    if job.created_by_id is None:
        return Store.objects.all()
    if not user_scope(job.created_by).is_hq:
        raise MemberImportError(_("导入人已没有总部权限，会员导入只由总部执行：未导入任何数据"))
    return Store.objects.for_user(job.created_by)


def _import(job: MemberImport, progress: Callable[[MemberImport], None], timings: ImportTimings) -> None:
    """One transaction: the file's members are all written, or (file unreadable) none."""
    started = time.perf_counter()
    errors = _Errors()
    totals = _Totals()
    stores = _stores_of_importer(job)
    with job.file.open("rb") as upload:
        opened = member_file_open(getattr(upload, "file", upload))
        parser = RowParser(header=opened.header, store_ids=dict(stores.values_list("code", "pk")))
        _job_update(job, rows_total=opened.rows_estimate)
        progress(job)
        reader = None
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL work_mem = '256MB'")
                    fks = _deferred_fks(cursor)
                    if fks:
                        cursor.execute(f"SET CONSTRAINTS {', '.join(fks)} IMMEDIATE")
                    _drop_temp_tables(cursor)
                    cursor.execute(STAGE_TABLE_SQL)
                    cursor.execute(f"CREATE TEMP TABLE {TOUCHED} (id bigint)")
                    reader = _ChunkReader(opened=opened, parser=parser, errors=errors, job=job, progress=progress,
                                          timings=timings, database=connection.connection)
                    for staged in reader:
                        _chunk_write(cursor, staged, totals, timings)
                    totals.staged = reader.rows_good
                    if reader.rows_read and not totals.staged:
                        first = errors.shown[0]
                        message = _("所有 %(n)d 行都有错误，未导入任何数据；第一处错误：第 %(line)s 行 %(message)s")
                        raise MemberImportError(message % {"n": errors.total, "line": first["line"],
                                                           "message": first["message"]})
                    _import_finish(cursor, job, reader.rows_read, totals, errors, timings)
                    if fks:  # back to the constraints' own timing, for a caller's enclosing transaction
                        cursor.execute(f"SET CONSTRAINTS {', '.join(fks)} DEFERRED")
                committing = time.perf_counter()
            timings.commit += time.perf_counter() - committing
        finally:
            if reader is not None:
                reader.close()
    timings.total += time.perf_counter() - started
    progress(job)


def _import_finish(cursor, job: MemberImport, rows_read: int, totals: _Totals, errors: _Errors,
                   timings: ImportTimings) -> None:
    logger.info("member import %s: %d rows, %d created, %d updated", job.pk, rows_read, totals.created,
                totals.updated)
    started = time.perf_counter()
    written = totals.created + totals.updated
    if written > ANALYZE_AFTER_ROWS:
        # The plans of what follows need today's row counts when the file changed them much (or when
        # autovacuum counted the members while this transaction's were invisible to it: 0 rows). A
        # file small next to the table skips the 30,000 random page reads of an ANALYZE at 70 M rows.
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'customers_member'::regclass")
        if written > cursor.fetchone()[0] * ANALYZE_AFTER_SHARE:
            cursor.execute("ANALYZE customers_member")
    analyzed = time.perf_counter()
    cursor.execute(f"SELECT EXISTS (SELECT FROM {TOUCHED})")
    unified = members_unify_scope_table(table=TOUCHED) if cursor.fetchone()[0] else None
    timings.analyze += analyzed - started
    timings.unify += time.perf_counter() - analyzed
    notes = []
    if totals.staged > totals.distinct:
        notes.append(_("%(n)d 行的会员号在文件中重复出现，以最后一次出现的行为准") % {
            "n": totals.staged - totals.distinct})
    if unified and unified.conflicts:
        notes.append(_("与企业微信客户匹配：%(summary)s") % {"summary": unified.summary()})
    _job_update(job, status=MemberImport.Status.DONE, rows_done=rows_read, rows_total=rows_read,
                rows_created=totals.created, rows_updated=totals.updated, errors=errors.as_json(notes),
                finished_at=timezone.now())


# -- starting ---------------------------------------------------------------------------------------

ACCEPTED_SUFFIXES = (".csv", ".xlsx")
REQUEUE_AFTER_MINUTES = 10


def member_file_check(binary) -> None:
    """Fail fast at upload: the format and header are read now, the rows later by the job."""
    head = binary.read(SNIFF_BYTES)
    binary.seek(0)
    if not head:
        raise MemberImportError(_("文件是空的"))
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise MemberImportError(_("不支持旧版 Excel（.xls）文件：请另存为 .xlsx 或 CSV"))
    if head.startswith(b"PK\x03\x04"):
        header = _open_xlsx(binary).header
    else:
        _xlsx_in_name_only(binary)
        encoding = _sniff_encoding(head)
        first_line = head.decode(encoding, errors="ignore").splitlines()[:1] or [""]
        header = next(csv.reader(first_line), [])
    binary.seek(0)
    RowParser(header=header, store_ids={})


def member_import_create(*, file: File, by: User | None = None, name: str = "", enqueue: bool = True) -> MemberImport:
    """A member file for the fast path, as the admin's upload form and ``import_members`` make one: its name,
    format and header are checked now (a MemberImportError, nothing stored), the job is stored queued with
    ``by`` as its creator (a job runs only while that creator has HQ scope), and a worker runs it once the
    upload commits. ``enqueue=False``: the caller runs it (``import_members --sync``)."""
    name = name or file.name or ""
    if not name.lower().endswith(ACCEPTED_SUFFIXES):
        raise MemberImportError(_("只支持 CSV 或 .xlsx 文件"))
    member_file_check(file)
    job = MemberImport(status=MemberImport.Status.QUEUED, created_by=by)
    job.file.save(name, file, save=False)
    job.save()
    if enqueue:
        member_import_enqueue(job=job)
    return job


def member_import_enqueue(*, job: MemberImport) -> None:
    """Run the job on a worker once the upload is committed."""
    enqueue_after_commit(member_import_task, job_id=job.pk)


def member_imports_requeue() -> int:
    """Jobs still queued (broker was down) or left running by a worker that died: send them again.
    A job actually running holds its advisory lock, so the second delivery skips it."""
    cutoff = timezone.now() - timedelta(minutes=REQUEUE_AFTER_MINUTES)
    jobs = list(MemberImport.objects.filter(
        status__in=[MemberImport.Status.QUEUED, MemberImport.Status.RUNNING], created_at__lt=cutoff)[:20])
    for job in jobs:
        member_import_enqueue(job=job)
    return len(jobs)


# -- the uploaded files -------------------------------------------------------------------------------

PURGE_BATCH = 200


def member_import_file_remove(*, job: MemberImport) -> bool:
    """Delete the job's uploaded file (it holds plaintext mobiles) and record when; the job keeps the file's
    name, its counts and its errors. False if there was nothing to delete or the storage failed (the purge
    job tries again)."""
    if job.file_removed_at is not None or not job.file.name:
        return False
    try:
        job.file.storage.delete(job.file.name)
    except OSError:
        logger.exception("member import %s: could not delete %s", job.pk, job.file.name)
        return False
    _job_update(job, file_removed_at=timezone.now())
    return True


def member_import_files_purge(*, now: datetime | None = None) -> int:
    """Uploaded member files older than XIAOER_MEMBER_FILE_RETENTION_HOURS are deleted whatever became of
    their job; a job that never finished (and is not running now) fails with a message saying so. Returns
    how many files were deleted (at most PURGE_BATCH a run; the beat job comes back)."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.XIAOER_MEMBER_FILE_RETENTION_HOURS)
    removed = 0
    jobs = (MemberImport.objects.filter(file_removed_at__isnull=True, created_at__lt=cutoff).exclude(file="")
            .order_by("pk")[:PURGE_BATCH])
    for job in jobs:
        if job.status not in FINISHED:
            with session_lock_try(IdLock.MEMBER_IMPORT, job.pk) as got:
                if not got:
                    continue  # a worker is importing it right now
                job.refresh_from_db()
                if job.status not in FINISHED:
                    message = _("导入在 %(hours)s 小时内没有完成，上传的文件已按保留期限删除，未导入任何数据："
                                "请重新上传") % {"hours": settings.XIAOER_MEMBER_FILE_RETENTION_HOURS}
                    _job_update(job, status=MemberImport.Status.FAILED, finished_at=now,
                                errors=[{"line": None, "message": message}])
        removed += member_import_file_remove(job=job)
    return removed
