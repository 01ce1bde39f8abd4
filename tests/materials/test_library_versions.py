"""Versions are kept forever; a restore adds a version; scripts and Moments templates are checked before saving."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import ProgrammingError, connection, transaction
from django.utils import timezone

from materials.library.models import Material, MaterialVersion
from materials.library.services import (
    MaterialRefused,
    VersionContent,
    material_create,
    material_publish,
    material_update,
    material_version_add,
    material_version_restore,
    materials_expiry_run,
)
from portal.models import AuditEvent
from stores.notices.models import Notice
from tests.materials.helpers import script_published

pytestmark = pytest.mark.django_db


def test_a_new_version_becomes_current_and_the_old_one_stays(hq_operator):
    material = script_published(by=hq_operator, text="第一版")
    second = material_version_add(material=material, by=hq_operator, content=VersionContent(text="第二版"))
    material.refresh_from_db()
    assert material.current_version == second and second.number == 2
    assert list(material.versions.values_list("text", flat=True)) == ["第二版", "第一版"]


def test_restoring_an_old_version_adds_it_as_the_newest(hq_operator):
    material = script_published(by=hq_operator, text="第一版")
    material_version_add(material=material, by=hq_operator, content=VersionContent(text="第二版"))
    first = material.versions.get(number=1)
    restored = material_version_restore(version=first, by=hq_operator)
    material.refresh_from_db()
    assert (restored.number, restored.text, restored.restored_from) == (3, "第一版", first)
    assert material.current_version == restored
    assert AuditEvent.objects.filter(action="material.version", target_ids=[material.pk]).count() == 3


def test_restoring_the_current_version_is_refused(hq_operator):
    material = script_published(by=hq_operator)
    with pytest.raises(MaterialRefused, match="已经是当前版本"):
        material_version_restore(version=material.current_version, by=hq_operator)


def test_the_database_refuses_to_change_or_delete_a_version(hq_operator):
    material = script_published(by=hq_operator, text="原文")
    with pytest.raises(ProgrammingError, match="pgtrigger"), transaction.atomic():
        MaterialVersion.objects.filter(material=material).update(text="篡改")
    with pytest.raises(ProgrammingError, match="pgtrigger"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM materials_materialversion WHERE material_id = %s", [material.pk])
    assert material.versions.get().text == "原文"


def test_a_script_with_an_unknown_variable_is_refused_naming_it(hq_operator):
    material = material_create(by=hq_operator, kind="script", title="话术")
    with pytest.raises(MaterialRefused, match=r"\{会员等级\}"):
        material_version_add(material=material, by=hq_operator, content=VersionContent(text="{会员等级}您好"))
    assert not material.versions.exists()


def test_a_material_without_content_cannot_be_published(hq_operator):
    material = material_create(by=hq_operator, kind="link", title="品牌故事")
    with pytest.raises(MaterialRefused, match="请先上传内容"):
        material_publish(material=material, by=hq_operator)


def test_a_link_must_be_a_web_address(hq_operator):
    material = material_create(by=hq_operator, kind="link", title="品牌故事")
    with pytest.raises(MaterialRefused, match="http"):
        material_version_add(material=material, by=hq_operator, content=VersionContent(link_url="javascript:alert(1)"))


def test_a_moments_template_takes_nine_images_or_one_video_or_one_link(hq_operator):
    link = material_create(by=hq_operator, kind="link", title="链接")
    video = material_create(by=hq_operator, kind="video", title="视频")
    moments = material_create(by=hq_operator, kind="moments", title="朋友圈")
    with pytest.raises(MaterialRefused, match="朋友圈只能附"):
        material_version_add(material=moments, by=hq_operator,
                             content=VersionContent(text="新品", attachment_ids=(link.pk, video.pk)))
    ok = material_version_add(material=moments, by=hq_operator, content=VersionContent(text="新品",
                                                                                      attachment_ids=(link.pk,)))
    assert ok.attachment_ids == [link.pk]


def test_a_moments_template_refuses_text_over_two_thousand_characters(hq_operator):
    moments = material_create(by=hq_operator, kind="moments", title="朋友圈")
    with pytest.raises(MaterialRefused, match="2000"):
        material_version_add(material=moments, by=hq_operator, content=VersionContent(text="字" * 2001))


def test_a_franchisee_cannot_change_hqs_material(hq_operator, franchisee_owner):
    material = script_published(by=hq_operator, everyone=True)
    with pytest.raises(MaterialRefused, match="由总部维护"):
        material_version_add(material=material, by=franchisee_owner, content=VersionContent(text="改一下"))
    with pytest.raises(MaterialRefused, match="由总部维护"):
        material_update(material=material, by=franchisee_owner, title="改名")


def test_the_expiry_window_must_end_after_it_starts(hq_operator):
    now = timezone.now()
    with pytest.raises(MaterialRefused, match="晚于生效时间"):
        material_create(by=hq_operator, kind="script", title="x", valid_from=now, expires_at=now - timedelta(hours=1))


def test_the_owner_is_told_three_days_ahead_and_once_only(hq_operator):
    material = script_published(by=hq_operator, everyone=True)
    Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() + timedelta(days=2))
    assert materials_expiry_run().warned == 1
    assert materials_expiry_run().warned == 0
    notice = Notice.objects.get(user=hq_operator)
    assert "即将过期" in notice.title and material.title in notice.title


def test_an_expired_material_is_withdrawn_once_and_its_owner_told(hq_operator, django_capture_on_commit_callbacks):
    from materials.library import services

    withdrawn: list[tuple[list[int], str]] = []
    services._withdrawn_listeners["test"] = lambda ids, reason: withdrawn.append((ids, reason))
    try:
        material = script_published(by=hq_operator, everyone=True)
        Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert materials_expiry_run().expired == 1
            assert materials_expiry_run().expired == 0
    finally:
        services._withdrawn_listeners.pop("test")
    assert withdrawn == [([material.pk], "expired")]
    assert Notice.objects.filter(user=hq_operator, title__contains="已过期").count() == 1


def test_a_new_end_date_brings_a_new_reminder(hq_operator):
    material = script_published(by=hq_operator, everyone=True)
    Material.objects.filter(pk=material.pk).update(expires_at=timezone.now() + timedelta(days=1))
    materials_expiry_run()
    material.refresh_from_db()
    material_update(material=material, by=hq_operator, expires_at=timezone.now() + timedelta(days=2))
    assert materials_expiry_run().warned == 1
