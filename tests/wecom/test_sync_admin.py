"""Operators start a sync from the admin and follow its progress on the 工作台."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.wecom.models import SyncRun
from stores.models import Staff
from tests.conftest import eventually


@pytest.mark.integration
def test_hq_admin_starts_an_address_book_sync_and_sees_its_result(hq_admin, client, sandbox, celery_worker, org):
    sandbox.do("addressbook/load", members=[{"userid": f"m{i}", "name": f"成员{i}"} for i in range(3)]
               + [{"userid": s.userid, "name": s.name} for s in Staff.objects.all()])
    client.force_login(hq_admin)
    page = client.get(reverse("admin:wecom_syncrun_changelist"))
    assert "立即通讯录全量同步" in page.content.decode()
    response = client.post(reverse("admin:wecom_syncrun_start"), {"kind": "addressbook.full"})
    assert response.status_code == 302
    run = eventually(lambda: SyncRun.objects.filter(kind="addressbook.full", status="done").first())
    assert run.progress["created"] == 3
    home = client.get(reverse("admin:index")).content.decode()
    assert "通讯录同步" in home


def test_operators_without_the_permission_cannot_start_a_sync(hq_operator, client, db):
    client.force_login(hq_operator)
    assert "立即" not in client.get(reverse("admin:wecom_syncrun_changelist")).content.decode()
    assert client.post(reverse("admin:wecom_syncrun_start"), {"kind": "addressbook.full"}).status_code == 403
