"""Callbacks over real HTTP from the sandbox to a live portal: duplicates, reordering, forgeries.

Whatever the order and however often WeCom delivers, the inbox stores each event once and the
Staff table ends in WeCom's current state.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from portal.wecom.models import CallbackEvent
from stores.models import Staff
from tests.conftest import eventually
from tests.wecom.helpers import event_xml, signed_post

pytestmark = pytest.mark.integration


def test_an_event_delivered_four_times_is_stored_and_applied_once(org, wecom_live):
    wecom_live.do("config", callback_duplicate=4)
    wecom_live.do("members/add", userid="dup", name="重复投递")
    assert wecom_live.drain()["drained"]
    log = wecom_live.get("callbacks")
    assert log["delivered"] == 4 and log["failed"] == 0  # the portal answered success every time
    assert CallbackEvent.objects.filter(change_type="create_user").count() == 1
    eventually(lambda: Staff.objects.filter(userid="dup").exists())


def test_events_delivered_in_reverse_order_converge_on_wecoms_state(org, wecom_live):
    wecom_live.do("config", callback_hold=True)
    wecom_live.do("members/add", userid="rev", name="倒序")
    wecom_live.do("members/update", userid="rev", name="倒序改名")
    wecom_live.do("members/delete", userid="rev")
    assert wecom_live.do("callbacks/release", order="reverse")["released"] == 3
    wecom_live.drain()
    eventually(lambda: CallbackEvent.objects.filter(status__in=["done", "failed"]).count() == 3)
    staff = Staff.objects.filter(userid="rev").first()
    assert staff is None or staff.status == Staff.Status.DEPARTED  # never resurrected by a late create


def test_a_forged_callback_over_http_is_refused_and_stores_nothing(live_server, db):
    query, body = signed_post(event_xml("change_contact", "delete_user", UserID="a-guide"), token="not-our-token")
    request = urllib.request.Request(f"{live_server.url}/wecom/callback/?{query}", data=body, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 403 and not CallbackEvent.objects.exists()


def test_a_portal_that_does_not_answer_success_gets_the_event_again(org, wecom_live, live_server):
    """WeCom retries 3 times when the answer is not 'success'; the sandbox does the same."""
    wecom_live.do("config", callback_url=f"{live_server.url}/nowhere/", callback_retries=3)
    wecom_live.do("members/add", userid="lost", name="无人应答")
    wecom_live.drain()
    entry = wecom_live.get("callbacks")["log"][-1]
    assert entry["attempts"] == 4 and entry["outcome"] == "HTTP 404"
