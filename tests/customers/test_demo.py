"""The demo's customers: seed_demo makes tags, channels, welcome messages and codes in WeCom (the sandbox), a
second run makes nothing new anywhere, and customers the sandbox plays scanning those codes (``scenario/arrivals``,
what ``make run`` asks for once) arrive in the portal attributed to the code's store, staff and channel, welcomed
inside WeCom's 20 seconds and carrying the channel's auto-tags."""

from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from customers.demo import PARCEL_WELCOME, customers_demo_seed
from customers.models import (
    Channel,
    ContactWay,
    Customer,
    Relationship,
    Stage,
    Tag,
    TagGroup,
    WelcomeDelivery,
    WelcomeMessage,
)
from portal.wecom.gateway import wecom_call
from portal.wecom.models import SyncRun
from stores.demo import OrgSize, org_build, sandbox_mirror_org
from stores.models import Staff, Store
from tests.conftest import eventually
from tests.customers.acquisition.helpers import sandbox_members_load, way_in_sandbox
from tests.customers.helpers import sandbox_calls
from wecom_sandbox.control import SandboxControlError

pytestmark = pytest.mark.integration
SMALL = OrgSize(areas=1, franchisees=1, stores=3, staff=9)  # 3 stores, each a manager and 2 guides
WECOM_MADE = ("externalcontact/add_contact_way", "externalcontact/add_corp_tag")


def demo_org(sandbox) -> None:
    """seed_demo's organisation, small, with WeCom's address book mirrored (as seed_demo does)."""
    org_build(size=SMALL)
    sandbox_mirror_org(sandbox_url=settings.XIAOER_SANDBOX_URL)


def portal_counts() -> dict:
    return {model.__name__: model.objects.count()
            for model in (TagGroup, Tag, Channel, WelcomeMessage, ContactWay, SyncRun)}


def wecom_counts(sandbox) -> dict:
    tables = sandbox.get("state")["tables"]
    made = {endpoint: len(sandbox_calls(sandbox, endpoint)) for endpoint in WECOM_MADE}
    return {**{name: tables.get(name, 0) for name in ("contact_ways", "tag_groups", "tags")}, **made}


def test_the_seed_makes_a_store_code_in_wecom_for_every_store_rotating_among_its_staff(sandbox, db):
    demo_org(sandbox)

    seeded = customers_demo_seed(staff_code_stores=1)

    stores = list(Store.objects.open())
    assert seeded.store_codes == len(stores) == 3 and seeded.pending_codes == 0
    for store in stores:
        way = ContactWay.objects.get(kind=ContactWay.Kind.STORE, store=store)
        in_wecom = way_in_sandbox(way.config_id)
        staff = sorted(Staff.objects.active().filter(store=store).values_list("userid", flat=True))
        assert (in_wecom["state"], sorted(in_wecom["user"])) == (way.state, staff)
        assert way.welcome.text.count("{") == 3  # customer nickname, staff name, store name
    guides = Staff.objects.filter(store=stores[0], position=Staff.Position.GUIDE)
    assert set(ContactWay.objects.filter(kind=ContactWay.Kind.STAFF).values_list("staff", flat=True)) == {
        g.pk for g in guides}  # 一人一码 for the first store's guides
    assert seeded.channel_codes == 2 * len(stores)  # 桌牌 and 电商包裹卡 in every store
    assert seeded.summary().startswith("demo customers: 3 tag groups")


def test_tags_are_wecoms_and_channels_carry_auto_tags_and_welcomes(sandbox, db):
    demo_org(sandbox)
    customers_demo_seed(staff_code_stores=0)

    in_wecom = wecom_call("externalcontact/get_corp_tag_list", data={})["tag_group"]
    assert {g["group_name"] for g in in_wecom} == {"来源渠道", "兴趣", "意向"}
    assert Tag.objects.filter(wecom_tag_id__isnull=True).count() == 0
    assert Tag.objects.get(name="高意向").advances_to == Stage.INTERESTED
    parcel = Channel.objects.get(code="PARCEL")
    assert parcel.kind == Channel.Kind.PARCEL_CARD and parcel.goal > 0 and parcel.welcome.name == PARCEL_WELCOME
    assert {t.name for t in parcel.auto_tags.all()} == {"电商包裹卡", "高意向"}
    assert {c.kind for c in Channel.objects.all()} >= {"poster", "table_card", "receipt", "parcel_card", "live",
                                                       "referral"}
    default = Channel.objects.get(code="POSTER").welcome
    assert default.attachment == WelcomeMessage.Attachment.LINK and default.attachment_data["url"]


