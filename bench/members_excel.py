"""The admin's member Excel import at the issue's acceptance size: preview and confirm of a 10,000-row .xlsx.

    XIAOER_DB_NAME=xiaoer_bench_excel python -m bench.members_excel [--rows 10000]

Both sides go through an admin view's import_action (preview) and process_import (confirm) in this
process, against the same database and the same files:
  ours      the registered MemberAdmin / MemberResource (customers/members/admin.py, members/resources.py)
  baseline  the stock django-import-export behaviour the admin had before: openpyxl cell by cell, a
            deepcopy + HTML diff + full_clean per row, every row rendered in the preview, the preview's
            inserts rolled back, bulk_update for changed members, one LogEntry per row.
Steps: preview of a file with 3 bad rows, preview of the fixed file, its confirm (all new), then a
re-import where every member changed (preview + confirm, updates). The baseline's update confirm runs
on the first 2,000 rows and is scaled to the file (Django's bulk_update took about a minute for 10,000).
RESULT value = preview + confirm of the clean file (s); baseline = the same, stock.
"""

from __future__ import annotations

import argparse
import io
import sys

from bench.harness import django_setup, result_line, timed

HEADER = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日", "归属门店编码"]
PREFIX = "BXL"
STORES = ("BXL001", "BXL002")
UPDATE_SAMPLE = 2_000


