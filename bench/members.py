"""Member import at CRM scale: the fast path (stream → validate → COPY → one upsert) vs django-import-export.

    python -m bench members --scale 1000000   # rows in the generated CSV (small: 100,000)

The baseline is django-import-export's default row-by-row import (the admin's path, one
instance lookup, full_clean and save() per row) of the same file's first rows, extrapolated to
rows/s; both run in this process against the same database. Goal: ≥ 50,000 rows/s end to end.
"""

from __future__ import annotations

import csv
import random
import tempfile
from datetime import date, timedelta
from pathlib import Path

from bench.harness import result_line, timed

HEADER = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日", "归属门店编码"]
LEVELS = ["普通", "银卡", "金卡", "钻石"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
BASELINE_SECONDS = 20.0  # how long the row-by-row baseline may run
PREFIX = "BENCH"  # the benchmark's member numbers: it clears only its own rows (other benches share the DB)


def _bench_members_clear() -> None:
    """Delete the benchmark's members (not TRUNCATE: that would cascade to every customer)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET member_id = NULL WHERE member_id IN "
                       "(SELECT id FROM customers_member WHERE member_no LIKE %s)", [f"{PREFIX}%"])
        cursor.execute("DELETE FROM customers_member WHERE member_no LIKE %s", [f"{PREFIX}%"])


def member_csv_write(path: Path, *, rows: int, store_codes: list[str], bad_every: int = 0, seed: int = 7,
                     encoding: str = "utf-8") -> int:
    """A member file like a CRM export. Every ``bad_every``-th row gets a bad mobile. Returns bad rows."""
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
            writer.writerow([
                f"{PREFIX}{i:09d}", mobile if i % 5 else f"+86 {mobile[:3]}-{mobile[3:7]}-{mobile[7:]}",
                f"oUnion{i:022d}" if i % 3 == 0 else "", f"{SURNAMES[i % len(SURNAMES)]}{i % 97}先生",
                LEVELS[i % len(LEVELS)], rng.randint(0, 20000), f"{orders * rng.randint(10, 300)}.{i % 100:02d}",
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


def _fast_import(path: Path):
    from customers.services.members_import import member_import_run

    job = _job_for(path)
    member_import_run(job=job)
    job.refresh_from_db()
    assert job.status == "done", job.errors[:3]
    return job


def _baseline_rate(path: Path) -> tuple[int, float]:
    """django-import-export's default path, row by row, on the first rows for ~BASELINE_SECONDS."""
    import tablib
    from import_export.instance_loaders import ModelInstanceLoader

    from customers.resources.members import MemberResource

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
        job = _fast_import(path)
    assert Member.objects.filter(member_no__startswith=PREFIX).count() == scale and job.rows_created == scale
    with timed() as again:
        job2 = _fast_import(path)
    assert job2.rows_created == 0 and job2.rows_updated == 0
    for done in (job, job2):
        done.file.delete(save=False)  # the uploaded copies in media storage
        done.delete()
    _bench_members_clear()
    baseline_rows, baseline_rate = _baseline_rate(path)
    _bench_members_clear()
    rate = scale / fast.seconds
    print(f"rows={scale} file={size_mb:.0f}MB generate={generate.seconds:.1f}s fast_import={fast.seconds:.2f}s "
          f"fast_rate={rate:,.0f}rows/s reimport_unchanged={again.seconds:.2f}s "
          f"({scale / again.seconds:,.0f}rows/s) baseline_rows={baseline_rows} "
          f"baseline_rate={baseline_rate:,.0f}rows/s goal>=50,000rows/s")
    path.unlink()
    workdir.rmdir()
    return result_line(bench="members", value=rate, unit="rows/s", baseline=baseline_rate, higher_is_better=True)
