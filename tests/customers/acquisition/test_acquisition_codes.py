"""Contact-way codes against the sandbox: 一人一码, store codes rotating among ≤ 100 staff, codes for every
store of a region in one action (a failing store recorded, a rerun creating nothing twice), and the admin
by persona: HQ manages, region managers create for their regions, store managers view and download their own."""

from __future__ import annotations

import pytest
from django.urls import reverse

from customers.acquisition.services import (
    WAY_MEMBERS_MAX,
    contact_way_create,
    contact_way_members_refresh,
    contact_ways_create_for_region,
    contact_ways_provision_run,
)
from customers.acquisition.state import contact_state_decode
from customers.models import Channel, ContactWay
from portal.wecom.gateway import WeComError
from portal.wecom.models import SyncRun
from stores.models import Staff
from tests.customers.acquisition.helpers import sandbox_members_load, way_in_sandbox
from tests.customers.helpers import sandbox_calls
from tests.factories import StaffFactory, StoreFactory

pytestmark = pytest.mark.integration
ADD = "externalcontact/add_contact_way"


def test_a_staff_code_is_made_in_wecom_with_a_state_that_names_store_and_staff(wecom_org, sandbox):
    way = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)

    assert way.config_id and way.qr_code and not way.last_error
    in_wecom = way_in_sandbox(way.config_id)
    assert (in_wecom["type"], in_wecom["user"], in_wecom["state"]) == (1, ["a-guide"], way.state)
    decoded = contact_state_decode(way.state)
    assert (decoded.store_id, decoded.staff_id, decoded.channel_code) == (wecom_org.store_a.pk,
                                                                          wecom_org.guide_a.pk, "")
    assert list(way.members.all()) == [wecom_org.guide_a]


def test_asking_twice_for_the_same_code_makes_it_once(wecom_org, sandbox):
    first = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)
    again = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)
    assert first.pk == again.pk and len(sandbox_calls(sandbox, ADD)) == 1


def test_a_store_code_rotates_among_the_stores_active_staff(wecom_org, sandbox):
    way = contact_way_create(kind=ContactWay.Kind.STORE, store=wecom_org.store_a)
    assert way_in_sandbox(way.config_id)["type"] == 2
    assert sorted(way_in_sandbox(way.config_id)["user"]) == ["a-guide", "a-manager"]
    picked = {wecom_org_scan(sandbox, way)["userid"] for _ in range(4)}
    assert picked == {"a-guide", "a-manager"}


def wecom_org_scan(sandbox, way) -> dict:
    return sandbox.do("customers/scan", config_id=way.config_id, customer={"name": "轮流"})


def test_a_store_code_takes_at_most_100_members(wecom_org, sandbox):
    big = StoreFactory(code="BIG1", name="旗舰店", region=wecom_org.east_sh)
    crowd = [StaffFactory(userid=f"big-{i:03d}", name=f"店员{i}", store=big) for i in range(WAY_MEMBERS_MAX + 5)]
    sandbox_members_load(sandbox, crowd)

    way = contact_way_create(kind=ContactWay.Kind.STORE, store=big)

    assert way.config_id, way.last_error
    assert len(way_in_sandbox(way.config_id)["user"]) == WAY_MEMBERS_MAX == way.members.count()


def test_a_code_wecom_refuses_keeps_the_reason_in_plain_chinese(wecom_org, sandbox):
    sandbox.do("faults", endpoint=ADD, errcode=40098, times=1)
    way = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)
    assert way.config_id is None and "实名认证" in way.last_error and "40098" in way.last_error
    again = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)
    assert again.pk == way.pk and again.config_id and again.last_error == ""


def test_codes_for_every_store_of_a_region_one_failing_then_a_rerun_completes(wecom_org, sandbox, hq_operator,
                                                                              django_capture_on_commit_callbacks):
    channel = Channel.objects.create(code="TABLE", name="桌贴", kind=Channel.Kind.TABLE_CARD)
    sandbox.do("faults", endpoint=ADD, errcode=40098, times=1)

    with django_capture_on_commit_callbacks() as queued:
        result = contact_ways_create_for_region(region=wecom_org.east, channel=channel,
                                                kind=ContactWay.Kind.CHANNEL_STORE, by=hq_operator)
    assert len(queued) == 1  # the Celery job, sent after commit
    assert (result.stores, result.new_codes, result.pending) == (2, 2, 2)  # A001 (上海) and A002 (杭州)
    run = contact_ways_provision_run(run_id=result.run.pk)

    assert run.status == SyncRun.Status.DONE
    assert (run.progress["created"], run.progress["failed"]) == (1, 1)
    failed = ContactWay.objects.get(config_id__isnull=True)
    assert "实名认证" in failed.last_error
    made = ContactWay.objects.get(config_id__isnull=False)
    assert way_in_sandbox(made.config_id)["state"] == made.state
    assert {w.store for w in ContactWay.objects.all()} == {wecom_org.store_a, wecom_org.store_a2}

    rerun = contact_ways_create_for_region(region=wecom_org.east, channel=channel,
                                           kind=ContactWay.Kind.CHANNEL_STORE, by=hq_operator)
    assert (rerun.new_codes, rerun.pending) == (0, 1)
    contact_ways_provision_run(run_id=rerun.run.pk)
    assert ContactWay.objects.filter(config_id__isnull=False).count() == 2
    assert len(sandbox_calls(sandbox, ADD)) == 3  # 2 + the one retried: nothing created twice


