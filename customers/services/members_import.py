"""The fast path for member files with millions of rows: stream, validate, COPY, set-based upsert.

    a reader thread: read (CSV streamed; XLSX with openpyxl read_only) → validate each row in Python
        (cheap string checks; bad rows are collected with their line numbers) → hand over chunks
        of good rows, and write the progress
    the importing thread, in ONE transaction: per chunk, COPY into a TEMP staging table, keep the
        last line of each member number, upsert (members.MEMBER_UPSERT_SQL, one statement); then
        unify the written members with customers and mark the job done.
The two overlap (Python reads chunk n+1 while PostgreSQL upserts chunk n): on two cores that is
most of the speed. Chunks are applied in file order, so the last line of a member number wins.

A file that cannot be read as a whole (not CSV/XLSX, wrong columns, an encoding that is neither
UTF-8 — with or without BOM — nor GBK) fails with a message and writes nothing. Importing the
same file twice writes nothing the second time.
"""

from __future__ import annotations

import codecs
import csv
import hmac
import io
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import MemberImport
from customers.services.members import (
    INT_MAX,
    LEVEL_MAX,
    MEMBER_NO_MAX,
    NAME_MAX,
    STAGE_COLUMNS,
    STAGE_TABLE_SQL,
    UNIONID_MAX,
    MemberDataError,
    amount_parse,
    date_parse,
    int_parse,
    member_upsert_sql,
    members_unify_scope_table,
    mobile_masked,
    mobile_normalize,
)

logger = logging.getLogger(__name__)

# File header → field. 会员号 is required; a missing optional column counts as blank (keeps values).
COLUMNS = {"会员号": "member_no", "手机号": "mobile", "unionid": "unionid", "姓名": "name", "等级": "level",
           "积分": "points", "累计消费": "lifetime_spend", "消费次数": "order_count", "最近消费日": "last_purchase_on",
           "归属门店编码": "store_code"}
ERRORS_SHOWN = 1000
CHUNK_ROWS = 50_000  # rows per COPY + upsert; progress is written after each
FIRST_CHUNK_ROWS = 10_000  # a small first chunk starts the database sooner
SNIFF_BYTES = 64 * 1024
STAGE = "member_import_stage"
SOURCE = "member_import_src"
TOUCHED = "member_import_touched"
ANALYZE_AFTER_ROWS = 10_000
LOCK_NAMESPACE = 7_301  # pg_advisory_lock(namespace, job id): one runner per job


class MemberImportError(Exception):
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
    reader = csv.reader(text)
    try:
        header = next(reader)
    except StopIteration:
        raise MemberImportError(_("文件是空的")) from None

    def rows():
        for cells in reader:
            yield reader.line_num, cells

    return OpenedFile(header=header, rows=rows(), rows_estimate=0)


