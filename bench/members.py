"""Member import at CRM scale: the fast path (stream → validate → COPY → set-based write) vs django-import-export.

    python -m bench members --scale 1000000   # rows in the generated CSV (small: 100,000)

The baseline is django-import-export's default row-by-row import (the admin's path, one
instance lookup, full_clean and save() per row) of the same file's first rows, extrapolated to
rows/s; both run in this process against the same database. Goal: ≥ 50,000 rows/s end to end.

Prints where the time went for the first import (all members new) and for a re-import of the
same file (nothing changes) and of a daily delta (one member in ten has new points): the reader
thread's read+validate time overlaps the importing thread's COPY and write time
(customers.members.imports.ImportTimings), and the CPU seconds of PostgreSQL's backend and
of this process say where the work is when the machine is shared. The RESULT is the first import.
"""

from __future__ import annotations

import csv
import os
import random
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from bench.harness import result_line, timed

HEADER = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日", "归属门店编码"]
LEVELS = ["普通", "银卡", "金卡", "钻石"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
BASELINE_SECONDS = 20.0  # how long the row-by-row baseline may run
CHANGED_EVERY = 10  # the daily-delta re-import changes one member in ten
PREFIX = "BENCH"  # the benchmark's member numbers: it clears only its own rows (other benches share the DB)


def _bench_members_clear() -> None:
    """Delete the benchmark's members (not TRUNCATE: that would cascade to every customer), then
    VACUUM: the next import should not pay for the dead rows and index entries of the last run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET member_id = NULL WHERE member_id IN "
                       "(SELECT id FROM customers_member WHERE member_no LIKE %s)", [f"{PREFIX}%"])
        cursor.execute("DELETE FROM customers_member WHERE member_no LIKE %s", [f"{PREFIX}%"])
        if cursor.rowcount:
            cursor.execute("VACUUM (ANALYZE) customers_member")


def member_csv_write(path: Path, *, rows: int, store_codes: list[str], bad_every: int = 0, seed: int = 7,
                     encoding: str = "utf-8", changed_every: int = 0) -> int:
    """A member file like a CRM export. Every ``bad_every``-th row gets a bad mobile; every
    ``changed_every``-th row has one point more than the same seed's file (a daily delta). Returns bad rows."""
    rng = random.Random(seed)
    start = date(2023, 1, 1)
    bad = 0
    with path.open("w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for i in range(rows):
            mobile = f"1{rng.randint(3, 9)}{i:09d}"
            if bad_every and i % bad_every == bad_every - 1:
                mobile, bad = "12345", bad + 1
            orders = rng.randint(0, 60)
            points = rng.randint(0, 20000) + (1 if changed_every and i % changed_every == 0 else 0)
            writer.writerow([
                f"{PREFIX}{i:09d}", mobile if i % 5 else f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
                f"oUnion{i:022d}" if i % 3 == 0 else "", f"{SURNAMES[i % len(SURNAMES)]}{i % 97}先生",
                LEVELS[i % len(LEVELS)], points, f"{orders * rng.randint(10, 300)}.{i % 100:02d}",
                orders, (start + timedelta(days=rng.randint(0, 1000))).isoformat() if orders else "",
                store_codes[i % len(store_codes)] if store_codes else "",
            ])
    return bad


def _stores() -> list[str]:
    from stores.models import Region, Store

    codes = list(Store.objects.order_by("code").values_list("code", flat=True)[:4000])
    if codes:
        return codes
    region, _ = Region.objects.get_or_create(code="BENCH", defaults={"name": "基准区域"})
    Store.objects.bulk_create([Store(code=f"BM{i:03d}", name=f"基准门店{i}", region=region) for i in range(50)])
    return [f"BM{i:03d}" for i in range(50)]


def _job_for(path: Path):
    from django.core.files import File

    from customers.models import MemberImport

    job = MemberImport()
    with path.open("rb") as handle:
        job.file.save(path.name, File(handle), save=False)
    job.save()
    return job


def _backend_cpu() -> Callable[[], float | None]:
    """CPU seconds used so far by this connection's PostgreSQL backend, when the server runs on this
    machine (the embedded one): on a contended machine CPU time says more than wall time."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        stat = Path(f"/proc/{cursor.fetchone()[0]}/stat")

    def read() -> float | None:
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    return read


def _fast_import(path: Path):
    from customers.members.imports import ImportTimings, member_import_run

    job = _job_for(path)
    timings = ImportTimings()
    backend_cpu = _backend_cpu()
    pg_before, py_before = backend_cpu(), time.process_time()
    member_import_run(job=job, timings=timings)
    pg_after, py_cpu = backend_cpu(), time.process_time() - py_before
    job.refresh_from_db()
    assert job.status == "done", job.errors[:3]
    pg_cpu = f"{pg_after - pg_before:.1f}s" if pg_before is not None and pg_after is not None else "n/a"
    return job, f"{timings.summary()}\n  cpu: postgres={pg_cpu} python={py_cpu:.1f}s (both threads)"


def _baseline_rate(path: Path) -> tuple[int, float]:
    """django-import-export's default path, row by row, on the first rows for ~BASELINE_SECONDS."""
    import tablib
    from import_export.instance_loaders import ModelInstanceLoader

    from customers.members.resources import MemberResource

    class DefaultMemberResource(MemberResource):
        class Meta(MemberResource.Meta):  # the library's defaults: one lookup and one save() per row
            instance_loader_class = ModelInstanceLoader
            use_bulk = False

    rows, seconds, chunk = 0, 0.0, 250
    with path.open(encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        while seconds < BASELINE_SECONDS:
            dataset = tablib.Dataset(headers=header)
            for _i, row in zip(range(chunk), reader, strict=False):
                dataset.append(row)
            if not len(dataset):
                break
            with timed() as t:
                result = DefaultMemberResource().import_data(dataset, dry_run=False, use_transactions=True)
            assert not result.has_errors() and not result.has_validation_errors()
            rows, seconds = rows + len(dataset), seconds + t.seconds
    return rows, rows / seconds


def bench_members(*, scale: int) -> str:
    from customers.models import Member

    codes = _stores()
    workdir = Path(tempfile.mkdtemp(prefix="xiaoer-bench-members-"))
    path = workdir / f"members-{scale}.csv"
    with timed() as generate:
        member_csv_write(path, rows=scale, store_codes=codes)
    size_mb = path.stat().st_size / 1e6
    _bench_members_clear()
    with timed() as fast:
        job, fast_phases = _fast_import(path)
    assert Member.objects.filter(member_no__startswith=PREFIX).count() == scale and job.rows_created == scale
    with timed() as again:
        job2, again_phases = _fast_import(path)
    assert job2.rows_created == 0 and job2.rows_updated == 0
    delta = workdir / f"members-{scale}-delta.csv"
    member_csv_write(delta, rows=scale, store_codes=codes, changed_every=CHANGED_EVERY)
    with timed() as changed:
        job3, changed_phases = _fast_import(delta)
    assert job3.rows_created == 0 and job3.rows_updated == len(range(0, scale, CHANGED_EVERY))
    for done in (job, job2, job3):
        done.file.delete(save=False)  # the uploaded copies in media storage
        done.delete()
    _bench_members_clear()
    baseline_rows, baseline_rate = _baseline_rate(path)
    _bench_members_clear()
    rate = scale / fast.seconds
    print(f"rows={scale} file={size_mb:.0f}MB generate={generate.seconds:.1f}s")
    print(f"fast_import (all new)={fast.seconds:.2f}s fast_rate={rate:,.0f}rows/s goal>=50,000rows/s")
    print(f"  phases: {fast_phases}")
    print(f"reimport_unchanged={again.seconds:.2f}s ({scale / again.seconds:,.0f}rows/s)")
    print(f"  phases: {again_phases}")
    print(f"reimport_1_in_{CHANGED_EVERY}_changed={changed.seconds:.2f}s ({scale / changed.seconds:,.0f}rows/s, "
          f"{job3.rows_updated} updated)")
    print(f"  phases: {changed_phases}")
    print(f"baseline (django-import-export row by row): rows={baseline_rows} rate={baseline_rate:,.0f}rows/s")
    for done in (path, delta):
        done.unlink()
    workdir.rmdir()
    return result_line(bench="members", value=rate, unit="rows/s", baseline=baseline_rate, higher_is_better=True)
