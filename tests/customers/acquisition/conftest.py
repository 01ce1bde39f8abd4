"""Fixtures for the acquisition tests: the org mirrored into the sandbox, a channel with its welcome and tags."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from customers.models import Channel, ContactWay, Tag, TagGroup, WelcomeMessage
from portal.wecom.gateway import wecom_call
from stores.models import Staff
from tests.customers.acquisition.helpers import sandbox_members_load
from tests.factories import StaffFactory


@pytest.fixture
def wecom_org(org, sandbox):
    """The org's staff as WeCom members; store A2 gets a guide too, so every EAST store can have codes."""
    StaffFactory(userid="a2-guide", name="陈导购", store=org.store_a2)
    sandbox_members_load(sandbox, list(Staff.objects.all()))
    return org


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
