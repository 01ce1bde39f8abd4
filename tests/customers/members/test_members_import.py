"""Member files: the admin's Excel import (preview, row errors in Chinese, nothing half-written) for
small files, and the fast path (stream → COPY → one upsert) for CRM exports of millions of rows."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from customers.members.imports import MemberImportError, member_import_create, member_import_run
from customers.members.services import mobile_hash
from customers.members.tasks import member_import_task
from customers.models import Member, MemberImport

HEADER = ["会员号", "手机号", "unionid", "姓名", "等级", "积分", "累计消费", "消费次数", "最近消费日", "归属门店编码"]


def xlsx_bytes(rows: list[list], header: list[str] = HEADER) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def csv_bytes(rows: list[list], *, header: list[str] = HEADER, encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode(encoding)


def job_for(content: bytes, name: str = "members.csv") -> MemberImport:
    job = MemberImport()
    job.file.save(name, ContentFile(content), save=False)
    job.save()
    return job


def run(content: bytes, name: str = "members.csv") -> MemberImport:
    job = member_import_run(job=job_for(content, name))
    job.refresh_from_db()
    return job


# -- the admin's Excel import (django-import-export) ------------------------------------------------

def test_hq_previews_an_excel_with_a_bad_row_sees_the_reason_and_nothing_is_written(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = SimpleUploadedFile("members.xlsx", xlsx_bytes([
        ["M001", 13800001234, "", "王芳", "金卡", 120, 88.5, 3, "2026-10-01", "A001"],
        ["M002", "12345", "", "李雷", "银卡", 10, 0, 1, "2026-10-02", "A001"],  # not a mobile
        ["M003", "+86 139-0000-0000", "", "韩梅梅", "", "", "", "", "", "NOPE"],  # unknown store
    ]))
    response = client.post(reverse("admin:customers_member_import"),
                           {"import_file": upload, "format": "1", "resource": "0"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "手机号“12345”无效" in page
    assert "归属门店编码“NOPE”不存在或不在您的权限范围内" in page
    assert sorted(row.number for row in response.context["result"].invalid_rows) == [2, 3]
    assert "confirm_form" not in response.context or response.context["confirm_form"] is None
    assert not Member.objects.exists()


def test_a_clean_excel_previews_then_imports_hashed_and_masked(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = SimpleUploadedFile("members.xlsx", xlsx_bytes([
        ["M001", 13800001234, "oU1", "王芳", "金卡", 120, 88.5, 3, "2026-10-01", "A001"],
        ["M002", "+86 139-0000-0000", "", "李雷", "", "", "", "", "", ""],
    ]))
    response = client.post(reverse("admin:customers_member_import"),
                           {"import_file": upload, "format": "1", "resource": "0"})
    result = response.context["result"]
    assert not result.has_errors() and not result.has_validation_errors()
    assert not Member.objects.exists()  # a preview writes nothing
    response = client.post(reverse("admin:customers_member_process_import"), response.context["confirm_form"].initial)
    assert response.status_code == 302
    first = Member.objects.get(member_no="M001")
    assert (first.mobile_masked, first.home_store, first.points, str(first.lifetime_spend)) == (
        "138****1234", org.store_a, 120, "88.50")
    assert first.mobile_hash == mobile_hash("13800001234")
    assert Member.objects.get(member_no="M002").mobile_masked == "139****0000"


# -- the fast path -----------------------------------------------------------------------------------

def generated_rows(count: int, *, bad_every: int = 0) -> tuple[list[list], list[int]]:
    rows, bad_lines = [], []
    for i in range(count):
        mobile = f"13{i:09d}"
        if bad_every and i % bad_every == bad_every - 1:
            mobile = "12345"
            bad_lines.append(i + 2)  # line 1 is the header
        rows.append([f"M{i:07d}", mobile, f"oU{i}" if i % 4 == 0 else "", f"会员{i}", "金卡" if i % 2 else "银卡",
                     i % 500, f"{i % 1000}.50", i % 30, "2026-10-01" if i % 30 else "", "A001" if i % 3 else "B001"])
    return rows, bad_lines


def test_a_crm_export_of_20000_rows_goes_in_with_its_bad_rows_listed_by_line(org):
    rows, bad_lines = generated_rows(20_000, bad_every=4000)
    job = run(csv_bytes(rows))
    assert job.status == MemberImport.Status.DONE
    assert (job.rows_total, job.rows_done, job.rows_created, job.rows_updated) == (20_000, 20_000, 19_995, 0)
    assert [e["line"] for e in job.errors] == bad_lines
    assert all("手机号“12345”无效" in e["message"] for e in job.errors)
    assert Member.objects.count() == 19_995
    member = Member.objects.get(member_no="M0000007")
    assert (member.mobile_masked, member.home_store, member.level, member.order_count) == (
        "130****0007", org.store_a, "金卡", 7)

    again = run(csv_bytes(rows))  # the same file twice: nothing changes
    assert (again.status, again.rows_created, again.rows_updated) == (MemberImport.Status.DONE, 0, 0)
    assert Member.objects.filter(updated_at__gt=job.finished_at).count() == 0


def test_a_changed_row_updates_only_that_member_and_the_last_line_of_a_repeated_number_wins(org):
    run(csv_bytes([["M1", "13800000001", "", "王芳", "", "10", "", "", "", ""],
                   ["M2", "13800000002", "", "李雷", "", "20", "", "", "", ""]]))
    job = run(csv_bytes([["M1", "", "", "", "", "11", "", "", "", ""],
                         ["M1", "", "", "", "", "12", "", "", "", ""],
                         ["M2", "13800000002", "", "李雷", "", "20", "", "", "", ""]]))
    assert (job.rows_created, job.rows_updated) == (0, 1)
    assert "以最后一次出现的行为准" in job.errors[-1]["message"]
    m1 = Member.objects.get(member_no="M1")
    assert (m1.points, m1.name, m1.mobile_masked) == (12, "王芳", "138****0001")  # blanks kept the CRM's values


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_gbk_and_utf8_files_with_or_without_bom_read_the_same(org, encoding):
    job = run(csv_bytes([["M1", "13800000001", "", "张伟", "钻石会员", "1,200", "￥1,234.50", "2", "2026/1/5", "A001"]],
                        encoding=encoding))
    assert job.status == MemberImport.Status.DONE, job.errors
    member = Member.objects.get(member_no="M1")
    assert (member.name, member.level, member.points, str(member.lifetime_spend), member.last_purchase_on.isoformat()
            ) == ("张伟", "钻石会员", 1200, "1234.50", "2026-01-05")


def test_an_xlsx_file_goes_through_the_fast_path_too(org):
    job = run(xlsx_bytes([["M1", 13800000001, "", "王芳", "金卡", 5, 12.5, 1, "2026-10-01", "A001"]]), "m.xlsx")
    assert job.status == MemberImport.Status.DONE, job.errors
    assert Member.objects.get(member_no="M1").mobile_masked == "138****0001"


@pytest.mark.parametrize(("content", "reason"), [
    (csv_bytes([["M1", "13800000001"]], header=["卡号", "电话"]), "文件表头不正确"),
    (csv_bytes([["13800000001", "王芳"]], header=["手机号", "姓名"]), "缺少“会员号”列"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "不是 CSV 或 Excel"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "不支持旧版 Excel"),
    ("会员号,手机号\nM1,13800000001\n".encode("utf-16"), "UTF-16"),
    (b"", "文件是空的"),
])
def test_a_malformed_file_fails_with_a_clear_message_and_writes_nothing(org, content, reason):
    job = run(content)
    assert job.status == MemberImport.Status.FAILED
    assert reason in job.errors[0]["message"]
    assert not Member.objects.exists()


def test_an_encoding_error_deep_in_the_file_fails_the_whole_file(org):
    good, _bad = generated_rows(70_000)  # past the sniffed head and one COPY chunk
    content = csv_bytes(good) + b"M9,13800000009,," + b"\xff\xfe\xfa" + b",,,,,,\n"
    job = run(content)
    assert job.status == MemberImport.Status.FAILED and "文件无法读取" in job.errors[0]["message"]
    assert not Member.objects.exists()


def test_a_file_of_only_bad_rows_fails_and_says_why(org):
    job = run(csv_bytes([["M1", "12345", "", "", "", "", "", "", "", ""]]))
    assert job.status == MemberImport.Status.FAILED and "第 2 行" in job.errors[0]["message"]


def test_a_finished_job_run_again_does_nothing(org):
    job = run(csv_bytes([["M1", "13800000001", "", "", "", "", "", "", "", ""]]))
    Member.objects.all().delete()
    assert member_import_run(job=job).status == MemberImport.Status.DONE
    assert not Member.objects.exists()  # a redelivered task does not import twice


def test_hq_uploads_in_the_admin_the_job_is_queued_then_run_by_the_task(client, hq_operator, org,
                                                                          django_capture_on_commit_callbacks,
                                                                          monkeypatch):
    sent = []
    monkeypatch.setattr(member_import_task, "apply_async", lambda kwargs: sent.append(kwargs))
    client.force_login(hq_operator)
    upload = SimpleUploadedFile("crm.csv", csv_bytes([["M1", "13800000001", "", "王芳", "", "", "", "", "", ""]]))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:customers_memberimport_add"), {"file": upload})
    job = MemberImport.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/{job.pk}/change/")
    assert job.status == MemberImport.Status.QUEUED and job.created_by == hq_operator and sent == [{"job_id": job.pk}]
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' in page  # refreshes itself while queued or running
    member_import_task.run(job_id=job.pk)
    page = client.get(response["Location"]).content.decode()
    assert "1 / 1（100%）" in page and 'http-equiv="refresh"' not in page
    assert Member.objects.filter(member_no="M1").exists()


def test_hq_operator_uploading_a_member_file_gets_a_queued_job_of_theirs_run_after_commit(
        hq_operator, org, django_capture_on_commit_callbacks, monkeypatch):
    """member_import_create, as the admin's upload and import_members call it: the file is checked first, the
    job is the uploader's, and the worker is asked only once the upload is committed."""
    sent = []
    monkeypatch.setattr(member_import_task, "apply_async", lambda kwargs: sent.append(kwargs))
    upload = SimpleUploadedFile("crm.csv", csv_bytes([["M1", "13800000001", "", "王芳", "", "", "", "", "", ""]]))
    with django_capture_on_commit_callbacks(execute=True):
        job = member_import_create(file=upload, by=hq_operator)
        assert sent == []  # not before the upload commits
    assert (job.status, job.created_by, sent) == (MemberImport.Status.QUEUED, hq_operator, [{"job_id": job.pk}])
    assert job.file.name.endswith(".csv")

    for name, content in (("crm.xls", b"\xd0\xcf\x11\xe0 old excel"), ("crm.csv", csv_bytes([], header=["姓名"])),
                          ("crm.txt", csv_bytes([]))):
        with pytest.raises(MemberImportError):
            member_import_create(file=SimpleUploadedFile(name, content), by=hq_operator)
    assert MemberImport.objects.count() == 1 and len(sent) == 1  # a refused file stores and sends nothing