def _open_xlsx(binary) -> OpenedFile:
    import openpyxl

    try:
        book = openpyxl.load_workbook(binary, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException …
        raise MemberImportError(_("Excel 文件无法打开：%(error)s") % {"error": exc}) from exc
    sheet = book.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    try:
        header = [cell_text(v) for v in next(values)]
    except StopIteration:
        raise MemberImportError(_("文件是空的")) from None

    def rows():
        for line, cells in enumerate(values, start=2):
            yield line, [cell_text(v) for v in cells]
        book.close()

    return OpenedFile(header=header, rows=rows(), rows_estimate=max((sheet.max_row or 1) - 1, 0))


def _count_lines(binary) -> int:
    """Data rows in a CSV, for the progress bar (quoted line breaks make it an estimate)."""
    binary.seek(0)
    lines, last = 0, b"\n"
    while chunk := binary.read(1 << 20):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    binary.seek(0)
    return max(lines + (last != b"\n") - 1, 0)


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
    estimate = _count_lines(binary)
    opened = _open_csv(binary, head)
    opened.rows_estimate = estimate
    return opened


# -- validating -------------------------------------------------------------------------------------

class RowParser:
    """Turns one row's cells into a staging tuple (STAGE_COLUMNS) or raises MemberDataError."""

    def __init__(self, *, header: list[str], store_codes: set[str]):
        self.store_codes = store_codes
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
        self.positions = [fields.get(name) for name in COLUMNS.values()]
        self.key = settings.MEMBER_MOBILE_HASH_KEY.encode()
        # Translated once: gettext per row would cost more than the validation itself.
        self.labels = {"points": _("积分"), "spend": _("累计消费"), "orders": _("消费次数"), "date": _("最近消费日")}

    def parse(self, line: int, cells: list[str]) -> tuple:
        if len(cells) != self.width:
            if len(cells) > self.width and any(c.strip() for c in cells[self.width:]):
                raise MemberDataError(_("本行有 %(n)d 列，多于表头的 %(width)d 列（单元格中的逗号要用引号括起来）") % {
                    "n": len(cells), "width": self.width})
            cells = (cells + [""] * self.width)[: self.width]  # trailing empty cells left out by some tools
        (member_no, mobile, unionid, name, level, points, spend, orders, last_on, store) = (
            cells[p].strip() if p is not None else "" for p in self.positions)
        if not member_no:
            raise MemberDataError(_("会员号不能为空"))
        if len(member_no) > MEMBER_NO_MAX:
            raise MemberDataError(_("会员号超过 %(max)d 个字符") % {"max": MEMBER_NO_MAX})
        if mobile:
            mobile = mobile_normalize(mobile)
            hashed, masked = hmac.digest(self.key, mobile.encode(), "sha256").hex(), mobile_masked(mobile)
        else:
            hashed = masked = None
        if len(unionid) > UNIONID_MAX or len(name) > NAME_MAX or len(level) > LEVEL_MAX:
            label = (_("UnionID") if len(unionid) > UNIONID_MAX else _("姓名") if len(name) > NAME_MAX
                     else _("等级"))
            raise MemberDataError(_("%(label)s过长") % {"label": label})
        if store and store not in self.store_codes:
            raise MemberDataError(_("归属门店编码“%(value)s”不存在") % {"value": store[:32]})
        labels = self.labels
        return (line, member_no, hashed, masked, unionid or None, name or None, level or None,
                int_parse(points, label=labels["points"], minimum=-INT_MAX) if points else None,
                amount_parse(spend, label=labels["spend"]) if spend else None,
                int_parse(orders, label=labels["orders"]) if orders else None,
                date_parse(last_on, label=labels["date"]) if last_on else None,
                store or None)


# -- staging and upserting --------------------------------------------------------------------------

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


_END = object()


class _ChunkReader:
    """Reads and validates the file in a thread, CHUNK_ROWS good rows at a time, while the database
    upserts the previous chunk: on two cores Python's work and PostgreSQL's overlap. The thread also
    writes the progress, on its own connection, so the admin sees it while the import's transaction
    is still open."""

    def __init__(self, *, opened: OpenedFile, parser: RowParser, errors: _Errors, job: MemberImport,
                 progress: Callable[[MemberImport], None]):
        self.opened, self.parser, self.errors, self.job, self.progress = opened, parser, errors, job, progress
        self.rows_read = 0
        self.chunks: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"member-import-{job.pk}", daemon=True)

    def __iter__(self):
        self.thread.start()
        while True:
            item = self.chunks.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stop.set()
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

    def _run(self) -> None:
        try:
            parse, add_error, chunk, limit = self.parser.parse, self.errors.add, [], FIRST_CHUNK_ROWS
            for line, cells in self.opened.rows:
                self.rows_read += 1
                if not any(cells):
                    continue  # blank lines are not errors
                try:
                    chunk.append(parse(line, cells))
                except MemberDataError as exc:
                    add_error(line, str(exc))
                    continue
                if len(chunk) == limit:
                    self._put(chunk)
                    self._report()
                    chunk, limit = [], CHUNK_ROWS
                if self.stop.is_set():
                    return
            if chunk:
                self._put(chunk)
            self._put(_END)
        except BaseException as exc:  # decoding errors, broken CSV quoting … handed to the importing thread
            self._put(exc)
        finally:
            connection.close()  # this thread's own connection, used for progress

    def _report(self) -> None:
        _job_update(self.job, rows_done=self.rows_read, rows_total=max(self.job.rows_total, self.rows_read))
        self.progress(self.job)


IMPORT_UPSERT_SQL = """
WITH up AS ({upsert}), touched AS (INSERT INTO {touched} (id) SELECT id FROM up)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up
"""


@dataclass
class _Totals:
    staged: int = 0
    distinct: int = 0
    created: int = 0
    updated: int = 0


