"""Corp tags both ways with WeCom, and tagging customers one by one and by the thousand.

HQ edits tags in the admin (WeCom is asked first; bad names never reach it); edits made in WeCom
arrive by callback; tagging many customers is a batched job that records WeCom's refusals.
"""

from __future__ import annotations

import base64
import importlib
import json
import pickle
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.apps import apps as django_apps
from django.urls import reverse

from customers.contacts.selection import CustomerSelection, customer_selection_of_ids
from customers.contacts.services import customers_sync_full, stages_advance_for_tags
from customers.models import Customer, Relationship, Stage, StageChange, Tag, TagGroup
from customers.tags.services import (
    TAGGING_INLINE_MAX,
    TagError,
    customers_tag,
    customers_tagging_run,
    tag_advance_set,
    tag_create,
    tag_group_create,
    tag_ids_purge,
    tags_pull,
)
from customers.tags.tasks import customers_tagging_task
from portal.models import AuditEvent
from portal.wecom.gateway import wecom_call
from portal.wecom.models import SyncRun
from stores.models import Access
from tests.conftest import eventually
from tests.customers.helpers import corp_tags_create, customers_load, sandbox_calls
from tests.factories import CustomerFactory, TagFactory

ADD_TAG, MARK_TAG = "externalcontact/add_corp_tag", "externalcontact/mark_tag"
EVERYONE = CustomerSelection()  # no filter: every customer the acting user may see


def _wecom_tags() -> dict[str, list[str]]:
    groups = wecom_call("externalcontact/get_corp_tag_list", data={})["tag_group"]
    return {g["group_name"]: sorted(t["name"] for t in g["tag"]) for g in groups}


def _inline_management(prefix: str = "tags") -> dict:
    return {f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0", f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "0"}


# -- pull ----------------------------------------------------------------------------------------------
def test_a_pull_mirrors_wecom_and_marks_what_wecom_dropped_as_deleted(wecom_org, sandbox):
    ids = corp_tags_create("会员等级", ["金卡", "银卡"])
    first = tags_pull()
    assert (first.groups, first.tags) == (1, 2)
    group = TagGroup.objects.get(name="会员等级")
    assert set(group.tags.values_list("name", flat=True)) == {"金卡", "银卡"}
    Tag.objects.filter(wecom_tag_id=ids["金卡"]).update(advances_to="interested")  # ours alone

    sandbox.do("tags/edit_in_wecom", change_type="update", tag_type="tag", id=ids["金卡"], name="金卡会员")
    sandbox.do("tags/edit_in_wecom", change_type="delete", tag_type="tag", id=ids["银卡"])
    second = tags_pull()

    gold = Tag.objects.get(wecom_tag_id=ids["金卡"])
    assert gold.name == "金卡会员" and gold.advances_to == "interested" and not gold.deleted
    assert Tag.objects.get(wecom_tag_id=ids["银卡"]).deleted
    assert second.deleted_tag_ids == [Tag.objects.get(wecom_tag_id=ids["银卡"]).pk]


def test_a_deleted_tag_leaves_relationships_and_customers(wecom_org, sandbox):
    ids = corp_tags_create("会员等级", ["金卡", "银卡"])
    customers_load(sandbox, "a-guide", 3, prefix="A", tag_ids=[ids["金卡"], ids["银卡"]])
    customers_sync_full()
    silver = Tag.objects.get(wecom_tag_id=ids["银卡"])
    assert Customer.objects.filter(tag_ids__contains=[silver.pk]).count() == 3

    tag_ids_purge(tag_ids=[silver.pk])

    assert not Customer.objects.filter(tag_ids__contains=[silver.pk]).exists()
    assert not Relationship.objects.filter(tag_ids__contains=[silver.pk]).exists()
    assert Customer.objects.filter(tag_ids__contains=[Tag.objects.get(name="金卡").pk]).count() == 3


@pytest.mark.integration
def test_tag_edits_made_in_wecom_reach_the_portal(wecom_org, wecom_live):
    created = wecom_live.do("tags/edit_in_wecom", change_type="create", tag_type="tag_group", name="兴趣",
                            tags=["烘焙", "咖啡"])
    group = eventually(lambda: TagGroup.objects.filter(wecom_group_id=created["id"]).first())
    assert set(group.tags.values_list("name", flat=True)) == {"烘焙", "咖啡"}
    coffee = Tag.objects.get(name="咖啡")
    customers_load(wecom_live, "a-guide", 2, prefix="A", tag_ids=[coffee.wecom_tag_id])
    customers_sync_full()

    wecom_live.do("tags/edit_in_wecom", change_type="update", tag_type="tag", id=coffee.wecom_tag_id, name="精品咖啡")
    eventually(lambda: Tag.objects.filter(pk=coffee.pk, name="精品咖啡").exists())
    wecom_live.do("tags/edit_in_wecom", change_type="delete", tag_type="tag", id=coffee.wecom_tag_id)
    eventually(lambda: Tag.objects.filter(pk=coffee.pk, deleted=True).exists())
    eventually(lambda: not Customer.objects.filter(tag_ids__contains=[coffee.pk]).exists())  # purged by a task


# -- push: checked before any call, WeCom first ------------------------------------------------------
def test_names_and_the_3000_tag_limit_are_checked_before_any_call(wecom_org, sandbox, hq_operator, client):
    group = TagGroup.objects.create(name="兴趣", wecom_group_id="etGROUP1")
    with pytest.raises(TagError, match="最多 30 个字"):
        tag_group_create(name="很" * 31, tag_names=["烘焙"])
    with pytest.raises(TagError, match="最多 30 个字"):
        tag_create(group=group, name="长" * 31)
    with pytest.raises(TagError, match="重复"):
        tag_group_create(name="来源", tag_names=["海报", "海报"])
    Tag.objects.bulk_create([Tag(group=group, name=f"标签{i}", wecom_tag_id=f"et{i}") for i in range(3000)])
    with pytest.raises(TagError, match="最多 3,000 个"):
        tag_create(group=group, name="再来一个")

    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_taggroup_add"), {
        "name": "长" * 31, "order": 0, "tag_names": "烘焙", **_inline_management()})
    assert response.status_code == 200 and "30" in response.content.decode()
    assert sandbox_calls(sandbox, ADD_TAG) == []


