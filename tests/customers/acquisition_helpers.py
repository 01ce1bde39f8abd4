"""Fixtures for the acquisition tests: the org mirrored into the sandbox, a channel with its welcome and tags."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.utils import timezone

from customers.models import Channel, ContactWay, Customer, Relationship, Tag, TagGroup, WelcomeMessage
from portal.wecom.gateway import wecom_call
from stores.models import Staff, Store
from tests.factories import StaffFactory


def sandbox_members_load(sandbox, staff: list[Staff]) -> None:
    """WeCom knows these members (codes can only be made for members it knows)."""
    departments = {s.store_id for s in staff}
    sandbox.do("addressbook/load", departments=[{"id": 1000 + d, "name": f"门店{d}"} for d in departments],
               members=[{"userid": s.userid, "name": s.name, "department": [1000 + s.store_id]} for s in staff])


@pytest.fixture
def wecom_org(org, sandbox):
    """The org's staff as WeCom members; store A2 gets a guide too, so every EAST store can have codes."""
    StaffFactory(userid="a2-guide", name="陈导购", store=org.store_a2)
    sandbox_members_load(sandbox, list(Staff.objects.all()))
    return org


def way_in_sandbox(config_id: str) -> dict:
    return wecom_call("externalcontact/get_contact_way", data={"config_id": config_id})["contact_way"]


TOKEN_ERRORS = {40014, 41001, 42001}  # refused before the endpoint ran (a reset sandbox forgets our token)


def sandbox_calls(sandbox, endpoint: str) -> list[dict]:
    """The calls the sandbox received at ``endpoint`` that reached it (not refused for the token)."""
    calls = sandbox.get("calls", endpoint=endpoint, limit=2000)["calls"]
    return [c for c in calls if c.get("errcode") not in TOKEN_ERRORS]


@dataclass
class Acquisition:
    channel: Channel
    welcome: WelcomeMessage
    tag: Tag
    way: ContactWay


@pytest.fixture
def poster_channel(wecom_org) -> Acquisition:
    """门店海报 (POSTER): auto-tag 门店海报, a welcome with all three variables and an image; 李导购's code."""
    from customers.acquisition.services import contact_way_create

    created = wecom_call("externalcontact/add_corp_tag", data={"group_name": "来源渠道", "tag": [{"name": "门店海报"}]})
    group_data = created["tag_group"]
    group = TagGroup.objects.create(name="来源渠道", wecom_group_id=group_data["group_id"])
    tag = Tag.objects.create(group=group, name="门店海报", wecom_tag_id=group_data["tag"][0]["id"])
    welcome = WelcomeMessage.objects.create(
        name="海报欢迎语", text="{客户昵称}您好，我是{门店名称}的{员工姓名}，很高兴为您服务！",
        attachment=WelcomeMessage.Attachment.IMAGE, attachment_data={"pic_url": "https://img.example.com/w.png"})
    channel = Channel.objects.create(code="POSTER", name="门店海报", kind=Channel.Kind.POSTER, goal=100,
                                     welcome=welcome)
    channel.auto_tags.add(tag)
    way = contact_way_create(kind=ContactWay.Kind.STAFF, store=wecom_org.store_a, staff=wecom_org.guide_a,
                             channel=channel, campaign_ref="SPRING")
    assert way.config_id, way.last_error
    return Acquisition(channel=channel, welcome=welcome, tag=tag, way=way)


def relationship_store(*, external_userid: str, name: str, staff: Staff, state: str = "") -> Relationship:
    """What the sync developer's add handler stores before it calls acquisition_on_add."""
    store: Store = staff.store
    customer, _ = Customer.objects.get_or_create(external_userid=external_userid, defaults={
        "name": name, "staff": staff, "store": store, "region": store.region, "franchisee": store.franchisee,
        "first_added_at": timezone.now()})
    relationship, _ = Relationship.objects.get_or_create(customer=customer, staff=staff, defaults={
        "store": store, "added_at": timezone.now(), "add_way": 1, "state": state})
    return relationship
