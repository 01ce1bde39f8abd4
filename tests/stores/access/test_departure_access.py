"""A staff member who leaves loses access at once: in the departure's own transaction their login is switched
off, its sessions end, its API tokens are revoked, and scope ignores an Access whose staff member has left."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEvent
from stores.access.scoping import ScopeKind, user_scope
from stores.access.services import access_grant, api_token_issue, user_for_wecom_member
from stores.models import Access, ApiToken, Role, Staff
from stores.org.services import OrgError, staff_depart
from tests.factories import StaffFactory
from tests.test_mobile_wecom_login import _follow_sandbox


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def depart(staff: Staff, by=None) -> int:
    return staff_depart(staff=Staff.objects.filter(pk=staff.pk), by=by)


def test_a_departed_staff_members_session_no_longer_reaches_the_mobile_page(client, staff_of_a, org):
    client.force_login(staff_of_a)
    assert client.get(reverse("mobile:home")).status_code == 200
    depart(org.guide_a)
    response = client.get(reverse("mobile:home"))
    assert response.status_code == 302 and reverse("mobile:login") in response["Location"]


def test_a_departed_store_managers_session_no_longer_reaches_the_admin(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    assert client.get(reverse("admin:stores_staff_changelist")).status_code == 200
    depart(org.manager_a)
    response = client.get(reverse("admin:stores_staff_changelist"))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert client.get(reverse("staff-list")).status_code in (401, 403)


def test_a_departed_store_managers_api_token_is_refused_right_after_the_departure(client, store_manager_of_a, org):
    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    assert client.get(reverse("staff-list"), **bearer(key)).status_code == 200
    depart(org.manager_a)
    assert client.get(reverse("staff-list"), **bearer(key)).status_code == 401
    assert ApiToken.objects.get(user=store_manager_of_a).revoked_at is not None


def test_the_lock_out_happens_inside_the_departures_transaction(store_manager_of_a, org):
    api_token_issue(name="门店A收银", user=store_manager_of_a)
    with transaction.atomic():
        depart(org.manager_a)
        store_manager_of_a.refresh_from_db()
        assert not store_manager_of_a.is_active
        assert ApiToken.objects.filter(user=store_manager_of_a, revoked_at__isnull=True).count() == 0
        transaction.set_rollback(True)
    store_manager_of_a.refresh_from_db()
    assert store_manager_of_a.is_active  # rolled back together with the departure


def test_a_departure_keeps_the_login_and_its_access_as_history_and_is_audited(store_manager_of_a, hq_operator, org):
    depart(org.manager_a, by=hq_operator)
    store_manager_of_a.refresh_from_db()
    assert not store_manager_of_a.is_active
    assert Access.objects.filter(user=store_manager_of_a, staff=org.manager_a).exists()
    event = AuditEvent.objects.get(action="access.end_for_departed")
    assert event.actor == hq_operator and event.target_ids == [store_manager_of_a.pk]


def test_reactivating_a_departed_login_does_not_bring_its_old_session_back(client, store_manager_of_a, org):
    client.force_login(store_manager_of_a)
    depart(org.manager_a)
    get_user_model().objects.filter(pk=store_manager_of_a.pk).update(is_active=True)  # e.g. rehired later
    response = client.get(reverse("admin:stores_staff_changelist"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_access_whose_staff_member_left_grants_no_scope_even_if_the_login_were_active(store_manager_of_a, org):
    """A leftover path that marks staff departed without the service still fails closed."""
    Staff.objects.filter(pk=org.manager_a.pk).update(status=Staff.Status.DEPARTED, departed_at=timezone.now())
    user = get_user_model().objects.get(pk=store_manager_of_a.pk)
    assert user.is_active
    assert user_scope(user).kind == ScopeKind.NONE
    assert not Staff.objects.for_user(user).exists()
    assert not Access.objects.for_user(user).exists() and not ApiToken.objects.for_user(user).exists()


def test_departing_one_member_leaves_the_others_logins_alone(client, store_manager_of_a, staff_of_a, org):
    client.force_login(store_manager_of_a)
    depart(org.guide_a)
    assert client.get(reverse("admin:stores_staff_changelist")).status_code == 200
    store_manager_of_a.refresh_from_db()
    assert store_manager_of_a.is_active


def test_the_departed_persona_sees_nothing(client, departed_staff_of_a, org):
    assert not departed_staff_of_a.is_active
    assert user_scope(departed_staff_of_a).kind == ScopeKind.NONE
    client.force_login(departed_staff_of_a)
    assert client.get(reverse("mobile:home")).status_code == 302
    assert client.get(reverse("mobile:staff", args=[org.guide_a.pk])).status_code == 302


def test_a_departed_member_is_not_a_wecom_login(staff_of_a, org):
    assert user_for_wecom_member(userid="a-guide") == staff_of_a
    depart(org.guide_a)
    assert user_for_wecom_member(userid="a-guide") is None


def test_a_departed_member_cannot_sign_in_through_wecom(client, sandbox, staff_of_a, org):
    sandbox.do("addressbook/load", members=[{"userid": "a-guide", "name": "李导购"}])
    depart(org.guide_a)
    start = client.get(reverse("mobile:wecom_login"))
    response = client.get(_follow_sandbox(start["Location"], "a-guide"))
    assert response.status_code == 403 and "_auth_user_id" not in client.session


def test_hq_departing_a_guide_from_the_admin_locks_the_guide_out(client, hq_operator, staff_of_a, org):
    guide = client_class_login(staff_of_a)
    client.force_login(hq_operator)
    client.post(reverse("admin:stores_staff_changelist"),
                {"action": "depart_selected", "_selected_action": [org.guide_a.pk]})
    assert guide.get(reverse("mobile:home")).status_code == 302


def test_a_store_manager_cannot_depart_a_member_and_so_lock_out_a_login_above_theirs(client, store_manager_of_a,
                                                                                     franchisee_owner, org):
    """The franchisee owner's member row sits in store A: its manager must not be able to end the owner's login."""
    owner = StaffFactory(userid="f-owner", store=org.store_a)
    access_grant(user=franchisee_owner, role=Role.FRANCHISEE_OWNER, franchisee=org.franchisee_one, staff=owner)
    client.force_login(store_manager_of_a)
    url = reverse("admin:stores_staff_changelist")
    assert "depart_selected" not in offered_actions(client.get(url))
    client.post(url, {"action": "depart_selected", "_selected_action": [owner.pk]})
    with pytest.raises(OrgError, match="只有总部可以标记员工离职"):
        depart(owner, by=store_manager_of_a)
    owner.refresh_from_db()
    franchisee_owner.refresh_from_db()
    assert owner.status == Staff.Status.ACTIVE and franchisee_owner.is_active


def client_class_login(user):
    from django.test import Client

    other = Client()
    other.force_login(user)
    assert other.get(reverse("mobile:home")).status_code == 200
    return other


# -- departures through the address-book sync ---------------------------------------------------------------

@pytest.fixture
def wecom_org(org, sandbox):
    org.store_a.wecom_department_id = 10
    org.store_a.save(update_fields=["wecom_department_id"])
    sandbox.do("addressbook/load", departments=[{"id": 10, "name": org.store_a.name}],
               members=[{"userid": "a-manager", "name": "张店长", "department": [10], "position": "店长"},
                        {"userid": "a-guide", "name": "李导购", "department": [10], "position": "导购"}])
    return org


def test_a_member_deleted_in_wecom_is_locked_out_by_the_event_sync(client, wecom_org, sandbox, staff_of_a):
    from stores.org.addressbook import member_sync_one

    client.force_login(staff_of_a)
    sandbox.do("members/delete", userid="a-guide")
    assert member_sync_one(userid="a-guide") == "departed"
    assert client.get(reverse("mobile:home")).status_code == 302


def test_a_delete_user_callback_locks_the_member_out(client, wecom_org, store_manager_of_a):
    from stores.org.handlers import member_deleted

    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    member_deleted({"UserID": "a-manager"})
    assert client.get(reverse("staff-list"), **bearer(key)).status_code == 401


def test_a_member_missing_from_the_full_sync_is_locked_out(client, wecom_org, sandbox, staff_of_a, store_manager_of_a):
    from stores.org.addressbook import addressbook_sync_full

    client.force_login(staff_of_a)
    sandbox.do("members/delete", userid="a-guide")
    run = addressbook_sync_full(force=True)
    assert Staff.objects.get(userid="a-guide").status == Staff.Status.DEPARTED, run.error
    assert client.get(reverse("mobile:home")).status_code == 302
    store_manager_of_a.refresh_from_db()
    assert store_manager_of_a.is_active


def offered_actions(changelist) -> set[str]:
    form = changelist.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form is not None else set()


def test_hq_removing_a_role_in_the_admin_leaves_the_login_nothing(client, hq_admin, store_manager_of_a, org):
    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    manager = client_class_login(store_manager_of_a)
    client.force_login(hq_admin)
    access = Access.objects.get(user=store_manager_of_a)
    response = client.post(reverse("admin:stores_access_delete", args=[access.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Access.objects.filter(pk=access.pk).exists()
    store_manager_of_a.refresh_from_db()
    assert not store_manager_of_a.is_staff and not store_manager_of_a.groups.exists()
    assert manager.get(reverse("admin:index")).status_code == 302
    assert not manager.get(reverse("mobile:home")).context["staff"]
    assert client.get(reverse("staff-list"), **bearer(key)).status_code == 401
    event = AuditEvent.objects.get(action="access.revoke")
    assert event.actor == hq_admin and event.detail == {"roles": {str(store_manager_of_a.pk): "store_manager"}}