def test_staff_codes_for_a_region_make_one_code_per_active_member(wecom_org, sandbox):
    result = contact_ways_create_for_region(region=wecom_org.east_sh, channel=None, kind=ContactWay.Kind.STAFF)
    contact_ways_provision_run(run_id=result.run.pk)
    assert set(ContactWay.objects.values_list("staff__userid", flat=True)) == {"a-manager", "a-guide"}
    assert not ContactWay.objects.filter(config_id__isnull=True).exists()


def test_members_follow_staff_joining_and_leaving_the_store(wecom_org, sandbox):
    store_code = contact_way_create(kind=ContactWay.Kind.STORE, store=wecom_org.store_a)
    guide_code = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a)
    newcomer = StaffFactory(userid="a-new", name="新店员", store=wecom_org.store_a)
    sandbox_members_load(sandbox, [newcomer])
    Staff.objects.filter(pk=wecom_org.guide_a.pk).update(status=Staff.Status.DEPARTED,
                                                         departed_at="2026-01-01T00:00:00Z")

    assert contact_way_members_refresh(store=wecom_org.store_a) == 2

    assert sorted(way_in_sandbox(store_code.config_id)["user"]) == ["a-manager", "a-new"]
    guide_code.refresh_from_db()
    assert not guide_code.active
    with pytest.raises(WeComError) as gone:
        way_in_sandbox(guide_code.config_id)
    assert gone.value.errcode == 41044
    assert contact_way_members_refresh(store=wecom_org.store_a) == 0  # nothing left to change


# -- the admin, by persona ----------------------------------------------------------------------------
CHANGELIST = "admin:customers_contactway_changelist"


def _qr_url(way) -> str:
    return reverse("admin:customers_contactway_qr", args=[way.pk])


@pytest.fixture
def codes(wecom_org):
    return {"a": contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a),
            "b": contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_b, staff=wecom_org.guide_b)}


def test_a_store_manager_sees_and_downloads_only_their_stores_codes(codes, store_manager_of_a, client):
    client.force_login(store_manager_of_a)
    shown = {row.pk for row in client.get(reverse(CHANGELIST)).context["cl"].result_list}
    assert shown == {codes["a"].pk}

    own = client.get(_qr_url(codes["a"]))
    assert own.status_code == 200 and own["Content-Type"] == "image/png" and own.content.startswith(b"\x89PNG")
    assert client.get(_qr_url(codes["b"])).status_code == 404  # another store's code, whatever the URL
    assert client.get(reverse("admin:customers_contactway_create_for_region")).status_code == 403


def test_the_qr_is_drawn_here_when_wecoms_image_cannot_be_fetched(codes, hq_operator, client):
    ContactWay.objects.filter(pk=codes["a"].pk).update(qr_code="http://127.0.0.1:9/unreachable.png")
    client.force_login(hq_operator)
    response = client.get(_qr_url(codes["a"]))
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_a_region_manager_creates_codes_for_their_region_only(wecom_org, region_manager_east, client):
    client.force_login(region_manager_east)
    url = reverse("admin:customers_contactway_create_for_region")
    offered = {r.pk for r in client.get(url).context["form"].fields["region"].queryset}
    assert wecom_org.east.pk in offered and wecom_org.south.pk not in offered

    refused = client.post(url, {"region": wecom_org.south.pk, "kind": "store"})
    assert refused.status_code == 200 and "region" in refused.context["form"].errors
    assert not ContactWay.objects.exists()  # a bad choice writes nothing

    assert client.post(url, {"region": wecom_org.east.pk, "kind": "store"}).status_code == 302
    assert {w.store for w in ContactWay.objects.all()} == {wecom_org.store_a, wecom_org.store_a2}


def test_the_region_action_needs_no_selected_rows(hq_operator, client, org):
    client.force_login(hq_operator)
    response = client.post(reverse(CHANGELIST), {"action": "create_for_region"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:customers_contactway_create_for_region")


def test_a_channel_store_code_without_channel_is_refused_on_the_form(wecom_org, hq_operator, client):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_contactway_create_for_region"),
                           {"region": wecom_org.east.pk, "kind": "channel_store"})
    assert response.status_code == 200 and "channel" in response.context["form"].errors
    assert not ContactWay.objects.exists()


def test_hq_deactivates_and_deletes_codes_in_wecom_too(codes, hq_operator, client, sandbox):
    client.force_login(hq_operator)
    client.post(reverse(CHANGELIST), {"action": "deactivate_selected", "_selected_action": [codes["a"].pk]})
    codes["a"].refresh_from_db()
    assert not codes["a"].active
    client.post(reverse(CHANGELIST), {"action": "delete_selected", "_selected_action": [codes["b"].pk],
                                      "post": "yes"})
    assert not ContactWay.objects.filter(pk=codes["b"].pk).exists()
    assert len(sandbox_calls(sandbox, "externalcontact/del_contact_way")) == 2
    assert sandbox.get("state")["tables"].get("contact_ways", 0) == 0


def test_hq_adds_a_single_code_from_the_admin(wecom_org, hq_operator, client):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_contactway_add"), {
        "kind": "staff", "store": wecom_org.store_a.pk, "staff": wecom_org.guide_a.pk, "campaign_ref": "",
        "channel": "", "welcome": ""})
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    way = ContactWay.objects.get()
    assert way.config_id and way.staff == wecom_org.guide_a


def test_a_staff_code_with_another_stores_staff_is_refused(wecom_org, hq_operator, client):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_contactway_add"), {
        "kind": "staff", "store": wecom_org.store_a.pk, "staff": wecom_org.guide_b.pk})
    assert response.status_code == 200 and not ContactWay.objects.exists()