def test_running_the_seed_again_changes_nothing_here_or_in_wecom(sandbox, db):
    demo_org(sandbox)
    first = customers_demo_seed(staff_code_stores=1)
    portal_before, wecom_before = portal_counts(), wecom_counts(sandbox)

    again = customers_demo_seed(staff_code_stores=1)

    assert again == first
    assert portal_counts() == portal_before  # not even a new job record
    assert wecom_counts(sandbox) == wecom_before  # no contact way or tag made twice


def test_a_portal_without_the_tags_finds_them_in_wecom_instead_of_making_them_twice(sandbox, db):
    demo_org(sandbox)
    customers_demo_seed(staff_code_stores=0, channel_store_codes=())
    Channel.objects.all().delete()
    Tag.objects.all().delete()
    TagGroup.objects.all().delete()  # the portal forgot them; WeCom (a sandbox kept from an earlier run) did not
    made_before = len(sandbox_calls(sandbox, "externalcontact/add_corp_tag"))

    customers_demo_seed(staff_code_stores=0, channel_store_codes=())

    assert len(sandbox_calls(sandbox, "externalcontact/add_corp_tag")) == made_before
    assert Tag.objects.filter(deleted=False).count() == 12
    assert Tag.objects.get(name="高意向").advances_to == Stage.INTERESTED


def test_seed_demo_prints_the_summary_and_warns_when_wecom_fails(sandbox, db):
    out = StringIO()
    call_command("seed_demo", areas=1, franchisees=1, stores=2, staff=4, stdout=out)
    assert "demo customers: 3 tag groups / 12 tags, 6 channels, 2 welcome messages" in out.getvalue()
    assert ContactWay.objects.filter(kind=ContactWay.Kind.STORE, config_id__isnull=False).count() == 2

    sandbox.do("faults", endpoint="externalcontact/get_corp_tag_list", http_status=500, times=20)
    out = StringIO()
    call_command("seed_demo", areas=1, franchisees=1, stores=3, staff=6, stdout=out)
    assert "WeCom sandbox not reachable" in out.getvalue() and "run seed_demo again" in out.getvalue()
    assert not ContactWay.objects.filter(store__code="S0003").exists()  # nothing half made for the new store


def test_seed_demo_without_customers_makes_no_codes(sandbox, db):
    call_command("seed_demo", areas=1, franchisees=1, stores=2, staff=4, no_customers=True, stdout=StringIO())
    assert not ContactWay.objects.exists() and not Channel.objects.exists()
    assert sandbox.get("state")["tables"].get("contact_ways", 0) == 0


# -- the sandbox's arrivals action ------------------------------------------------------------------
def _ways(sandbox, users: list[str]) -> list[str]:
    return [wecom_call("externalcontact/add_contact_way", data={"type": 1, "scene": 2, "user": [u],
                                                                "state": f"demo-{u}"})["config_id"] for u in users]


def test_arrivals_are_new_customers_scanning_existing_codes_and_nothing_else(org, sandbox):
    sandbox_members_load(sandbox, [org.guide_a, org.manager_a])
    ways = _ways(sandbox, ["a-guide", "a-manager"])
    before = sandbox.get("state")

    result = sandbox.do("scenario/arrivals", count=6, seed=7)

    assert (result["arrived"], result["refused"], result["ways"]) == (6, 0, 2)
    for arrival in result["arrivals"]:
        assert arrival["config_id"] in ways and arrival["state"] == f"demo-{arrival['userid']}"
    after = sandbox.get("state")
    assert after["tables"]["customers"] - before["tables"].get("customers", 0) == 6
    assert after["tables"]["follows"] - before["tables"].get("follows", 0) == 6
    assert after["tables"]["users"] == before["tables"]["users"]  # no member joined or left
    assert after["callbacks"]["emitted"] - before["callbacks"]["emitted"] == 6  # one add_external_contact each
    again = sandbox.do("scenario/arrivals", count=6, seed=7)
    assert [a["config_id"] for a in again["arrivals"]] == [a["config_id"] for a in result["arrivals"]]
    only = sandbox.do("scenario/arrivals", count=3, config_ids=[ways[1]])
    assert {a["userid"] for a in only["arrivals"]} == {"a-manager"}