def _chunk_upsert(cursor, chunk: list[tuple], totals: _Totals) -> None:
    """COPY one chunk into the staging table, keep the last line of each member number, upsert."""
    cursor.execute(f"TRUNCATE {STAGE}")
    with cursor.copy(f"COPY {STAGE} ({', '.join(STAGE_COLUMNS)}) FROM STDIN") as copy:
        write_row = copy.write_row
        for row in chunk:
            write_row(row)
    totals.staged += len(chunk)
    source = STAGE
    if len({row[1] for row in chunk}) < len(chunk):  # a member number repeats: keep its last line
        cursor.execute(f"DROP TABLE IF EXISTS {SOURCE}")
        cursor.execute(f"CREATE TEMP TABLE {SOURCE} AS SELECT DISTINCT ON (member_no) * FROM {STAGE} "
                       f"ORDER BY member_no, line DESC")
        totals.distinct += cursor.rowcount
        source = SOURCE
    else:
        totals.distinct += len(chunk)
    cursor.execute(IMPORT_UPSERT_SQL.format(upsert=member_upsert_sql(source=source, dedupe=False), touched=TOUCHED))
    created, updated = cursor.fetchone()
    totals.created += created
    totals.updated += updated


def _drop_temp_tables(cursor) -> None:
    for table in (STAGE, SOURCE, TOUCHED):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


@contextmanager
def _job_lock(job_id: int):
    """A session advisory lock: a second delivery of the same job (acks_late) waits its turn or skips;
    a worker that dies releases it with its connection, so the job can be run again."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_NAMESPACE, job_id])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, job_id])


def _job_update(job: MemberImport, **values) -> None:
    for name, value in values.items():
        setattr(job, name, value)
    MemberImport.objects.filter(pk=job.pk).update(**values)


def member_import_run(*, job: MemberImport, progress: Callable[[MemberImport], None] | None = None) -> MemberImport:
    """Run a queued (or interrupted) import job to the end. Idempotent: a finished job is left alone."""
    with _job_lock(job.pk) as got:
        job.refresh_from_db()
        if not got or job.status in (MemberImport.Status.DONE, MemberImport.Status.FAILED):
            return job
        _job_update(job, status=MemberImport.Status.RUNNING, rows_done=0, rows_total=0, rows_created=0,
                    rows_updated=0, errors=[], finished_at=None)
        try:
            _import(job, progress or (lambda _job: None))
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
    return job


def _import(job: MemberImport, progress: Callable[[MemberImport], None]) -> None:
    """One transaction: the file's members are all written, or (file unreadable) none."""
    from stores.models import Store

    errors = _Errors()
    totals = _Totals()
    with job.file.open("rb") as upload:
        opened = member_file_open(getattr(upload, "file", upload))
        parser = RowParser(header=opened.header, store_codes=set(Store.objects.values_list("code", flat=True)))
        _job_update(job, rows_total=opened.rows_estimate)
        progress(job)
        reader = _ChunkReader(opened=opened, parser=parser, errors=errors, job=job, progress=progress)
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL work_mem = '256MB'")
                _drop_temp_tables(cursor)
                cursor.execute(STAGE_TABLE_SQL.format(name=STAGE))
                cursor.execute(f"CREATE TEMP TABLE {TOUCHED} (id bigint)")
                for chunk in reader:
                    _chunk_upsert(cursor.cursor, chunk, totals)
                if reader.rows_read and not totals.staged:
                    first = errors.shown[0]
                    message = _("所有 %(n)d 行都有错误，未导入任何数据；第一处错误：第 %(line)s 行 %(message)s")
                    raise MemberImportError(message % {"n": errors.total, "line": first["line"],
                                                       "message": first["message"]})
                _import_finish(cursor, job, reader.rows_read, totals, errors)
        finally:
            reader.close()
    progress(job)


def _import_finish(cursor, job: MemberImport, rows_read: int, totals: _Totals, errors: _Errors) -> None:
    logger.info("member import %s: %d rows, %d created, %d updated", job.pk, rows_read, totals.created,
                totals.updated)
    if totals.created + totals.updated > ANALYZE_AFTER_ROWS:
        cursor.execute("ANALYZE customers_member")  # the plans of what follows need today's row counts
    unified = members_unify_scope_table(table=TOUCHED) if totals.created or totals.updated else None
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
        encoding = _sniff_encoding(head)
        first_line = head.decode(encoding, errors="ignore").splitlines()[:1] or [""]
        header = next(csv.reader(first_line), [])
    binary.seek(0)
    RowParser(header=header, store_codes=set())


def member_import_enqueue(*, job: MemberImport) -> None:
    """Run the job on a worker once the upload is committed."""
    from customers.tasks.members import member_import_task
    from portal.tasks import enqueue_after_commit

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
