"""Identity and scope fields are never writable by the roles they govern (stores/access/field_policy.py).

WeCom owns a member's userid, name and mobile (only the address-book sync changes them); HQ editors own a
member's store and position, a store's region, franchisee, kind and WeCom department, and every Access.
The API, the admin and the Excel imports apply the same policy, and every change is audited.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from portal.models import AuditEvent
from stores.access.services import access_grant, api_token_issue, user_for_wecom_member
from stores.models import Access, Role, Staff, Store
from tests.factories import StaffFactory, UserFactory
from tests.stores.org.test_import_export import STAFF_HEADER, STORE_HEADER, import_preview, xlsx


def bearer(key: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def patch(client, url: str, data: dict, **extra):
    return client.patch(url, data, content_type="application/json", **extra)


def staff_url(staff: Staff) -> str:
    return reverse("staff-detail", args=[staff.pk])


def store_url(store: Store) -> str:
    return reverse("store-detail", args=[store.pk])


def grant_permission(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="stores", codename__in=codenames))


def admin_form_data(response) -> dict:
    """What the browser would post back from an admin change form, unchanged."""
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if hasattr(value, "pk"):
            value = value.pk
        if isinstance(value, list | tuple):
            data[name] = [getattr(v, "pk", v) for v in value]
            continue
        data[name] = "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else value)
    return data


# -- the exploit: a store manager's API token ------------------------------------------------------------------

def test_store_manager_cannot_change_a_staff_userid_or_position_through_the_api(client, store_manager_of_a, org):
    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    response = patch(client, staff_url(org.guide_a), {"userid": "hijacked-x", "position": "hq"}, **bearer(key))
    assert response.status_code == 400
    errors = response.json()
    assert "由企业微信通讯录同步维护" in errors["userid"][0] and "只有总部可以修改" in errors["position"][0]
    org.guide_a.refresh_from_db()
    assert (org.guide_a.userid, org.guide_a.position) == ("a-guide", Staff.Position.GUIDE)


def test_store_manager_still_changes_what_is_theirs_and_may_send_back_unchanged_values(client, store_manager_of_a,
                                                                                      org):
    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    response = patch(client, staff_url(org.guide_a), {"userid": "a-guide", "position": "guide",
                                                      "store": org.store_a.pk, "joined_on": "2026-02-01"},
                     **bearer(key))
    assert response.status_code == 200, response.json()
    org.guide_a.refresh_from_db()
    assert str(org.guide_a.joined_on) == "2026-02-01"


@pytest.fixture
def owner_member(org, franchisee_owner):
    """The franchisee owner is also a WeCom member, listed in store A: their WeCom sign-in is their login."""
    member = StaffFactory(userid="f-owner", name="加盟商老板", store=org.store_a)
    access_grant(user=franchisee_owner, role=Role.FRANCHISEE_OWNER, franchisee=org.franchisee_one, staff=member)
    return member


def test_a_store_manager_swapping_userids_can_no_longer_sign_in_as_someone_else(client, store_manager_of_a,
                                                                               franchisee_owner, owner_member, org):
    key = api_token_issue(name="门店A收银", user=store_manager_of_a).key
    assert patch(client, staff_url(org.manager_a), {"userid": "a-manager-old"}, **bearer(key)).status_code == 400
    assert patch(client, staff_url(owner_member), {"userid": "a-manager"}, **bearer(key)).status_code == 400
    assert user_for_wecom_member(userid="a-manager") == store_manager_of_a
    assert user_for_wecom_member(userid="f-owner") == franchisee_owner


def test_a_store_manager_cannot_swap_userids_in_the_admin_either(client, store_manager_of_a, owner_member, org):
    client.force_login(store_manager_of_a)
    url = reverse("admin:stores_staff_change", args=[owner_member.pk])
    page = client.get(url)
    assert {"userid", "name", "mobile", "store", "position"}.isdisjoint(page.context["adminform"].form.fields)
    data = {**admin_form_data(page), "userid": "a-manager", "position": "hq", "store": ""}
    assert client.post(url, data).status_code == 302
    owner_member.refresh_from_db()
    assert (owner_member.userid, owner_member.store) == ("f-owner", org.store_a)


def test_a_store_less_member_cannot_sign_in_through_wecom(hq_operator, org):
    member = StaffFactory(userid="hq-zhou", store=None, position=Staff.Position.HQ)
    access_grant(user=hq_operator, role=Role.HQ_OPERATOR, staff=member)
    assert user_for_wecom_member(userid="hq-zhou") is None


# -- a store's region, franchisee, kind and WeCom department ---------------------------------------------------

@pytest.mark.parametrize("change", [{"wecom_department_id": 1}, {"region": "east_hz"}, {"kind": "direct",
                                                                                        "franchisee": None}])
def test_region_manager_cannot_repoint_their_store_through_the_api(client, region_manager_east, org, change):
    """Pointing one's store at HQ's department would move HQ members into it at the next sync."""
    data = {k: (getattr(org, v).pk if isinstance(v, str) and hasattr(org, v) else v) for k, v in change.items()}
    client.force_login(region_manager_east)
    response = patch(client, store_url(org.store_a), data)
    assert response.status_code == 400 and "只有总部可以修改" in str(response.json())
    org.store_a.refresh_from_db()
    assert (org.store_a.wecom_department_id, org.store_a.region, org.store_a.kind) == (
        None, org.east_sh, Store.Kind.FRANCHISE)


def test_region_manager_sees_a_stores_scope_fields_read_only_in_the_admin(client, region_manager_east, org):
    client.force_login(region_manager_east)
    url = reverse("admin:stores_store_change", args=[org.store_a.pk])
    page = client.get(url)
    fields = page.context["adminform"].form.fields
    assert {"region", "franchisee", "kind", "wecom_department_id"}.isdisjoint(fields) and "name" in fields
    data = {**admin_form_data(page), "name": "上海徐汇旗舰店", "wecom_department_id": 1, "region": org.south_gz.pk}
    assert client.post(url, data).status_code == 302
    org.store_a.refresh_from_db()
    assert org.store_a.name == "上海徐汇旗舰店"
    assert (org.store_a.wecom_department_id, org.store_a.region) == (None, org.east_sh)


def test_hq_operator_changes_a_stores_department_in_the_admin_and_it_is_audited(client, hq_operator, org):
    client.force_login(hq_operator)
    url = reverse("admin:stores_store_change", args=[org.store_a.pk])
    data = {**admin_form_data(client.get(url)), "wecom_department_id": 4242}
    assert client.post(url, data).status_code == 302
    org.store_a.refresh_from_db()
    assert org.store_a.wecom_department_id == 4242
    event = AuditEvent.objects.get(action="guarded_fields.change", target_type="stores.store")
    assert event.actor == hq_operator and event.target_ids == [org.store_a.pk]
    assert event.detail == {"via": "admin", "created": False, "changes": {"wecom_department_id": [None, 4242]}}


# -- HQ editors ------------------------------------------------------------------------------------------------

def test_hq_operator_changes_a_members_store_and_position_through_the_api_and_it_is_audited(client, hq_operator,
                                                                                           org):
    client.force_login(hq_operator)
    response = patch(client, staff_url(org.guide_a), {"store": org.store_a2.pk, "position": "store_manager"})
    assert response.status_code == 200, response.json()
    event = AuditEvent.objects.get(action="guarded_fields.change")
    assert event.actor == hq_operator and event.detail["via"] == "api"
    assert event.detail["changes"] == {"store": [org.store_a.pk, org.store_a2.pk],
                                       "position": ["guide", "store_manager"]}


def test_not_even_hq_changes_a_userid_name_or_mobile_outside_the_address_book_sync(client, hq_admin, org):
    client.force_login(hq_admin)
    response = patch(client, staff_url(org.guide_a), {"userid": "renamed", "name": "改名", "mobile": "13800000000"})
    assert response.status_code == 400 and set(response.json()) == {"userid", "name", "mobile"}
    page = client.get(reverse("admin:stores_staff_change", args=[org.guide_a.pk]))
    assert {"userid", "name", "mobile"}.isdisjoint(page.context["adminform"].form.fields)
    assert "store" in page.context["adminform"].form.fields


def test_hq_finance_reads_but_does_not_change_scope_fields(client, hq_finance, org):
    client.force_login(hq_finance)
    grant_permission(hq_finance, "change_store")  # even given the permission, the field policy says no
    response = patch(client, store_url(org.store_c), {"wecom_department_id": 1})
    assert response.status_code == 400
    org.store_c.refresh_from_db()
    assert org.store_c.wecom_department_id is None


# -- bad input: a 400 with a reason, never a 500 ---------------------------------------------------------------

@pytest.mark.parametrize("persona", ["hq_operator", "store_manager_of_a"])
def test_a_store_of_null_is_refused_with_a_reason(client, org, persona, request):
    client.force_login(request.getfixturevalue(persona))
    response = patch(client, staff_url(org.guide_a), {"store": None})
    assert response.status_code == 400
    assert "门店" in str(response.json())
    org.guide_a.refresh_from_db()
    assert org.guide_a.store == org.store_a


@pytest.mark.parametrize("data", [{"region": None}, {"franchisee": None}, {"kind": "direct"}, {"latitude": "95"},
                                  {"region": 999999}, {"status": "closed"}])
def test_a_store_the_database_would_refuse_is_a_400(client, hq_operator, org, data):
    client.force_login(hq_operator)
    response = patch(client, store_url(org.store_a), data)
    if "status" in data:  # read-only: ignored (closing is an action)
        assert response.status_code == 200 and response.json()["status"] == "open"
        return
    assert response.status_code == 400, response.content
    org.store_a.refresh_from_db()
    assert (org.store_a.region, org.store_a.franchisee, org.store_a.kind) == (
        org.east_sh, org.franchisee_one, Store.Kind.FRANCHISE)


def test_hq_creating_a_member_without_a_store_gets_a_400(client, hq_operator, org):
    client.force_login(hq_operator)
    response = client.post(reverse("staff-list"), {"userid": "new-one", "name": "新人", "position": "guide"},
                           content_type="application/json")
    assert response.status_code == 400 and "除总部员工外，员工必须属于一个门店" in str(response.json())


# -- creating rows ---------------------------------------------------------------------------------------------

def test_only_hq_creates_staff_and_stores_through_the_api(client, region_manager_east, hq_operator, org):
    grant_permission(region_manager_east, "add_staff", "add_store")
    client.force_login(region_manager_east)
    response = client.post(reverse("staff-list"), {"userid": "east-new", "name": "新人", "store": org.store_a.pk},
                           content_type="application/json")
    assert response.status_code == 403 and "只有总部可以新建员工" in response.json()["detail"]
    response = client.post(reverse("store-list"), {"code": "E900", "name": "新店", "region": org.east_sh.pk},
                           content_type="application/json")
    assert response.status_code == 403
    assert not Staff.objects.filter(userid="east-new").exists() and not Store.objects.filter(code="E900").exists()
    client.force_login(hq_operator)
    response = client.post(reverse("staff-list"), {"userid": "east-new", "name": "新人", "store": org.store_a.pk},
                           content_type="application/json")
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="guarded_fields.change")
    assert event.detail["created"] and event.detail["changes"]["userid"] == [None, "east-new"]


def test_the_admin_offers_no_add_page_to_a_region_manager_even_with_the_add_permission(client, region_manager_east,
                                                                                       org):
    grant_permission(region_manager_east, "add_staff", "add_store")
    client.force_login(region_manager_east)
    assert client.get(reverse("admin:stores_staff_add")).status_code == 403
    assert client.get(reverse("admin:stores_store_add")).status_code == 403


def test_a_region_manager_with_the_access_permission_still_cannot_grant_themselves_a_role(client,
                                                                                         region_manager_east, org):
    grant_permission(region_manager_east, "view_access", "change_access")
    client.force_login(region_manager_east)
    access = Access.objects.get(user=region_manager_east)
    url = reverse("admin:stores_access_change", args=[access.pk])
    response = client.post(url, {"user": region_manager_east.pk, "role": Role.HQ_ADMIN})
    assert response.status_code == 403
    access.refresh_from_db()
    assert access.role == Role.REGION_MANAGER


# -- Excel imports ---------------------------------------------------------------------------------------------

def test_a_region_manager_cannot_change_a_stores_department_by_excel(client, region_manager_east, org):
    grant_permission(region_manager_east, "add_store")  # the import permission
    client.force_login(region_manager_east)
    upload = xlsx(STORE_HEADER, [["A001", "上海徐汇店", "", "", "", "", "加盟", "EAST-SH", "F-ONE", 1, "营业中", ""]])
    response = import_preview(client, "store", upload)
    assert "“企业微信部门ID”决定权限范围，只有总部可以修改" in response.content.decode()
    assert response.context["result"].has_validation_errors()
    org.store_a.refresh_from_db()
    assert org.store_a.wecom_department_id is None


def test_a_region_manager_cannot_create_staff_by_excel(client, region_manager_east, org):
    grant_permission(region_manager_east, "add_staff")
    client.force_login(region_manager_east)
    upload = xlsx(STAFF_HEADER, [["east-new", "赵新人", "13900000000", "A002", "导购", "2026-11-01"]])
    response = import_preview(client, "staff", upload)
    assert "只有总部可以新建员工" in response.content.decode()
    assert not Staff.objects.filter(userid="east-new").exists()


def test_hq_cannot_rename_a_member_by_excel_but_moves_them(client, hq_operator, org):
    client.force_login(hq_operator)
    upload = xlsx(STAFF_HEADER, [["a-guide", "改名", "", "A001", "导购", ""]])
    response = import_preview(client, "staff", upload)
    assert "“姓名”由企业微信通讯录同步维护，请在企业微信中修改" in response.content.decode()
    upload = xlsx(STAFF_HEADER, [["a-guide", "李导购", "", "A002", "店长", ""]])
    response = import_preview(client, "staff", upload)
    assert not response.context["result"].has_validation_errors() and not response.context["result"].has_errors()
    assert client.post(reverse("admin:stores_staff_process_import"),
                       response.context["confirm_form"].initial).status_code == 302
    org.guide_a.refresh_from_db()
    assert (org.guide_a.store, org.guide_a.position) == (org.store_a2, Staff.Position.STORE_MANAGER)
    event = AuditEvent.objects.get(action="guarded_fields.change")
    assert event.actor == hq_operator and event.detail["via"] == "import"
    assert event.detail["changes"]["store"] == [org.store_a.pk, org.store_a2.pk]


# -- the address-book sync: the owner of WeCom's fields, audited -----------------------------------------------

@pytest.fixture
def wecom_org(org, sandbox):
    for store, department in ((org.store_a, 10), (org.store_b, 20)):
        store.wecom_department_id = department
        store.save(update_fields=["wecom_department_id"])
    sandbox.do("addressbook/load", departments=[{"id": 10, "name": org.store_a.name},
                                                {"id": 20, "name": org.store_b.name}],
               members=[{"userid": "a-guide", "name": "李导购", "department": [10], "position": "导购"}])
    return org


def test_the_sync_moving_a_member_between_stores_is_audited(wecom_org, sandbox):
    from stores.org.addressbook import member_sync_one

    sandbox.do("addressbook/load", members=[{"userid": "a-guide", "name": "李导购", "department": [20]}])
    assert member_sync_one(userid="a-guide") == "upserted"
    event = AuditEvent.objects.get(action="addressbook.staff_scope_change")
    assert event.target_ids == [wecom_org.guide_a.pk] and event.actor is None
    assert event.detail["changes"][str(wecom_org.guide_a.pk)]["store"] == [wecom_org.store_a.pk, wecom_org.store_b.pk]


def test_a_userid_renamed_in_wecom_keeps_the_row_and_is_audited(wecom_org, sandbox):
    from stores.org.handlers import member_changed

    sandbox.do("addressbook/load", members=[{"userid": "a-guide-2", "name": "李导购", "department": [10]}])
    member_changed({"UserID": "a-guide", "NewUserID": "a-guide-2"})
    wecom_org.guide_a.refresh_from_db()
    assert wecom_org.guide_a.userid == "a-guide-2"
    event = AuditEvent.objects.get(action="addressbook.userid_rename")
    assert event.detail == {"from": "a-guide", "to": "a-guide-2"}


def test_a_userid_rename_onto_an_existing_member_renames_nothing(wecom_org):
    from stores.org.addressbook import staff_userid_rename

    assert not staff_userid_rename(old="a-guide", new="a-manager")
    wecom_org.guide_a.refresh_from_db()
    assert wecom_org.guide_a.userid == "a-guide"


def test_a_member_wecom_renamed_and_moved_is_renamed_then_synced_under_the_new_userid_once(wecom_org, sandbox):
    """member_event_apply, what the change_contact handler calls: the rename keeps the row (staff_userid_rename,
    audited), the member is then synced under the new userid, and the same event delivered again renames
    nothing more."""
    from stores.org.addressbook import member_event_apply

    sandbox.do("addressbook/load", members=[{"userid": "a-guide-2", "name": "李导购", "department": [20]}])
    event = {"UserID": "a-guide", "NewUserID": "a-guide-2"}
    assert member_event_apply(fields=event) == "upserted"
    guide = Staff.objects.get(pk=wecom_org.guide_a.pk)
    assert (guide.userid, guide.store) == ("a-guide-2", wecom_org.store_b)
    assert not Staff.objects.filter(userid="a-guide").exists()

    member_event_apply(fields=event)
    assert Staff.objects.get(pk=guide.pk).userid == "a-guide-2"
    assert AuditEvent.objects.filter(action="addressbook.userid_rename").count() == 1


def test_a_department_deleted_in_wecom_unlinks_its_store_and_is_audited(wecom_org):
    from stores.org.handlers import department_deleted

    department_deleted({"Id": "10"})
    wecom_org.store_a.refresh_from_db()
    assert wecom_org.store_a.wecom_department_id is None
    event = AuditEvent.objects.get(action="addressbook.department_unlink")
    assert event.target_ids == [wecom_org.store_a.pk]
    assert event.detail == {"departments": {str(wecom_org.store_a.pk): 10}}


def test_a_login_made_for_a_store_staff_member_signs_in_as_that_member_only(org, staff_of_a):
    """The other half: WeCom sign-in still works for the member HQ bound."""
    assert user_for_wecom_member(userid="a-guide") == staff_of_a
    assert user_for_wecom_member(userid="a-manager") is None  # no login bound to that member
    assert UserFactory(username="nobody") and user_for_wecom_member(userid="nobody") is None


def test_hq_admin_grants_a_role_in_the_admin_and_its_scope_is_audited(client, hq_admin, org):
    login = UserFactory(username="new-manager")
    client.force_login(hq_admin)
    response = client.post(reverse("admin:stores_access_add"), {"user": login.pk, "role": Role.STORE_MANAGER,
                                                               "store": org.store_a.pk, "staff": org.manager_a.pk})
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="access.grant", actor=hq_admin)
    assert event.target_ids == [login.pk]
    assert event.detail == {"role": Role.STORE_MANAGER, "regions": [], "franchisee": None, "store": org.store_a.pk,
                            "staff": org.manager_a.pk}
