"""Store staff open the mobile page inside WeCom and are signed in as themselves (WeCom OAuth, via the sandbox)."""

from __future__ import annotations

import re
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse


def _follow_sandbox(authorize_url: str, userid: str) -> str:
    """What WeCom's authorize page does for a member: back to our redirect_uri with a code and the state."""
    with urllib.request.urlopen(f"{authorize_url}&userid={userid}", timeout=5) as response:
        page = response.read().decode()
    target = re.search(r"url=([^'\"]+)", page).group(1).replace("&amp;", "&")
    parts = urlsplit(target)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def members(sandbox, org, staff_of_a):
    sandbox.do("addressbook/load", members=[{"userid": "a-guide", "name": "李导购"},
                                            {"userid": "stranger", "name": "无账号成员"}])
    return sandbox


def test_staff_of_a_signs_in_with_wecom_and_lands_on_their_page(client, members, staff_of_a):
    start = client.get(reverse("mobile:wecom_login"), {"next": "/m/"})
    assert start.status_code == 302 and "/sandbox-file/oauth/authorize?" in start["Location"]
    back = client.get(_follow_sandbox(start["Location"], "a-guide"))
    assert back.status_code == 302 and back["Location"] == "/m/"
    assert client.get("/m/").context["user"] == staff_of_a


def test_a_code_cannot_be_used_twice_or_with_a_forged_state(client, members):
    start = client.get(reverse("mobile:wecom_login"))
    done = _follow_sandbox(start["Location"], "a-guide")
    forged = re.sub(r"state=[^&]+", "state=forged", done)
    assert client.get(forged).status_code == 403  # the state does not match this browser's
    client.get(reverse("mobile:wecom_login"))
    code = parse_qs(urlsplit(done).query)["code"][0]
    state = client.session["wecom_oauth"]["state"]
    assert client.get(reverse("mobile:wecom_done"), {"code": code, "state": state}).status_code == 302
    client.logout()
    client.get(reverse("mobile:wecom_login"))
    state = client.session["wecom_oauth"]["state"]
    replay = client.get(reverse("mobile:wecom_done"), {"code": code, "state": state})
    assert replay.status_code == 403 and "授权码无效或已过期" in replay.content.decode()


def test_a_member_without_a_login_is_told_whom_to_ask(client, members):
    start = client.get(reverse("mobile:wecom_login"))
    response = client.get(_follow_sandbox(start["Location"], "stranger"))
    assert response.status_code == 403 and "请联系店长或总部" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_offsite_next_is_ignored(client, members):
    start = client.get(reverse("mobile:wecom_login"), {"next": "https://evil.example/"})
    assert client.get(_follow_sandbox(start["Location"], "a-guide"))["Location"] == "/m/"
