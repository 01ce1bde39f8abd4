"""HQ builds segments in the admin without typing JSON, sees the live count, a sample and the meaning,
and freezes snapshots; region managers look at their share; store managers stay out."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from customers.lifecycle.services import customer_stage_set
from customers.models import Segment, SegmentSnapshot, SegmentSnapshotMember, Stage, StageChange
from customers.segments import services as segments_service
from tests.customers.segments.helpers import customer, member, segment, tags

ADD = reverse("admin:customers_segment_add")
CHANGELIST = reverse("admin:customers_segment_changelist")


def change_url(seg) -> str:
    return reverse("admin:customers_segment_change", args=[seg.pk])


def materialize_url(seg) -> str:
    return reverse("admin:customers_segment_materialize", args=[seg.pk])


@pytest.fixture
def people(org):
    vip, mom, black = tags("VIP", "宝妈", "黑名单")
    east = [customer(org.guide_a, name=f"华东{i}", tags=[vip], stage=Stage.INTERESTED,
                     member=member(spend="500")) for i in range(3)]
    south = [customer(org.guide_b, name=f"华南{i}", tags=[vip, mom], stage=Stage.INTERESTED) for i in range(2)]
    return {"vip": vip, "mom": mom, "black": black, "east": east, "south": south}


def shown_count(page) -> int:
    return int(re.search(r'id="segment-count">(\d+)<', page.content.decode()).group(1))


def test_hq_builds_a_segment_from_form_fields_and_the_rule_is_written(hq_operator, people, org, client):
    client.force_login(hq_operator)
    assert client.get(ADD).status_code == 200
    response = client.post(ADD, {
        "name": "华东高消费意向客户", "tags_any": [people["vip"].pk, people["mom"].pk],
        "tags_none": [people["black"].pk],
        "regions": [org.east.pk], "stages": ["interested", "lead"], "last_touch_before": "30", "active": "1",
        "first_added_from": "2026-01-01", "spend_min": "100", "rfm_r_min": "2", "member_levels": "金卡，银卡",
    })
    assert response.status_code == 302, response.context["adminform"].form.errors
    seg = Segment.objects.get(name="华东高消费意向客户")
    assert seg.rule == {
        "tags": {"any": sorted([people["vip"].pk, people["mom"].pk]), "none": [people["black"].pk]},
        "regions": [org.east.pk], "stages": ["interested", "lead"], "first_added": {"from": "2026-01-01"},
        "last_touch": {"before": 30}, "active": True, "member_levels": ["金卡", "银卡"],
        "spend": {"min": "100.00"}, "rfm": {"r": {"min": 2}},
    }
    assert seg.created_by == hq_operator


def test_the_change_page_shows_the_live_count_its_time_the_sample_and_the_meaning(hq_operator, people, org,
                                                                                    client):
    seg = segment({"tags": {"any": [people["vip"].pk]}, "regions": [org.east.pk]})
    client.force_login(hq_operator)
    page = client.get(change_url(seg))
    html = page.content.decode()
    assert shown_count(page) == 3
    assert re.search(r'id="segment-count-ms">\d+<', html)
    assert "标签含任一：VIP；且区域：华东大区（含下级）" in html
    assert all(c.name in html for c in people["east"]) and "华南0" not in html
    assert "物化为快照" in html
    # the form shows the stored rule back, so saving without touching it keeps it
    form = page.context["adminform"].form
    assert form.initial["tags_any"] == [people["vip"].pk] and form.initial["regions"] == [org.east.pk]
    seg.refresh_from_db()
    assert seg.last_count == 3


def test_a_contradictory_rule_is_refused_and_nothing_is_saved(hq_operator, people, client):
    client.force_login(hq_operator)
    response = client.post(ADD, {"name": "颠倒", "spend_min": "500", "spend_max": "100",
                                 "first_added_from": "2026-02-30"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "请填写日期（如 2026-01-01）或天数（如 30）" in html
    response = client.post(ADD, {"name": "颠倒", "spend_min": "500", "spend_max": "100"})
    assert "累计消费的范围颠倒：最低金额大于最高金额" in response.content.decode()
    response = client.post(ADD, {"name": "空"})
    assert "规则为空：请至少设置一个条件" in response.content.decode()
    assert not Segment.objects.exists()


def test_editing_keeps_what_was_not_touched(hq_operator, people, org, client):
    seg = segment({"tags": {"all": [people["vip"].pk]}, "stages": ["interested"], "last_touch": {"after": 7},
                   "spend": {"max": "1000.00"}, "member": True}, name="旧名字")
    client.force_login(hq_operator)
    form = client.get(change_url(seg)).context["adminform"].form
    data = {"name": "新名字", "tags_all": form.initial["tags_all"], "stages": form.initial["stages"],
            "last_touch_after": form.initial["last_touch_after"], "spend_max": form.initial["spend_max"],
            "member": form.initial["member"]}
    assert client.post(change_url(seg), data).status_code == 302
    seg.refresh_from_db()
    assert seg.name == "新名字"
    assert seg.rule == {"tags": {"all": [people["vip"].pk]}, "stages": ["interested"], "last_touch": {"after": 7},
                        "spend": {"max": "1000.00"}, "member": True}


def test_a_region_manager_sees_the_count_of_their_region_only_and_cannot_change_or_freeze(
        region_manager_east, hq_operator, people, client):
    seg = segment({"tags": {"any": [people["vip"].pk]}})
    client.force_login(region_manager_east)
    page = client.get(change_url(seg))
    assert page.status_code == 200 and shown_count(page) == 3  # the south's 2 are not theirs
    assert "物化为快照" not in page.content.decode()
    assert client.post(change_url(seg), {"name": "改名", "stages": ["fan"]}).status_code == 403
    assert client.post(materialize_url(seg)).status_code == 403
    assert "最近人数" not in client.get(CHANGELIST).content.decode()
    assert not SegmentSnapshot.objects.exists()
    seg.refresh_from_db()
    assert seg.last_count is None  # their count is not the segment's


@pytest.mark.parametrize("persona", ["store_manager_of_a", "franchisee_owner", "hq_finance"])
def test_others_cannot_open_the_segment_admin(persona, people, client, request):
    seg = segment({"tags": {"any": [people["vip"].pk]}})
    client.force_login(request.getfixturevalue(persona))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(seg)).status_code == 403
    assert client.post(materialize_url(seg)).status_code == 403


def test_the_button_freezes_a_snapshot_shown_on_the_page_and_read_only(hq_operator, people, client):
    seg = segment({"tags": {"any": [people["mom"].pk]}})
    client.force_login(hq_operator)
    response = client.post(materialize_url(seg), follow=True)
    assert "已生成快照" in response.content.decode()
    snapshot = SegmentSnapshot.objects.get(segment=seg)
    assert snapshot.size == 2 and snapshot.status == SegmentSnapshot.Status.DONE
    assert "已完成" in client.get(change_url(seg)).content.decode()
    url = reverse("admin:customers_segmentsnapshot_change", args=[snapshot.pk])
    html = client.get(url).content.decode()
    assert "标签含任一：宝妈" in html and "华南0" in html and 'name="_save"' not in html
    assert client.post(url, {"size": 99}).status_code == 403
    assert client.post(reverse("admin:customers_segmentsnapshot_delete", args=[snapshot.pk]),
                       {"post": "yes"}).status_code == 403
    assert SegmentSnapshotMember.objects.filter(snapshot=snapshot).count() == 2


def test_a_big_segment_is_queued_and_its_status_shown(hq_operator, people, client, monkeypatch):
    monkeypatch.setattr(segments_service, "SNAPSHOT_SYNC_MAX", 1)
    seg = segment({"tags": {"any": [people["vip"].pk]}})
    client.force_login(hq_operator)
    response = client.post(materialize_url(seg), follow=True)
    assert "已在后台生成" in response.content.decode()
    assert SegmentSnapshot.objects.get(segment=seg).status == SegmentSnapshot.Status.QUEUED
    assert "排队中" in client.get(change_url(seg)).content.decode()


def test_the_changelist_action_freezes_the_selected_segments(hq_operator, people, client):
    one = segment({"tags": {"any": [people["vip"].pk]}}, name="一")
    two = segment({"tags": {"any": [people["mom"].pk]}}, name="二")
    client.force_login(hq_operator)
    client.post(CHANGELIST, {"action": "materialize_selected", "_selected_action": [one.pk, two.pk]})
    assert dict(SegmentSnapshot.objects.values_list("segment__name", "size")) == {"一": 5, "二": 2}


def test_the_stage_history_is_scoped_filterable_and_searchable_exactly(region_manager_east, hq_operator, people,
                                                                       client):
    from customers.models import Customer

    everyone = Customer.objects.filter(pk__in=[c.pk for c in people["east"] + people["south"]])
    customer_stage_set(customers=everyone, stage=Stage.LEAD, cause=StageChange.Cause.MANUAL, viewer=hq_operator,
                       by=hq_operator)
    url = reverse("admin:customers_stagechange_changelist")
    client.force_login(region_manager_east)
    shown = {row.customer_id for row in client.get(url).context["cl"].result_list}
    assert shown == {c.pk for c in people["east"]}
    assert not client.get(url, {"cause__exact": "deal"}).context["cl"].result_list
    first = people["east"][0]
    found = client.get(url, {"q": first.external_userid}).context["cl"].result_list
    assert [row.customer_id for row in found] == [first.pk]
    assert not client.get(url, {"q": people["south"][0].external_userid}).context["cl"].result_list
    assert not client.get(url, {"q": first.external_userid.lower()}).context["cl"].result_list  # exact, indexed
    change = client.get(reverse("admin:customers_stagechange_change",
                                args=[StageChange.objects.filter(customer=first).get().pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
