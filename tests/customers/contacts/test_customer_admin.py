"""The customer and relationship admin, by persona: what each one finds by list, search, filter or URL.

At 10 M customers the list filters only on the customer row and searches with exact ids or an indexed
name prefix / trigram match; a store manager never sees another store's customers, however asked.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.contacts.services import customers_sync_full
from customers.members.services import mobile_hash
from customers.models import Customer, Member, Relationship, StageChange, Tag
from customers.tags.services import tags_pull
from portal import pagination
from portal.models import AuditEvent
from portal.wecom.gateway import wecom_call
from tests.customers.helpers import corp_tags_create, customers_load, sandbox_calls
from tests.factories import CustomerFactory, StaffFactory, TagFactory, relationship_in

CHANGELIST = "admin:customers_customer_changelist"


def _listed(client, **query) -> set[str]:
    response = client.get(reverse(CHANGELIST), query)
    assert response.status_code == 200, response.status_code
    return {c.external_userid for c in response.context["cl"].result_list}


@pytest.fixture
def people(org):
    """Customers of store A, A2 and B, with names made for searching, a tag and a member."""
    tag = TagFactory(name="高意向")
    a = {name: CustomerFactory(name=name, staff=org.guide_a) for name in ("张伟", "张伟伟", "李张伟", "Anna Lee")}
    a2 = CustomerFactory(name="杭州客户", staff=StaffFactory(store=org.store_a2))
    b = CustomerFactory(name="张伟", staff=org.guide_b, external_userid="wmSTOREB00000001", tag_ids=[tag.pk],
                        unionid="oSTOREBUNIONID0000000000001")
    a["张伟"].tag_ids = [tag.pk]
    a["张伟"].unionid = "oSTOREAUNIONID0000000000001"
    a["张伟"].member = Member.objects.create(member_no="M0001", mobile_hash=mobile_hash("13800001111"),
                                           mobile_masked="138****1111", level="金卡", points=120)
    a["张伟"].save()
    return {"a": a, "a2": a2, "b": b, "tag": tag}


# -- the list: search and filters -------------------------------------------------------------------------
def test_search_finds_exact_ids_name_prefixes_and_longer_names_anywhere(people, hq_operator, client):
    client.force_login(hq_operator)
    zhang = people["a"]["张伟"]
    assert _listed(client, q=zhang.external_userid) == {zhang.external_userid}
    assert _listed(client, q="oSTOREAUNIONID0000000000001") == {zhang.external_userid}
    assert _listed(client, q="13800001111") == {zhang.external_userid}  # the member's mobile, hashed
    # Two characters have no trigram: a prefix search (张伟, 张伟伟; not 李张伟).
    assert _listed(client, q="张伟") == {zhang.external_userid, people["a"]["张伟伟"].external_userid,
                                        people["b"].external_userid}
    assert _listed(client, q="李张伟") == {people["a"]["李张伟"].external_userid}
    assert _listed(client, q="anna") == {people["a"]["Anna Lee"].external_userid}  # any case
    assert _listed(client, q="NNA L") == {people["a"]["Anna Lee"].external_userid}  # contains, 3+ characters


def test_an_id_search_is_an_exact_match_not_a_scan(people, hq_operator, client):
    client.force_login(hq_operator)
    with CaptureQueriesContext(connection) as queries:
        _listed(client, q=people["a"]["张伟"].external_userid)
    sql = " ".join(q["sql"] for q in queries.captured_queries if "customers_customer" in q["sql"])
    assert '"customers_customer"."external_userid" = ' in sql and "UPPER" not in sql
    assert "COUNT(*)" not in sql.upper().replace("COUNT(*) FROM (SELECT", "")  # no count over the whole table


def test_filters_use_the_customer_row_region_store_stage_active_and_tag(people, org, hq_operator, client):
    client.force_login(hq_operator)
    east = _listed(client, region__id__exact=org.east.pk)  # a region includes its cities
    assert people["a2"].external_userid in east and people["b"].external_userid not in east
    assert _listed(client, store__id__exact=org.store_b.pk) == {people["b"].external_userid}
    assert _listed(client, tag=people["tag"].pk) == {people["a"]["张伟"].external_userid,
                                                     people["b"].external_userid}
    Customer.objects.filter(pk=people["a2"].pk).update(stage="visited", active=False)
    assert _listed(client, stage__exact="visited") == {people["a2"].external_userid}
    assert _listed(client, active__exact="0") == {people["a2"].external_userid}
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "admin-autocomplete" in page and "高意向" in page  # the store box and the tag choice


def test_the_list_costs_the_same_queries_for_5_or_50_customers(org, hq_operator, client):
    client.force_login(hq_operator)
    tag = TagFactory()
    for _ in range(5):
        CustomerFactory(staff=org.guide_a, tag_ids=[tag.pk])
    with CaptureQueriesContext(connection) as few:
        client.get(reverse(CHANGELIST))
    for _ in range(45):
        CustomerFactory(staff=org.guide_b, tag_ids=[tag.pk])
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse(CHANGELIST))
    assert len(page.context["cl"].result_list) == 50
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_deep_page_finds_its_ids_first_and_shows_the_same_customers(org, monkeypatch):
    """At OFFSET thousands the page's ids come from an index-only walk; only the page's rows are joined."""
    for _ in range(7):
        CustomerFactory(staff=org.guide_a)
    queryset = Customer.objects.select_related("store", "staff").order_by("-id")
    expected = [c.pk for c in queryset[2:4]]
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_FROM", 2)
    with CaptureQueriesContext(connection) as queries:
        shown = [c.pk for c in pagination.EstimatedCountPaginator(queryset, 2).page(2).object_list]
    assert shown == expected
    ids_sql, rows_sql = (q["sql"] for q in queries.captured_queries if "OFFSET" in q["sql"] or " IN (" in q["sql"])
    assert "OFFSET 2" in ids_sql and "stores_store" not in ids_sql  # the ids alone, no join
    assert "OFFSET" not in rows_sql and "stores_store" in rows_sql  # then the page's rows with their joins
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_FROM", 1000)
    assert [c.pk for c in pagination.EstimatedCountPaginator(queryset, 2).page(2).object_list] == expected


def test_a_costly_or_huge_filtered_count_is_the_planners_estimate_once_enough_rows_exist(org, monkeypatch):
    """Counting 40,000 张伟… exactly fetches a heap page each, a region's million customers would be cut at the
    cap: such lists show the planner's estimate — unless fewer than COUNT_PROBE rows really exist."""
    for _ in range(5):
        CustomerFactory(staff=org.guide_a)
    queryset = Customer.objects.filter(store=org.store_a).order_by("-id")
    rows, cost = pagination.query_plan_estimate(queryset)  # EXPLAIN's "Plan Rows" and "Total Cost", nothing run
    assert rows >= 1 and cost > 0

    def count():
        return pagination.EstimatedCountPaginator(queryset, 2).count

    monkeypatch.setattr(pagination, "query_plan_estimate", lambda queryset: (10, 50.0))
    assert count() == 5  # cheap: counted exactly
    monkeypatch.setattr(pagination, "query_plan_estimate", lambda queryset: (13_550, 45_694.0))
    assert count() == 5  # a costly plan but only a few rows really there: their exact count
    monkeypatch.setattr(pagination, "COUNT_PROBE", 3)
    with CaptureQueriesContext(connection) as queries:
        assert count() == 13_550  # enough rows seen: the estimate
    assert "LIMIT 3" in queries.captured_queries[-1]["sql"]  # the probe counted 3 rows, not all of them
    monkeypatch.setattr(pagination, "query_plan_estimate", lambda queryset: (1_098_635, 4_000.0))
    assert count() == 1_098_635  # more than the cap: an exact count could only say "100,000"


