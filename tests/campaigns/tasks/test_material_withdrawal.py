"""A material archived or expired leaves the tasks not dispatched yet, and each task's author is told; a task
already dispatched keeps the record of the version that went out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.tasks.models import TaskMaterial
from materials.library.services import material_archive, materials_expiry_run
from stores.notices.models import Notice
from tests.campaigns.tasks.helpers import task_dispatched, task_made
from tests.materials.helpers import script_published

pytestmark = pytest.mark.django_db(transaction=True)  # the listener runs after commit


def test_archiving_a_material_takes_it_out_of_a_draft_task_and_tells_its_author(org, hq_operator):
    material = script_published(by=hq_operator, title="双十二话术", everyone=True)
    kept = script_published(by=hq_operator, title="会员话术", everyone=True)
    draft = task_made(by=hq_operator, title="双十二陈列", materials=[material, kept])

    material_archive(material=material, by=hq_operator)

    assert list(TaskMaterial.objects.filter(task=draft).values_list("material_id", flat=True)) == [kept.pk]
    notice = Notice.objects.get(user=hq_operator, title__contains="双十二陈列")
    assert "双十二话术" in notice.body and "已归档" in notice.body


def test_a_dispatched_task_keeps_the_version_that_went_out(org, hq_operator):
    material = script_published(by=hq_operator, title="开业话术", everyone=True)
    dispatched = task_dispatched(by=hq_operator, stores=[org.store_a], materials=[material])

    material_archive(material=material, by=hq_operator)

    attached = TaskMaterial.objects.get(task=dispatched)
    assert attached.material_id == material.pk and attached.version_id == material.current_version_id
    assert not Notice.objects.filter(title__contains=dispatched.title).exists()


def test_an_expired_material_leaves_a_task_not_dispatched_yet_once(org, hq_operator):
    material = script_published(by=hq_operator, title="限时话术", everyone=True)
    draft = task_made(by=hq_operator, title="周末活动", materials=[material])
    material.expires_at = timezone.now() + timedelta(minutes=5)
    material.save(update_fields=["expires_at"])

    later = timezone.now() + timedelta(minutes=10)
    materials_expiry_run(now=later)
    materials_expiry_run(now=later)

    assert not TaskMaterial.objects.filter(task=draft).exists()
    assert Notice.objects.filter(user=hq_operator, title__contains="周末活动").count() == 1
