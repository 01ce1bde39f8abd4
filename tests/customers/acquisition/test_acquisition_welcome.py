"""A customer scans a code: the relationship is attributed to channel/store/staff/campaign, tagged, and welcomed
inside WeCom's 20 seconds. Every welcome message is recorded: sent, failed with WeCom's reason in plain Chinese,
or skipped with why — never silently lost, and never sent twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.acquisition.attribution import acquisition_on_add
from customers.acquisition.services import contact_way_create
from customers.acquisition.welcome import welcome_preview
from customers.models import Channel, ContactWay, Customer, Relationship, WelcomeDelivery, WelcomeMessage
from portal.wecom.events import handler_for
from portal.wecom.gateway import wecom_call
from tests.conftest import eventually
from tests.customers.acquisition.helpers import relationship_store
from tests.customers.helpers import sandbox_calls

pytestmark = pytest.mark.integration
SEND = "externalcontact/send_welcome_msg"


def scan(sandbox, way, name="小明") -> dict:
    """A customer scans the code in WeCom: a follow, a welcome code valid 20 s (and an event, unsent here)."""
    return sandbox.do("customers/scan", config_id=way.config_id, customer={"name": name})


def scanned_relationship(sandbox, way, name="小明"):
    added = scan(sandbox, way, name)
    staff = way.members.get(userid=added["userid"])
    return relationship_store(external_userid=added["external_userid"], name=name, staff=staff,
                              state=way.state), added["welcome_code"]


def test_a_scan_is_attributed_tagged_and_welcomed_with_the_variables_filled(poster_channel, sandbox, wecom_org):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)

    delivery = acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                                  event_at=timezone.now())

    relationship.refresh_from_db()
    assert (relationship.channel, relationship.contact_way, relationship.campaign_ref) == (
        poster_channel.channel, poster_channel.way, "SPRING")
    assert relationship.store == wecom_org.store_a and relationship.staff == wecom_org.guide_a
    assert Customer.objects.get(pk=relationship.customer_id).channel == poster_channel.channel
    assert delivery.status == WelcomeDelivery.Status.SENT and delivery.latency_ms is not None
    message = sandbox.get("welcome_messages")["messages"][-1]
    assert message["text"]["content"] == "小明您好，我是上海徐汇店的李导购，很高兴为您服务！"
    assert message["attachments"] == [{"msgtype": "image", "image": {"pic_url": "https://img.example.com/w.png"}}]
    assert poster_channel.tag.pk in relationship.tag_ids
    assert poster_channel.tag.pk in Customer.objects.get(pk=relationship.customer_id).tag_ids
    follow = wecom_call("externalcontact/get", method="get",
                        params={"external_userid": relationship.customer.external_userid})["follow_user"][0]
    assert [t["tag_id"] for t in follow["tags"]] == [poster_channel.tag.wecom_tag_id]


def test_processing_the_same_add_twice_sends_once(poster_channel, sandbox):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)
    for _ in range(2):
        acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                           event_at=timezone.now())
    assert len(sandbox_calls(sandbox, SEND)) == 1
    assert WelcomeDelivery.objects.get(relationship=relationship).status == WelcomeDelivery.Status.SENT


def test_a_code_wecom_says_is_past_20_seconds_is_a_failure_with_the_reason(poster_channel, sandbox):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)
    sandbox.do("clock/advance", seconds=25)

    delivery = acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                                  event_at=timezone.now())

    assert delivery.status == WelcomeDelivery.Status.FAILED
    assert "20 秒" in delivery.reason and "41050" in delivery.reason


def test_an_event_processed_after_20_seconds_is_skipped_without_calling_wecom(poster_channel, sandbox):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)

    delivery = acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                                  event_at=timezone.now() - timedelta(seconds=25))

    assert delivery.status == WelcomeDelivery.Status.SKIPPED and "20 秒" in delivery.reason
    assert sandbox_calls(sandbox, SEND) == []
    relationship.refresh_from_db()
    assert relationship.channel == poster_channel.channel  # attribution does not depend on the window


def test_a_welcome_code_already_used_is_recorded_as_failed(poster_channel, sandbox):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)
    wecom_call(SEND, data={"welcome_code": code, "text": {"content": "员工在手机上抢先发了"}})

    delivery = acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                                  event_at=timezone.now())

    assert delivery.status == WelcomeDelivery.Status.FAILED
    assert "已被使用" in delivery.reason and "41051" in delivery.reason


def test_no_welcome_code_or_no_welcome_configured_is_skipped_with_the_reason(poster_channel, sandbox):
    relationship, _code = scanned_relationship(sandbox, poster_channel.way)
    delivery = acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code="",
                                  event_at=timezone.now())
    assert delivery.status == WelcomeDelivery.Status.SKIPPED and "欢迎语 code" in delivery.reason

    Channel.objects.filter(pk=poster_channel.channel.pk).update(welcome=None)
    other, code = scanned_relationship(sandbox, poster_channel.way, name="小红")
    delivery = acquisition_on_add(relationship=other, state=poster_channel.way.state, welcome_code=code,
                                  event_at=timezone.now())
    assert delivery.status == WelcomeDelivery.Status.SKIPPED and "没有配置欢迎语" in delivery.reason
    assert sandbox_calls(sandbox, SEND) == []


def test_the_codes_own_welcome_wins_over_the_channels(poster_channel, sandbox, wecom_org):
    own = WelcomeMessage.objects.create(name="门店码欢迎语", text="欢迎光临{门店名称}，{客户昵称}！")
    way = contact_way_create(kind=ContactWay.Kind.CHANNEL_STORE, store=wecom_org.store_a,
                             channel=poster_channel.channel, welcome=own)
    relationship, code = scanned_relationship(sandbox, way, name="阿强")
    acquisition_on_add(relationship=relationship, state=way.state, welcome_code=code, event_at=timezone.now())
    assert sandbox.get("welcome_messages")["messages"][-1]["text"] == {"content": "欢迎光临上海徐汇店，阿强！"}


def test_a_state_from_another_tool_attributes_nothing_and_a_deleted_codes_state_still_names_its_channel(
        poster_channel, sandbox, wecom_org):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)
    acquisition_on_add(relationship=relationship, state="dy_live_0601", welcome_code=code, event_at=timezone.now())
    relationship.refresh_from_db()
    assert relationship.channel is None and relationship.contact_way is None

    state = poster_channel.way.state
    ContactWay.objects.filter(pk=poster_channel.way.pk).delete()
    other = relationship_store(external_userid="wm-other", name="老客", staff=wecom_org.guide_a, state=state)
    acquisition_on_add(relationship=other, state=state, welcome_code="", event_at=timezone.now())
    other.refresh_from_db()
    assert (other.channel, other.campaign_ref, other.contact_way) == (poster_channel.channel, "SPRING", None)


def test_a_bad_attachment_is_refused_in_the_admin_and_the_preview_fills_sample_values(hq_operator, client, org):
    client.force_login(hq_operator)
    response = client.post(reverse("admin:customers_welcomemessage_add"), {
        "name": "链接欢迎语", "text": "{客户昵称}你好", "attachment": "link", "attachment_data": '{"title": "新品"}',
        "active": "on"})
    assert response.status_code == 200 and "url" in str(response.context["adminform"].form.errors)
    assert not WelcomeMessage.objects.exists()
    typo = client.post(reverse("admin:customers_welcomemessage_add"), {
        "name": "错字", "text": "{客户名称}你好", "attachment": "", "attachment_data": "{}", "active": "on"})
    assert typo.status_code == 200 and "{客户名称}" in str(typo.context["adminform"].form.errors)
    bad_code = client.post(reverse("admin:customers_channel_add"), {"code": "海报码", "name": "海报", "kind": "poster",
                                                                    "goal": 10, "active": "on"})
    assert bad_code.status_code == 200 and not Channel.objects.exists()
    welcome = WelcomeMessage.objects.create(name="预览", text="{客户昵称}，我是{门店名称}的{员工姓名}")
    assert welcome_preview(welcome=welcome) == "小明，我是上海徐汇店的李导购"


def test_failed_welcomes_are_on_the_workbench_in_scope(poster_channel, sandbox, hq_operator, store_manager_of_a,
                                                       client, wecom_org):
    relationship, code = scanned_relationship(sandbox, poster_channel.way)
    sandbox.do("clock/advance", seconds=25)
    acquisition_on_add(relationship=relationship, state=poster_channel.way.state, welcome_code=code,
                       event_at=timezone.now())
    elsewhere = relationship_store(external_userid="wm-b", name="广州客", staff=wecom_org.guide_b)
    WelcomeDelivery.objects.create(relationship=elsewhere, status="failed", reason="x", event_at=timezone.now())

    for user, expected in ((hq_operator, 2), (store_manager_of_a, 1)):
        client.force_login(user)
        panel = next(p for p in client.get(reverse("admin:index")).context["panels"] if p["key"] == "welcome")
        assert panel["stats"][0]["value"] == expected
        listed = client.get(panel["stats"][0]["url"])
        assert listed.status_code == 200 and len(listed.context["cl"].result_list) == expected


def test_channels_list_goal_and_adds_with_one_query_however_many_channels(hq_operator, client, org):
    from tests.factories import CustomerFactory

    channels = [Channel.objects.create(code=f"CH{i}", name=f"渠道{i}", goal=4) for i in range(3)]
    Relationship.objects.filter(customer=CustomerFactory(staff=org.guide_a)).update(channel=channels[0])
    client.force_login(hq_operator)
    url = reverse("admin:customers_channel_changelist")
    few = _query_count(client, url)
    Channel.objects.bulk_create([Channel(code=f"MORE{i}", name=f"更多{i}") for i in range(10)])
    assert _query_count(client, url) == few  # not a count per row

    response = client.get(url)
    row = next(c for c in response.context["cl"].result_list if c.pk == channels[0].pk)
    assert row.adds_so_far == 1 and "25%" in response.content.decode()


def _query_count(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_end_to_end_a_scan_reaches_the_portal_and_the_customer_is_welcomed(poster_channel, wecom_live):
    """The sandbox fires add_external_contact at the live portal; the sync area's handler stores the relationship
    and calls acquisition_on_add on a real Celery worker."""
    if handler_for("change_external_contact", "add_external_contact") is None:
        pytest.skip("the add_external_contact handler (customers sync area) is not registered yet")
    added = scan(wecom_live, poster_channel.way, name="小明")

    delivery = eventually(lambda: WelcomeDelivery.objects.filter(
        relationship__customer__external_userid=added["external_userid"]).exclude(reason="发送中").first(),
        timeout=20)

    assert delivery.status == WelcomeDelivery.Status.SENT, delivery.reason
    relationship = delivery.relationship
    assert (relationship.channel_id, relationship.contact_way_id, relationship.campaign_ref) == (
        poster_channel.channel.pk, poster_channel.way.pk, "SPRING")
    assert poster_channel.tag.pk in Relationship.objects.get(pk=relationship.pk).tag_ids
    text = wecom_live.get("welcome_messages")["messages"][-1]["text"]["content"]
    assert text == "小明您好，我是上海徐汇店的李导购，很高兴为您服务！"