def test_the_upload_form_rejects_a_wrong_header_at_once(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = SimpleUploadedFile("crm.csv", csv_bytes([["M1"]], header=["卡号"]))
    response = client.post(reverse("admin:customers_memberimport_add"), {"file": upload})
    assert response.status_code == 200 and "文件表头不正确" in response.content.decode()
    assert not MemberImport.objects.exists()


def test_the_errors_of_a_job_are_listed_in_the_admin(client, hq_operator, org):
    job = run(csv_bytes([["M1", "12345", "", "", "", "", "", "", "", ""],
                         ["M2", "13800000002", "", "", "", "", "", "", "", ""]]))
    client.force_login(hq_operator)
    page = client.get(reverse("admin:customers_memberimport_change", args=[job.pk])).content.decode()
    assert "第 2 行" in page and "手机号“12345”无效" in page


def test_store_managers_cannot_upload_member_files(client, store_manager_of_a):
    client.force_login(store_manager_of_a)
    assert client.get(reverse("admin:customers_memberimport_add")).status_code == 403
    assert client.get(reverse("admin:customers_member_import")).status_code == 403


def test_the_management_command_imports_a_file_and_prints_progress(org, tmp_path: Path, capsys):
    path = tmp_path / "crm.csv"
    path.write_bytes(csv_bytes([["M1", "13800000001", "", "", "", "", "", "", "", ""]], encoding="gbk"))
    call_command("import_members", str(path), "--sync", verbosity=2)
    out = capsys.readouterr().out
    assert "1 / 1 行（100%）" in out and "完成" in out
    assert "用时：read_validate=" in out and "write=" in out  # where the time went, for operators
    assert Member.objects.filter(member_no="M1").exists()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes([["x"]], header=["卡号"]))
    with pytest.raises(CommandError, match="文件表头不正确"):
        call_command("import_members", str(bad), "--sync")
