"""manage.py import_members FILE [--sync] [-v 2]: import a member CSV/XLSX through the fast path.

With --sync -v 2 it also prints where the time went (read+validate, COPY, write, unify …)."""

from __future__ import annotations

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from customers.members.imports import (
    ACCEPTED_SUFFIXES,
    ImportTimings,
    MemberImportError,
    member_import_create,
    member_import_run,
)
from customers.models import MemberImport


class Command(BaseCommand):
    help = "导入会员文件（CSV：UTF-8 或 GBK；或 .xlsx），走 COPY + 批量写入的快速通道"

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--sync", action="store_true", help="在本进程中执行并打印进度（默认交给 Celery）")

    def handle(self, *args, file: Path, sync: bool, **options):
        if not file.is_file():
            raise CommandError(f"找不到文件：{file}")
        if file.suffix.lower() not in ACCEPTED_SUFFIXES:
            raise CommandError("只支持 CSV 或 .xlsx 文件")
        with file.open("rb") as handle:
            try:
                job = member_import_create(file=File(handle), name=file.name, enqueue=not sync)
            except MemberImportError as exc:
                raise CommandError(str(exc)) from exc
        if not sync:
            self.stdout.write(f"导入任务 #{job.pk} 已排队，在管理后台“会员导入”中查看进度")
            return
        timings = ImportTimings()
        job = member_import_run(job=job, progress=self._progress, timings=timings)
        self.stdout.write("")
        if options["verbosity"] >= 2:
            self.stdout.write(f"  用时：{timings.summary()}")
        for error in job.errors[:20]:
            line = f"第 {error['line']} 行：" if error.get("line") is not None else ""
            self.stdout.write(f"  {line}{error['message']}")
        if job.status != MemberImport.Status.DONE:
            raise CommandError(f"导入任务 #{job.pk} 失败")
        self.stdout.write(self.style.SUCCESS(
            f"导入任务 #{job.pk} 完成：{job.rows_done} 行，新增 {job.rows_created}，更新 {job.rows_updated}"))

    def _progress(self, job: MemberImport) -> None:
        total = max(job.rows_total, job.rows_done)
        percent = f"{job.rows_done * 100 // total}%" if total else "?"
        self.stdout.write(f"\r  {job.rows_done:,} / {total:,} 行（{percent}）", ending="")
        self.stdout.flush()