def _bad_lines(count: int) -> set[int]:
    return {min(19, count + 1), count // 2 + 2, count + 1}  # spreadsheet lines (line 1 is the header)


def _rows(count: int, *, bad: bool = False, bump: int = 0) -> list[list]:
    bad_lines = _bad_lines(count) if bad else set()
    return [[f"{PREFIX}{i:07d}", "12345" if i + 2 in bad_lines else f"139{i:08d}", "", f"会员{i}",
             "金卡" if i % 3 else "银卡", i % 700 + bump, f"{i % 900}.80", i % 20, "2026-09-30" if i % 20 else "",
             STORES[i % 2]] for i in range(count)]


def _xlsx(rows: list[list]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _setup():
    from portal.models import User
    from stores.models import Region, Store

    region, _ = Region.objects.get_or_create(code="BXL", defaults={"name": "基准大区"})
    for code in STORES:
        Store.objects.get_or_create(code=code, defaults={"name": f"基准门店{code}", "region": region})
    user, _ = User.objects.get_or_create(username="bench_excel_hq", defaults={"is_staff": True, "is_superuser": True})
    return user


def _clear(user) -> None:
    from django.contrib.admin.models import LogEntry
    from django.db import connection

    LogEntry.objects.filter(user=user).delete()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE customers_customer SET member_id = NULL WHERE member_id IN "
                       "(SELECT id FROM customers_member WHERE member_no LIKE %s)", [f"{PREFIX}%"])
        cursor.execute("DELETE FROM customers_member WHERE member_no LIKE %s", [f"{PREFIX}%"])


def _stock_admin():
    """MemberAdmin as it was: django-import-export's defaults around the same widgets."""
    from django.contrib import admin
    from django.core.exceptions import ValidationError
    from import_export import resources
    from import_export.admin import ImportMixin
    from import_export.formats.base_formats import CSV, XLSX
    from import_export.instance_loaders import CachedInstanceLoader

    from customers.members.admin import MemberAdmin
    from customers.members.resources import MemberResource
    from customers.models import Member

    class StockMemberResource(MemberResource):
        class Meta(MemberResource.Meta):
            instance_loader_class = CachedInstanceLoader
            clean_model_instances = True
            skip_diff = False
            batch_size = 1000

        def get_bulk_update_fields(self):
            return ["mobile_hash", "mobile_masked", "unionid", "name", "level", "points", "lifetime_spend",
                    "order_count", "last_purchase_on", "home_store"]

        bulk_create = resources.Resource.bulk_create
        bulk_update = resources.Resource.bulk_update
        skip_row = resources.Resource.skip_row
        after_init_instance = resources.Resource.after_init_instance
        after_import_row = resources.Resource.after_import_row

        def import_instance(self, instance, row, **kwargs):
            resources.Resource.import_instance(self, instance, row, **kwargs)

        def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
            errors = dict(import_validation_errors or {})
            try:
                instance.full_clean(exclude=[*errors, "home_store"], validate_unique=False,
                                    validate_constraints=False)
            except ValidationError as exc:
                errors = exc.update_error_dict(errors)
            if errors:
                raise ValidationError(errors)

    class StockMemberAdmin(MemberAdmin):
        resource_classes = [StockMemberResource]
        import_template_name = "admin/import_export/import.html"
        skip_admin_log = False
        import_action = ImportMixin.import_action  # the library's, without the trimming
        process_result = ImportMixin.process_result
        add_success_message = ImportMixin.add_success_message
        get_import_data_kwargs = ImportMixin.get_import_data_kwargs

        def get_import_formats(self):
            return [CSV, XLSX]

    return StockMemberAdmin(Member, admin.site)


def _request(user, data: dict, files: dict | None = None):
    from django.contrib.messages.storage import default_storage
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    request = RequestFactory().post("/admin/customers/member/import/", {**data, **(files or {})})
    request.user = user
    request.session = SessionStore()
    request._messages = default_storage(request)
    return request


def _preview(model_admin, user, content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("会员.xlsx", content)
    response = model_admin.import_action(_request(user, {"format": "1", "resource": "0"}, {"import_file": upload}))
    response.render()
    return response


def _confirm(model_admin, user, previewed) -> None:
    response = model_admin.process_import(_request(user, previewed.context_data["confirm_form"].initial))
    assert response.status_code == 302, response


def _run(model_admin, user, files: dict[str, bytes], *, label: str, update_rows: int) -> dict[str, float]:
    from customers.models import Member

    _clear(user)
    figures = {}
    with timed() as t:
        response = _preview(model_admin, user, files["bad"])
    assert len(response.context_data["result"].invalid_rows) == len(_bad_lines(files["rows"]))
    figures["preview_bad"] = t.seconds
    with timed() as t:
        response = _preview(model_admin, user, files["clean"])
    figures["preview"], figures["page_kb"] = t.seconds, len(response.content) / 1024
    with timed() as t:
        _confirm(model_admin, user, response)
    figures["confirm"] = t.seconds
    assert Member.objects.filter(member_no__startswith=PREFIX).count() == files["rows"]
    with timed() as t:
        response = _preview(model_admin, user, files["changed"])
    figures["preview_updates"] = t.seconds
    if update_rows < files["rows"]:
        _clear(user)
        _confirm(model_admin, user, _preview(model_admin, user, files["sample"]))
        response = _preview(model_admin, user, files["sample_changed"])
    with timed() as t:
        _confirm(model_admin, user, response)
    figures["confirm_updates"] = t.seconds * files["rows"] / update_rows
    print(f"{label:9} " + " ".join(f"{k}={v:.2f}{'' if k == 'page_kb' else 's'}" for k, v in figures.items())
          + (f" (confirm_updates scaled from {update_rows:,} rows)" if update_rows < files["rows"] else ""),
          flush=True)
    _clear(user)
    return figures


def bench_members_excel(*, scale: int = 10_000) -> str:
    from django.contrib import admin

    from customers.models import Member

    user = _setup()
    sample = min(UPDATE_SAMPLE, scale)
    with timed() as t:
        files = {"rows": scale, "bad": _xlsx(_rows(scale, bad=True)), "clean": _xlsx(_rows(scale)),
                 "changed": _xlsx(_rows(scale, bump=1)), "sample": _xlsx(_rows(sample)),
                 "sample_changed": _xlsx(_rows(sample, bump=1))}
    print(f"rows={scale:,} bad_lines={sorted(_bad_lines(scale))} files_built={t.seconds:.1f}s", flush=True)
    ours = _run(admin.site._registry[Member], user, files, label="ours", update_rows=scale)
    stock = _run(_stock_admin(), user, files, label="baseline", update_rows=sample)
    return result_line(bench="members_excel", value=ours["preview"] + ours["confirm"], unit="s",
                       baseline=stock["preview"] + stock["confirm"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.members_excel")
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args(argv)
    django_setup()
    print(bench_members_excel(scale=args.rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