# -- scoping ------------------------------------------------------------------------------------------
def test_a_store_manager_never_sees_store_b_customers(people, org, store_manager_of_a, client):
    client.force_login(store_manager_of_a)
    b = people["b"]
    shown = _listed(client)
    assert people["a"]["张伟"].external_userid in shown and b.external_userid not in shown
    assert people["a2"].external_userid not in shown  # another store of the same franchisee
    assert _listed(client, q=b.external_userid) == set()
    assert _listed(client, q="oSTOREBUNIONID0000000000001") == set()
    assert b.external_userid not in _listed(client, q="张伟")
    assert _listed(client, store__id__exact=org.store_b.pk) == set()
    assert _listed(client, region__id__exact=org.south.pk) == set()
    assert _listed(client, tag=people["tag"].pk) == {people["a"]["张伟"].external_userid}
    page = client.get(reverse(CHANGELIST), {"store__id__exact": org.store_b.pk}).content.decode()
    assert org.store_b.name not in page and "华南大区" not in page
    for view in ("change", "history", "sync"):
        assert client.get(reverse(f"admin:customers_customer_{view}", args=[b.pk])).status_code == 404
    assert client.post(reverse("admin:customers_customer_sync", args=[b.pk])).status_code == 404
    relationships = client.get(reverse("admin:customers_relationship_changelist")).context["cl"].result_list
    assert {r.store_id for r in relationships} == {org.store_a.pk}