def test_arrivals_without_codes_refused_scans_and_bad_requests_answer_clearly(org, sandbox):
    assert sandbox.do("scenario/arrivals", count=5)["arrived"] == 0  # no codes yet: nobody can scan

    sandbox_members_load(sandbox, [org.guide_a])
    ways = _ways(sandbox, ["a-guide"])
    sandbox.do("config", customer_limit=0)  # the guide is full: WeCom refuses every add
    assert sandbox.do("scenario/arrivals", count=3, config_ids=ways) | {"arrivals": []} == {
        "arrived": 0, "refused": 3, "ways": 1, "arrivals": []}

    with pytest.raises(SandboxControlError, match="no-such-way"):
        sandbox.do("scenario/arrivals", count=1, config_ids=["no-such-way"])
    with pytest.raises(SandboxControlError, match="invalid count"):
        sandbox.do("scenario/arrivals", count=100_000)


# -- end to end: the demo's first customers -----------------------------------------------------------
def test_arrivals_through_the_demo_codes_are_attributed_welcomed_and_tagged(wecom_live):
    demo_org(wecom_live)
    customers_demo_seed(staff_code_stores=1)
    eventually(lambda: not ContactWay.objects.filter(config_id__isnull=True).exists())
    store_a = Store.objects.order_by("code").first()
    chosen = [ContactWay.objects.get(kind=ContactWay.Kind.STORE, store=store_a),
              ContactWay.objects.filter(kind=ContactWay.Kind.STAFF).first(),
              ContactWay.objects.get(kind=ContactWay.Kind.CHANNEL_STORE, channel__code="PARCEL", store=store_a)]

    arrivals = [a for way in chosen for a in wecom_live.do("scenario/arrivals", count=2, seed=way.pk,
                                                           config_ids=[way.config_id])["arrivals"]]
    arrivals += wecom_live.do("scenario/arrivals", count=4, seed=1)["arrivals"]

    done = eventually(lambda: (lambda rows: rows if len(rows) == len(arrivals) else None)(list(
        WelcomeDelivery.objects.exclude(reason="发送中").select_related("relationship__customer"))), timeout=25)
    assert {d.status for d in done} == {WelcomeDelivery.Status.SENT}, [d.reason for d in done]
    for arrival in arrivals:
        way = ContactWay.objects.select_related("channel").get(config_id=arrival["config_id"])
        relationship = Relationship.objects.select_related("staff", "customer").get(
            customer__external_userid=arrival["external_userid"])
        assert relationship.staff.userid == arrival["userid"]
        assert (relationship.store_id, relationship.contact_way_id, relationship.channel_id) == (
            way.store_id, way.pk, way.channel_id)
        if way.kind == ContactWay.Kind.STAFF:
            assert relationship.staff_id == way.staff_id
        auto_tags = set(way.channel.auto_tags.values_list("pk", flat=True)) if way.channel else set()
        assert auto_tags <= set(relationship.tag_ids)
    parcel = next(a for a in arrivals if a["config_id"] == chosen[2].config_id)
    assert eventually(lambda: Customer.objects.get(external_userid=parcel["external_userid"]).stage
                      == Stage.INTERESTED)  # its 高意向 auto-tag moves the customer on
    texts = [m["text"]["content"] for m in wecom_live.get("welcome_messages")["messages"]]
    assert any(store_a.name in text and "包裹" in text for text in texts)  # the channel's own welcome
