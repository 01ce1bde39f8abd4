"""Address-book sync against the sandbox: members join, move and leave in WeCom; Staff follows.

A member who leaves becomes departed and flagged for customer inheritance; nothing is deleted.
"""

from __future__ import annotations

import pytest

from portal.wecom.models import SyncRun
from stores.models import Staff
from stores.org.addressbook import addressbook_sync_full, member_sync_one
from tests.conftest import eventually


@pytest.fixture
def wecom_org(org, sandbox):
    """The sandbox's address book mirrors the org: store A is department 10, store B department 20."""
    for store, department in ((org.store_a, 10), (org.store_b, 20)):
        store.wecom_department_id = department
        store.save(update_fields=["wecom_department_id"])
    sandbox.do("addressbook/load", departments=[{"id": 10, "name": org.store_a.name},
                                                {"id": 20, "name": org.store_b.name}],
               members=[{"userid": "a-manager", "name": "张店长", "department": [10], "position": "店长"},
                        {"userid": "a-guide", "name": "李导购", "department": [10], "position": "导购"},
                        {"userid": "b-guide", "name": "王导购", "department": [20], "position": "导购"}])
    return org


def test_full_sync_creates_moves_and_departs_members(wecom_org, sandbox):
    sandbox.do("addressbook/load", members=[{"userid": "a-new", "name": "新导购", "department": [10]},
                                            {"userid": "a-guide", "name": "李导购", "department": [20]}])
    sandbox.do("members/delete", userid="b-guide")

    run = addressbook_sync_full()

    assert run.status == SyncRun.Status.DONE, run.error
    assert run.progress["created"] == 1 and run.progress["departed"] == 1
    assert Staff.objects.get(userid="a-new").store == wecom_org.store_a
    assert Staff.objects.get(userid="a-guide").store == wecom_org.store_b  # moved between stores
    gone = Staff.objects.get(userid="b-guide")
    assert gone.status == Staff.Status.DEPARTED and gone.inheritance_pending and gone.departed_at


def test_a_second_full_sync_changes_nothing(wecom_org):
    addressbook_sync_full()
    run = addressbook_sync_full()
    assert (run.progress["created"], run.progress["updated"], run.progress["departed"]) == (0, 0, 0)


def test_a_suspiciously_short_member_list_departs_nobody(wecom_org, sandbox):
    addressbook_sync_full()
    for userid in ("a-manager", "a-guide"):
        sandbox.do("members/delete", userid=userid)
    run = addressbook_sync_full()
    assert run.status == SyncRun.Status.FAILED and "强制同步" in run.error
    assert Staff.objects.active().filter(userid__in=["a-manager", "a-guide"]).count() == 2
    assert addressbook_sync_full(force=True).progress["departed"] == 2


def test_an_unknown_member_departs_and_an_active_one_is_upserted(wecom_org, sandbox):
    sandbox.do("members/delete", userid="a-guide")
    assert member_sync_one(userid="a-guide") == "departed"
    assert member_sync_one(userid="a-guide") == "unchanged"
    assert member_sync_one(userid="a-manager") in ("upserted", "unchanged")


@pytest.mark.integration
def test_a_member_added_in_wecom_appears_and_leaving_flags_inheritance(wecom_org, wecom_live):
    """The issue's demo: add a member in the sandbox, see the Staff; delete it, see it departed and flagged."""
    wecom_live.do("members/add", userid="a-fresh", name="赵新人", department=[10], position="导购")
    staff = eventually(lambda: Staff.objects.filter(userid="a-fresh").first())
    assert staff.store == wecom_org.store_a and staff.name == "赵新人"

    wecom_live.do("members/update", userid="a-fresh", name="赵新人", department=[20])
    eventually(lambda: Staff.objects.filter(userid="a-fresh", store=wecom_org.store_b).exists())

    wecom_live.do("members/delete", userid="a-fresh")
    eventually(lambda: Staff.objects.filter(userid="a-fresh", status=Staff.Status.DEPARTED,
                                            inheritance_pending=True).exists())