def test_a_region_manager_sees_the_region_and_store_staff_have_no_admin(people, region_manager_east, staff_of_a,
                                                                        client):
    client.force_login(region_manager_east)
    shown = _listed(client)
    assert people["a2"].external_userid in shown and people["b"].external_userid not in shown
    client.force_login(staff_of_a)
    assert client.get(reverse(CHANGELIST)).status_code in (302, 403)


# -- the customer page -------------------------------------------------------------------------------------
def test_the_customer_page_shows_each_section_only_with_something_in_it(people, org, hq_operator,
                                                                       store_manager_of_a, client):
    zhang = people["a"]["张伟"]
    Relationship.objects.create(customer=zhang, staff=org.guide_b, store=org.store_b, added_at=zhang.first_added_at,
                                remark="南方店的备注")
    bare = people["a"]["张伟伟"]

    client.force_login(hq_operator)
    page = client.get(reverse("admin:customers_customer_change", args=[bare.pk])).content.decode()
    assert "customer-member" not in page and "customer-stage-changes" not in page
    assert "customer-transfer-failures" not in page and "敬请期待" not in page
    StageChange.objects.create(customer=zhang, from_stage="fan", to_stage="interested", cause="tagged")
    AuditEvent.objects.create(action="customers.transfer_fail", target_type="customers.customer",
                              target_ids=[zhang.pk], detail={"takeover_userid": "a-manager",
                                                             "reason": "customer_refused"})
    page = client.get(reverse("admin:customers_customer_change", args=[zhang.pk])).content.decode()
    assert "customer-member" in page and "金卡" in page and "138****1111" in page
    assert "customer-stage-changes" in page and "高意向" in page
    assert "customer-transfer-failures" in page and "客户拒绝" in page
    assert "南方店的备注" in page  # HQ sees every relationship

    client.force_login(store_manager_of_a)
    page = client.get(reverse("admin:customers_customer_change", args=[zhang.pk])).content.decode()
    assert "南方店的备注" not in page  # a store sees its own relationships only
    assert "立即从企业微信同步" not in page and 'name="_save"' not in page  # viewing only


def test_hq_tags_selected_customers_through_a_form(wecom_org, sandbox, hq_operator, client):
    ids = customers_load(sandbox, "a-guide", 3, prefix="A")
    corp_tags_create("意向", ["高意向"])
    tags_pull()
    customers_sync_full()
    tag = Tag.objects.get(name="高意向")
    chosen = list(Customer.objects.filter(external_userid__in=ids[:2]).values_list("pk", flat=True))
    client.force_login(hq_operator)

    form = client.post(reverse(CHANGELIST), {"action": "tag_selected", "index": 0, "_selected_action": chosen})
    assert form.status_code == 200 and "确认打标签" in form.content.decode()
    done = client.post(reverse(CHANGELIST), {"action": "tag_selected", "index": 0, "_selected_action": chosen,
                                             "select_across": "0", "apply": "1", "tags": [tag.pk]}, follow=True)
    assert "已处理 2 个客户的 2 个跟进关系" in done.content.decode()
    assert set(Customer.objects.filter(tag_ids__contains=[tag.pk]).values_list("external_userid", flat=True)) == \
        set(ids[:2])
    assert len(sandbox_calls(sandbox, "externalcontact/mark_tag")) == 2