def test_hq_creates_renames_and_deletes_tags_in_the_admin_and_wecom_has_them_first(wecom_org, sandbox,
                                                                                   hq_operator, client):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_taggroup_add"), {
        "name": "会员等级", "order": 0, "tag_names": "金卡\n银卡\n", **_inline_management()})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _wecom_tags() == {"会员等级": sorted(["金卡", "银卡"])}
    group = TagGroup.objects.get(name="会员等级")
    gold = Tag.objects.get(group=group, name="金卡")
    assert group.wecom_group_id and gold.wecom_tag_id

    response = client.post(reverse("admin:customers_tag_change", args=[gold.pk]),
                           {"name": "金卡会员", "order": 0, "advances_to": "interested"})
    assert response.status_code == 302
    assert "金卡会员" in _wecom_tags()["会员等级"]
    gold.refresh_from_db()
    assert (gold.name, gold.advances_to) == ("金卡会员", "interested")

    response = client.post(reverse("admin:customers_tag_delete", args=[gold.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert _wecom_tags() == {"会员等级": ["银卡"]}
    assert Tag.objects.get(pk=gold.pk).deleted


def test_a_change_wecom_refuses_changes_nothing_here_and_says_why(wecom_org, sandbox, hq_operator, client):
    corp_tags_create("会员等级", ["金卡"])
    tags_pull()
    group = TagGroup.objects.get(name="会员等级")
    wecom_call(ADD_TAG, data={"group_id": group.wecom_group_id, "tag": [{"name": "银卡"}]})  # not pulled yet

    with pytest.raises(TagError, match="企业微信拒绝"):
        tag_create(group=group, name="银卡")
    assert list(group.tags.values_list("name", flat=True)) == ["金卡"]

    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_tag_add"), {"group": group.pk, "name": "银卡", "order": 0,
                                                                "advances_to": ""}, follow=True)
    assert "企业微信拒绝" in response.content.decode()
    assert list(group.tags.values_list("name", flat=True)) == ["金卡"]


def test_hq_operator_setting_a_tags_stage_advances_its_customers_at_their_next_refresh(org, hq_operator):
    """tag_advance_set: ours alone (no WeCom call), audited when it changes, a stage the lifecycle knows; the
    customers carrying the tag move forward when they are next refreshed, never back."""
    tag = TagFactory(name="高意向")
    fan = CustomerFactory(staff=org.guide_a, tag_ids=[tag.pk], stage=Stage.FAN)
    buyer = CustomerFactory(staff=org.guide_a, tag_ids=[tag.pk], stage=Stage.CUSTOMER)

    tag_advance_set(tag=tag, advances_to=Stage.INTERESTED, by=hq_operator)
    tag_advance_set(tag=tag, advances_to=Stage.INTERESTED, by=hq_operator)  # the form saved again unchanged

    assert Tag.objects.get(pk=tag.pk).advances_to == Stage.INTERESTED
    event = AuditEvent.objects.get(action="customers.tag.advance_set")
    assert event.actor == hq_operator and event.target_ids == [tag.pk]
    assert event.detail == {"name": "高意向", "from": "", "to": Stage.INTERESTED}
    assert stages_advance_for_tags(customer_ids=[fan.pk, buyer.pk]) == 1
    assert [Customer.objects.get(pk=c.pk).stage for c in (fan, buyer)] == [Stage.INTERESTED, Stage.CUSTOMER]
    with pytest.raises(TagError):
        tag_advance_set(tag=tag, advances_to="vip", by=hq_operator)
    assert Tag.objects.get(pk=tag.pk).advances_to == Stage.INTERESTED


@pytest.mark.parametrize("persona", ["region_manager_east", "franchisee_owner", "store_manager_of_a"])
def test_only_hq_manages_tags(persona, request, client):
    client.force_login(request.getfixturevalue(persona))
    assert client.get(reverse("admin:customers_tag_changelist")).status_code == 403
    assert client.get(reverse("admin:customers_taggroup_add")).status_code == 403


# -- tagging customers ----------------------------------------------------------------------------------
@pytest.fixture
def interest_tag(wecom_org):
    corp_tags_create("意向", ["高意向", "到店"])
    tags_pull()
    Tag.objects.filter(name="高意向").update(advances_to="interested")
    return Tag.objects.get(name="高意向")


def test_tagging_250_relationships_goes_in_batches_records_a_refusal_and_is_safe_to_repeat(
        wecom_org, sandbox, interest_tag, hq_operator):
    ids = customers_load(sandbox, "a-guide", 250, prefix="A")
    customers_sync_full()
    Customer.objects.filter(external_userid=ids[1]).update(stage="customer")  # already further along
    sandbox.do("members/delete_customer", userid="a-guide", external_userid=ids[0])  # not heard of yet

    run = customers_tag(selection=EVERYONE, add=[interest_tag], remove=[], viewer=hq_operator, by=hq_operator)
    assert run.status == SyncRun.Status.RUNNING  # more than a handful: a job (its task is queued after commit)
    run = customers_tagging_run(run_id=run.pk)

    progress = run.progress
    assert run.status == SyncRun.Status.DONE and progress["batches"] == 3
    assert (progress["relationships_done"], progress["relationships_failed"]) == (249, 1)
    assert progress["errors"][0]["external_userid"] == ids[0] and progress["errors"][0]["errcode"] == 84061
    tagged = Customer.objects.filter(tag_ids__contains=[interest_tag.pk])
    assert tagged.count() == 249 and not tagged.filter(external_userid=ids[0]).exists()
    assert Relationship.objects.filter(tag_ids__contains=[interest_tag.pk]).count() == 249
    assert Customer.objects.filter(stage="interested").count() == 248  # the 成交 customer stays 成交
    moves = StageChange.objects.filter(cause="tagged")
    assert moves.count() == 248 and set(moves.values_list("by", flat=True)) == {hq_operator.pk}
    assert len(sandbox_calls(sandbox, MARK_TAG)) == 250

    assert customers_tagging_run(run_id=run.pk).progress == progress  # a finished job does nothing again
    assert len(sandbox_calls(sandbox, MARK_TAG)) == 250
    again = customers_tagging_run(run_id=customers_tag(selection=EVERYONE, add=[interest_tag],
                                                       remove=[], viewer=hq_operator, by=hq_operator).pk)
    assert again.progress["relationships_done"] == 249 and tagged.count() == 249  # the same state
    assert StageChange.objects.filter(cause="tagged").count() == 248


def test_a_few_customers_are_tagged_and_untagged_at_once(wecom_org, sandbox, interest_tag, hq_operator):
    ids = customers_load(sandbox, "a-guide", 2, prefix="A")
    customers_sync_full()
    few = customer_selection_of_ids(ids=list(Customer.objects.filter(external_userid__in=ids)
                                             .values_list("pk", flat=True)))
    assert len(few.ids) <= TAGGING_INLINE_MAX

    run = customers_tag(selection=few, add=[interest_tag], remove=[], viewer=hq_operator, by=hq_operator)
    assert run.status == SyncRun.Status.DONE and run.progress["relationships_done"] == 2
    follow = wecom_call("externalcontact/get", method="get", params={"external_userid": ids[0]})["follow_user"][0]
    assert [t["tag_id"] for t in follow["tags"]] == [interest_tag.wecom_tag_id]

    customers_tag(selection=few, add=[], remove=[interest_tag], viewer=hq_operator, by=hq_operator)
    assert not Customer.objects.filter(tag_ids__contains=[interest_tag.pk]).exists()
    assert Customer.objects.get(external_userid=ids[0]).stage == "interested"  # stages never go back by tags


def test_tagging_needs_a_tag_and_cannot_add_and_remove_the_same_one(wecom_org, interest_tag, hq_operator):
    with pytest.raises(TagError, match="请选择"):
        customers_tag(selection=EVERYONE, add=[], remove=[], viewer=hq_operator, by=hq_operator)
    with pytest.raises(TagError, match="既添加又移除"):
        customers_tag(selection=EVERYONE, add=[interest_tag], remove=[interest_tag], viewer=hq_operator, by=hq_operator)
    Tag.objects.filter(pk=interest_tag.pk).update(deleted=True)
    interest_tag.refresh_from_db()
    with pytest.raises(TagError, match="已删除"):
        customers_tag(selection=EVERYONE, add=[interest_tag], remove=[], viewer=hq_operator, by=hq_operator)
    assert not SyncRun.objects.filter(kind="customers.tagging").exists()


# -- what a tagging job stores: data, never a query -----------------------------------------------------
def _tag_from_the_list(client, query: dict, tag: Tag):
    """"Select all" on the customer list filtered by ``query`` (the browser also sends the page's ticked rows),
    then 给所选客户打标签 with ``tag``."""
    url = f"{reverse('admin:customers_customer_changelist')}?{urlencode(query)}"
    ticked = list(Customer.objects.values_list("pk", flat=True)[:1])
    return client.post(url, {"action": "tag_selected", "select_across": "1", "index": "0", "apply": "1",
                             "_selected_action": ticked, "tags": [tag.pk]}, follow=True)


def test_bulk_tagging_a_filtered_list_tags_exactly_the_filtered_customers_in_the_worker(
        wecom_org, sandbox, interest_tag, hq_operator, client):
    a = customers_load(sandbox, "a-guide", 25, prefix="A")
    b = customers_load(sandbox, "b-guide", 5, prefix="B")
    customers_sync_full()
    client.force_login(hq_operator)

    response = _tag_from_the_list(client, {"store__id__exact": wecom_org.store_a.pk}, interest_tag)

    assert response.status_code == 200
    run = SyncRun.objects.get(kind="customers.tagging")
    assert run.status == SyncRun.Status.RUNNING  # 25 customers: a job for the worker
    assert run.progress["selection"] == {"filters": {"store__id__exact": str(wecom_org.store_a.pk)}}
    assert run.progress["by"] == hq_operator.pk
    assert customers_tagging_task(run_id=run.pk) == SyncRun.Status.DONE  # the task's body, as the worker runs it
    tagged = set(Customer.objects.filter(tag_ids__contains=[interest_tag.pk]).values_list("external_userid",
                                                                                            flat=True))
    assert tagged == set(a) and not tagged & set(b)


def test_the_stored_job_is_plain_json_with_no_pickled_query(wecom_org, sandbox, interest_tag, hq_operator):
    customers_load(sandbox, "a-guide", 21, prefix="A")
    customers_sync_full()
    run = customers_tag(selection=CustomerSelection(filters={"stage__exact": "fan"}), add=[interest_tag],
                        remove=[], viewer=hq_operator, by=hq_operator)
    stored = SyncRun.objects.get(pk=run.pk).progress
    assert json.loads(json.dumps(stored)) == stored and "_query" not in stored
    assert "gASV" not in json.dumps(stored)  # base64 of a pickle's header


def test_a_filter_the_job_cannot_repeat_is_refused_and_no_job_is_made(wecom_org, sandbox, interest_tag, hq_operator,
                                                                      client):
    customers_load(sandbox, "a-guide", 3, prefix="A")
    customers_sync_full()
    client.force_login(hq_operator)
    response = _tag_from_the_list(client, {"name__startswith": "客户"}, interest_tag)
    assert any("不能用于批量处理" in str(m) for m in response.context["messages"])
    for query in ({"store__id__exact": "1 OR 1=1"}, {"stage__exact": "vip"}, {"tag": "-1"}):
        response = _tag_from_the_list(client, query, interest_tag)
        assert response.status_code == 200, query
    assert not SyncRun.objects.filter(kind="customers.tagging").exists()
    assert not Customer.objects.filter(tag_ids__contains=[interest_tag.pk]).exists()


def test_a_store_managers_job_tags_only_its_own_stores_relationships(wecom_org, sandbox, interest_tag,
                                                                    store_manager_of_a):
    a = customers_load(sandbox, "a-guide", 3, prefix="A")
    b = customers_load(sandbox, "b-guide", 3, prefix="B")
    customers_sync_full()
    run = customers_tag(selection=EVERYONE, add=[interest_tag], remove=[], viewer=store_manager_of_a,
                        by=store_manager_of_a)
    assert run.status == SyncRun.Status.DONE and run.progress["relationships_done"] == 3
    tagged = set(Customer.objects.filter(tag_ids__contains=[interest_tag.pk]).values_list("external_userid",
                                                                                            flat=True))
    assert tagged == set(a)
    assert {c["body"]["external_userid"] for c in sandbox_calls(sandbox, MARK_TAG)} == set(a)
    assert not tagged & set(b)


def test_a_job_whose_user_lost_their_scope_before_it_ran_tags_nothing(wecom_org, sandbox, interest_tag,
                                                                     region_manager_east):
    customers_load(sandbox, "a-guide", 25, prefix="A")
    customers_sync_full()
    run = customers_tag(selection=EVERYONE, add=[interest_tag], remove=[], viewer=region_manager_east,
                        by=region_manager_east)
    assert run.status == SyncRun.Status.RUNNING and run.progress["customers_estimate"] == 25
    Access.objects.filter(user=region_manager_east).delete()

    run = customers_tagging_run(run_id=run.pk)

    assert run.progress["customers_done"] == 0 and not sandbox_calls(sandbox, MARK_TAG)
    assert not Customer.objects.filter(tag_ids__contains=[interest_tag.pk]).exists()


class _Payload:
    """What someone able to write the column would store: unpickling it creates a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return Path.touch, (self.path,)


def test_a_tampered_stored_job_cannot_execute_anything_and_tags_no_one(wecom_org, sandbox, interest_tag,
                                                                       hq_operator, tmp_path):
    customers_load(sandbox, "a-guide", 25, prefix="A")
    customers_sync_full()
    run = customers_tag(selection=EVERYONE, add=[interest_tag], remove=[], viewer=hq_operator, by=hq_operator)
    marker = tmp_path / "pwned"
    for payload in ({"_query": base64.b64encode(pickle.dumps(_Payload(marker))).decode()},
                    {"selection": {"filters": {"id__gt": "0"}}}, {"selection": {"ids": ["1; DROP TABLE x"]}},
                    {"selection": "gASV"}):
        progress = {k: v for k, v in run.progress.items() if k != "selection"}
        SyncRun.objects.filter(pk=run.pk).update(progress={**progress, **payload}, status=SyncRun.Status.RUNNING)

        refused = customers_tagging_run(run_id=run.pk)

        assert refused.status == SyncRun.Status.FAILED and refused.error, payload
    assert not marker.exists()
    assert not sandbox_calls(sandbox, MARK_TAG)


def test_the_migration_retires_jobs_stored_with_a_pickled_query(db, tmp_path):
    marker = tmp_path / "pwned"
    payload = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    running = SyncRun.objects.create(kind="customers.tagging", progress={"_query": payload, "by": None})
    done = SyncRun.objects.create(kind="customers.tagging", status=SyncRun.Status.DONE, progress={"_query": payload})
    migration = importlib.import_module("customers.migrations.0007_tagging_jobs_drop_pickled_queries")

    migration.drop_pickled_queries(django_apps, None)

    running.refresh_from_db()
    done.refresh_from_db()
    assert running.status == SyncRun.Status.FAILED and "_query" not in running.progress and running.error
    assert done.status == SyncRun.Status.DONE and "_query" not in done.progress
    assert not marker.exists()
