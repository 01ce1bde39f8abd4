"""The member admin, by persona: HQ finds any member by number, mobile or unionid and sees only the
masked mobile; regional and store people see their stores' members, read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from customers.members.services import mobile_hash, mobile_masked
from customers.models import Customer, Member
from tests.factories import CustomerFactory

CHANGELIST = "admin:customers_member_changelist"


def member(no: str, store, *, mobile: str = "", unionid: str = "", level: str = "") -> Member:
    return Member.objects.create(member_no=no, home_store=store, unionid=unionid, level=level,
                                 mobile_hash=mobile_hash(mobile) if mobile else "",
                                 mobile_masked=mobile_masked(mobile) if mobile else "")


@pytest.fixture
def members(org):
    return {
        "a": member("A-0001", org.store_a, mobile="13800001234", unionid="oUNION-A", level="金卡"),
        "a2": member("A2-0001", org.store_a2, mobile="13900005678", level="银卡"),
        "b": member("B-0001", org.store_b, mobile="13700009999", unionid="oUNION-B", level="金卡"),
    }


def shown(response) -> set[str]:
    return {m.member_no for m in response.context["cl"].result_list}


@pytest.mark.parametrize(("term", "expected"), [
    ("A-0001", {"A-0001"}), ("+86 138-0000-1234", {"A-0001"}), ("13800001234", {"A-0001"}),
    ("oUNION-B", {"B-0001"}), ("A-000", set()), ("138****1234", set()), ("王", set()),
])
def test_hq_finds_a_member_by_exact_number_mobile_or_unionid(client, hq_operator, members, term, expected):
    client.force_login(hq_operator)
    response = client.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200 and shown(response) == expected


def test_the_list_and_the_form_show_only_the_masked_mobile(client, hq_operator, members):
    client.force_login(hq_operator)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "138****1234" in page and "13800001234" not in page and members["a"].mobile_hash not in page
    form = client.get(reverse("admin:customers_member_change", args=[members["a"].pk])).content.decode()
    assert "138****1234" in form and members["a"].mobile_hash not in form


def test_hq_changes_a_members_mobile_and_only_its_hash_and_mask_are_stored(client, hq_operator, members, org):
    client.force_login(hq_operator)
    url = reverse("admin:customers_member_change", args=[members["a"].pk])
    data = {"member_no": "A-0001", "name": "王芳", "mobile": "+86 186 0000 0000", "unionid": "oUNION-A",
            "level": "金卡", "points": 5, "lifetime_spend": "0", "order_count": 0, "last_purchase_on": "",
            "home_store": org.store_a.pk}
    assert client.post(url, {**data, "mobile": "12345"}).status_code == 200  # shown again with the reason
    response = client.post(url, data)
    assert response.status_code == 302
    stored = Member.objects.get(pk=members["a"].pk)
    assert stored.mobile_masked == "186****0000" and stored.mobile_hash == mobile_hash("18600000000")


def test_level_and_region_filters(client, hq_operator, members, org):
    client.force_login(hq_operator)
    response = client.get(reverse(CHANGELIST))
    titles = {str(spec.title) for spec in response.context["cl"].filter_specs}
    assert {"会员等级", "归属区域"} <= titles
    assert shown(client.get(reverse(CHANGELIST), {"level": "金卡"})) == {"A-0001", "B-0001"}
    # A 大区 covers the stores of its cities.
    assert shown(client.get(reverse(CHANGELIST), {"home_region": org.east.pk})) == {"A-0001", "A2-0001"}
    assert shown(client.get(reverse(CHANGELIST), {"home_region": org.east_hz.pk})) == {"A2-0001"}


@pytest.mark.parametrize(("persona", "expected"), [
    ("region_manager_east", {"A-0001", "A2-0001"}),
    ("franchisee_owner", {"A-0001", "A2-0001"}),
    ("store_manager_of_a", {"A-0001"}),
])
def test_regional_and_store_people_see_their_stores_members_read_only(client, request, members, persona, expected):
    user = request.getfixturevalue(persona)
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert shown(response) == expected
    assert shown(client.get(reverse(CHANGELIST), {"q": "13700009999"})) == set()  # store B's member
    assert client.get(reverse("admin:customers_member_change", args=[members["b"].pk])).status_code == 404
    own = members["a"]
    page = client.get(reverse("admin:customers_member_change", args=[own.pk]))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert client.get(reverse("admin:customers_member_add")).status_code == 403


def test_store_staff_do_not_use_the_member_admin(client, staff_of_a, members):
    client.force_login(staff_of_a)
    assert client.get(reverse(CHANGELIST)).status_code in (302, 403)


def test_the_member_shows_its_wecom_customer_and_hq_can_rematch(client, hq_operator, members, org):
    customer = CustomerFactory(staff=org.guide_a, unionid="oUNION-A")
    client.force_login(hq_operator)
    response = client.post(reverse(CHANGELIST), {"action": "unify_selected",
                                                 "_selected_action": [members["a"].pk]}, follow=True)
    assert "关联 1 个客户" in response.content.decode()
    assert Customer.objects.get(pk=customer.pk).member == members["a"]
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert str(customer) in page


def test_the_changelist_does_not_count_the_whole_table(client, hq_operator, members, django_assert_max_num_queries):
    client.force_login(hq_operator)
    with django_assert_max_num_queries(14):
        response = client.get(reverse(CHANGELIST))
    assert response.context["cl"].show_full_result_count is False