def test_sync_this_customer_now_brings_wecom_changes(wecom_org, sandbox, hq_operator, client):
    (external_userid,) = customers_load(sandbox, "a-guide", 1, prefix="A")
    customers_sync_full()
    sandbox.do("customers/load", follows=[{"userid": "a-guide", "external_userid": external_userid,
                                           "remark": "改过的备注"}])
    customer = Customer.objects.get(external_userid=external_userid)
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_customer_sync", args=[customer.pk]), follow=True)
    assert "已从企业微信同步 1 个客户" in response.content.decode()
    assert Relationship.objects.get(customer=customer).remark == "改过的备注"


# -- relationships -----------------------------------------------------------------------------------------
def test_a_remark_is_written_to_wecom_first_and_a_too_long_one_never_leaves(wecom_org, sandbox, hq_operator,
                                                                            store_manager_of_a, client):
    (external_userid,) = customers_load(sandbox, "a-guide", 1, prefix="A")
    customers_sync_full()
    relationship = Relationship.objects.get(customer__external_userid=external_userid)
    url = reverse("admin:customers_relationship_change", args=[relationship.pk])
    client.force_login(hq_operator)

    too_long = client.post(url, {"remark": "长" * 21, "description": ""})
    assert too_long.status_code == 200 and "最多 20 个字" in too_long.content.decode()
    assert sandbox_calls(sandbox, "externalcontact/remark") == []

    assert client.post(url, {"remark": "爱喝拿铁", "description": "周末来店"}).status_code == 302
    follow = wecom_call("externalcontact/get", method="get",
                        params={"external_userid": external_userid})["follow_user"][0]
    assert (follow["remark"], follow["description"]) == ("爱喝拿铁", "周末来店")
    relationship.refresh_from_db()
    assert (relationship.remark, relationship.description) == ("爱喝拿铁", "周末来店")

    client.force_login(store_manager_of_a)
    assert client.get(url).status_code == 200  # viewing
    assert client.post(url, {"remark": "店长改的", "description": ""}).status_code == 403


# -- the count an HQ operator is told on a huge list -------------------------------------------------------
def _paginator_line(client) -> str:
    page = client.get(reverse("admin:customers_customer_changelist"), {"q": "张"}).content.decode()
    return page[page.index('<p class="paginator">'):].split("</p>", 1)[0]


def test_an_estimated_count_says_about_and_an_exact_one_does_not(org, hq_operator, client, monkeypatch):
    for i in range(3):
        CustomerFactory(name=f"张{i}号", staff=org.guide_a)
    client.force_login(hq_operator)
    exact = _paginator_line(client)
    assert "约" not in exact and "3" in exact

    # What a search over millions looks like: a costly plan, more rows than the probe.
    monkeypatch.setattr(pagination, "query_plan_estimate", lambda queryset: (40_000, 90_000.0))
    monkeypatch.setattr(pagination, "COUNT_PROBE", 2)
    estimated = _paginator_line(client)
    assert "约" in estimated and "40000" in estimated.replace(",", "")


# -- a hand-edited list URL with a non-numeric store, region or tag: Django's "bad filter" answer, not a 500 --
@pytest.mark.parametrize("param", ["store__id__exact", "region__id__exact", "tag"])
def test_a_non_numeric_filter_value_is_refused_cleanly(org, hq_operator, client, param):
    TagFactory(name="高意向")  # the tag filter is offered only when the corp has tags
    client.force_login(hq_operator)
    response = client.get(reverse("admin:customers_customer_changelist"), {param: "1 OR 1=1"})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


# -- remark mobiles on the relationship page: masked, like members' mobiles ---------------------------------
def test_hq_sees_remark_mobiles_masked_never_whole(org, hq_operator, client):
    relationship = relationship_in(org.store_a)
    relationship.remark_mobiles = ["+86 138-0013-8000", "0571-8888666"]
    relationship.save(update_fields=["remark_mobiles"])
    client.force_login(hq_operator)
    page = client.get(reverse("admin:customers_relationship_change", args=[relationship.pk])).content.decode()
    assert "138****8000" in page and "****8666" in page
    assert "138-0013-8000" not in page and "13800138000" not in page and "0571-8888666" not in page
