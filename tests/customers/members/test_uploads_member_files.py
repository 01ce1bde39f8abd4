"""Uploaded member files hold plaintext mobiles: they leave the disk when their import ends, and after
XIAOER_MEMBER_FILE_RETENTION_HOURS whatever became of the import (issue #10, finding 8). The job keeps the
file's name and says it was deleted; a previewed web import waits in the cache for an hour, not in a
temporary file that outlives it."""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from customers.members.imports import member_import_files_purge
from customers.models import MemberImport
from portal.schedules import schedules_declared
from portal.uploads import ImportPreviewStorage
from tests.customers.members.test_members_import import csv_bytes, job_for, run

GOOD = csv_bytes([["M1", "13800000001", "", "王芳", "", "", "", "", "", ""]])
BAD_HEADER = csv_bytes([["M1"]], header=["卡号"])


def stored(job: MemberImport) -> bool:
    return job.file.storage.exists(job.file.name)


def test_the_file_is_deleted_when_the_import_succeeds(org):
    job = run(GOOD)

    assert job.status == MemberImport.Status.DONE
    assert not stored(job) and job.file_removed_at is not None
    assert job.file.name.endswith(".csv")  # the name stays, as the record of what was imported


def test_the_file_is_deleted_when_the_import_fails(org):
    job = run(BAD_HEADER)

    assert job.status == MemberImport.Status.FAILED
    assert not stored(job) and job.file_removed_at is not None


def test_the_admin_says_the_file_was_deleted_and_never_links_to_it(client, hq_operator, org):
    job = run(GOOD)
    client.force_login(hq_operator)

    page = client.get(reverse("admin:customers_memberimport_change", args=[job.pk])).content.decode()

    assert "已于" in page and "删除" in page
    assert job.file.url not in page


def test_files_past_the_retention_are_deleted_and_an_unfinished_job_says_why(org, settings):
    settings.XIAOER_MEMBER_FILE_RETENTION_HOURS = 24
    stuck, lingering, recent = job_for(GOOD), job_for(GOOD), job_for(GOOD)
    MemberImport.objects.filter(pk=lingering.pk).update(status=MemberImport.Status.DONE)  # deleting had failed
    MemberImport.objects.filter(pk__in=[stuck.pk, lingering.pk]).update(created_at=timezone.now() - timedelta(hours=25))

    assert member_import_files_purge() == 2

    stuck.refresh_from_db()
    lingering.refresh_from_db()
    recent.refresh_from_db()
    assert not stored(stuck) and not stored(lingering) and stored(recent)
    assert stuck.status == MemberImport.Status.FAILED and "保留期限" in stuck.errors[0]["message"]
    assert lingering.status == MemberImport.Status.DONE and lingering.file_removed_at is not None
    assert recent.status == MemberImport.Status.QUEUED and recent.file_removed_at is None
    assert member_import_files_purge() == 0  # nothing left to do


def test_the_purge_is_a_beat_job():
    schedule = {s.name: s for s in schedules_declared()}["customers.member_import_files_purge"]

    assert schedule.task == "customers.members.tasks.member_import_files_purge_task"
    assert schedule.every_seconds == 3600


def test_a_previewed_web_import_waits_in_the_cache_for_an_hour_not_in_a_temporary_file(client, hq_operator, org):
    client.force_login(hq_operator)

    response = client.post(reverse("admin:customers_member_import"), {
        "import_file": SimpleUploadedFile("会员.csv", GOOD), "format": "0", "resource": "0"})

    name = response.context["confirm_form"].initial["import_file_name"]
    assert not os.path.exists(os.path.join(tempfile.gettempdir(), name))
    key = ImportPreviewStorage.CACHE_PREFIX + name
    assert cache.get(key) == GOOD
    assert 0 < cache._cache.get_client(write=False).ttl(cache.make_and_validate_key(key)) <= 3600
