"""Attribution of a new relationship: its ``state`` names channel, store, staff and campaign;
``acquisition_on_add`` (called by the ``add_external_contact`` handler) attributes it, sends the welcome
message and applies the channel's auto-tags."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from customers.acquisition.state import contact_state_decode
from customers.acquisition.welcome import welcome_send
from customers.models import Channel, ContactWay, Relationship, WelcomeDelivery, WelcomeMessage
from portal.wecom.gateway import WeComError, wecom_call

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attribution:
    contact_way: ContactWay | None
    channel: Channel | None
    campaign_ref: str


def acquisition_attribute(*, state: str) -> Attribution:
    """Our code with this state, else what the state itself says (a code deleted since), else nothing."""
    way = ContactWay.objects.select_related("channel", "welcome", "channel__welcome").filter(
        state=state).first() if state else None
    if way is not None:
        return Attribution(contact_way=way, channel=way.channel, campaign_ref=way.campaign_ref)
    decoded = contact_state_decode(state)
    if decoded is None:
        return Attribution(contact_way=None, channel=None, campaign_ref="")
    channel = Channel.objects.select_related("welcome").filter(code=decoded.channel_code).first() \
        if decoded.channel_code else None
    return Attribution(contact_way=None, channel=channel, campaign_ref=decoded.campaign_ref)


ATTRIBUTE_SQL = """
WITH relationship AS (
    UPDATE customers_relationship SET channel_id = %(channel)s::bigint, contact_way_id = %(way)s::bigint,
                                      campaign_ref = %(campaign)s
    WHERE id = %(id)s RETURNING customer_id
)
UPDATE customers_customer c SET channel_id = %(channel)s::bigint FROM relationship r
WHERE c.id = r.customer_id AND c.channel_id IS NULL AND %(channel)s::bigint IS NOT NULL
"""


def _welcome_for(found: Attribution) -> WelcomeMessage | None:
    for welcome in (found.contact_way.welcome if found.contact_way else None,
                    found.channel.welcome if found.channel else None):
        if welcome is not None and welcome.active:
            return welcome
    return None


def _attribution_store(*, relationship: Relationship, found: Attribution) -> None:
    """One statement: the relationship's channel, code and campaign, and the customer's first channel."""
    with connection.cursor() as cursor:
        cursor.execute(ATTRIBUTE_SQL, {"id": relationship.pk, "channel": found.channel.pk if found.channel else None,
                                       "way": found.contact_way.pk if found.contact_way else None,
                                       "campaign": found.campaign_ref})
    relationship.channel, relationship.contact_way, relationship.campaign_ref = (
        found.channel, found.contact_way, found.campaign_ref)


TAG_IDS_ADD_SQL = """
WITH relationship AS (
    UPDATE customers_relationship
    SET tag_ids = ARRAY(SELECT DISTINCT t FROM unnest(tag_ids || %(tags)s::integer[]) t ORDER BY t)
    WHERE id = %(relationship)s AND NOT (tag_ids @> %(tags)s::integer[])
)
UPDATE customers_customer
SET tag_ids = ARRAY(SELECT DISTINCT t FROM unnest(tag_ids || %(tags)s::integer[]) t ORDER BY t)
WHERE id = %(customer)s AND NOT (tag_ids @> %(tags)s::integer[])
"""


def channel_tags_apply(*, relationship: Relationship, channel: Channel | None) -> list[int]:
    """The channel's auto-tags: marked in WeCom, then added to our tag id arrays. Returns the tags added."""
    if channel is None:
        return []
    tags = list(channel.auto_tags.filter(deleted=False, wecom_tag_id__isnull=False).values_list("pk", "wecom_tag_id"))
    if not tags:
        return []
    try:
        wecom_call("externalcontact/mark_tag", caller="acquisition.auto_tags", data={
            "userid": relationship.staff.userid, "external_userid": relationship.customer.external_userid,
            "add_tag": [wecom_id for _pk, wecom_id in tags]})
    except WeComError as exc:
        # The tags can be applied again later; the add itself and its welcome message stand.
        logger.warning("auto-tags for relationship %s failed: %s", relationship.pk, exc)
        return []
    ids = [pk for pk, _wecom_id in tags]
    with connection.cursor() as cursor:
        cursor.execute(TAG_IDS_ADD_SQL, {"tags": ids, "relationship": relationship.pk,
                                         "customer": relationship.customer_id})
    return ids


def acquisition_on_add(*, relationship: Relationship, state: str, welcome_code: str,
                       event_at: datetime) -> WelcomeDelivery:
    """A customer added a staff member: attribute, welcome (time-critical, so first), then auto-tags.

    Called by the ``add_external_contact`` handler after the relationship is stored. Safe to run twice:
    attribution and tags converge, and the WelcomeDelivery claim lets the message go out once.
    """
    if not all(f.is_cached(relationship) for f in (Relationship.customer.field, Relationship.staff.field)):
        relationship = Relationship.objects.select_related("customer", "staff__store", "store").get(pk=relationship.pk)
    found = acquisition_attribute(state=state or "")
    # The send has a 20-second deadline: it goes first; what only concerns our own tables follows.
    delivery = welcome_send(relationship=relationship, welcome=_welcome_for(found), welcome_code=welcome_code or "",
                            event_at=event_at)
    _attribution_store(relationship=relationship, found=found)
    channel_tags_apply(relationship=relationship, channel=found.channel)
    return delivery
