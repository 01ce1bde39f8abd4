"""The sandbox's control API cannot be driven by a web page a developer happens to visit.

Two ways a page reaches a loopback server: a cross-site form or ``fetch`` POST (CSRF: only "simple"
content types go without a CORS preflight, which the sandbox never grants), and DNS rebinding (the
attacker's domain re-resolves to 127.0.0.1; the browser then sends ``Host: attacker.example``). So the
control API and the sandbox's pages answer only loopback Hosts, and control POSTs must be JSON; the WeCom
API under /cgi-bin/ answers as WeCom does, whatever the Host.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from wecom_sandbox.server import host_is_allowed


def _request(sandbox, path: str, *, host: str | None = None, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, dict | str]:
    headers = {}
    if host is not None:
        headers["Host"] = host
    if content_type is not None:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(f"{sandbox.url}{path}", data=body, headers=headers,
                                     method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def _members(sandbox) -> int:
    return sandbox.get("state")["tables"].get("users", 0)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8900", "127.0.0.1.attacker.example",
                                  "localhost.attacker.example", "192.168.1.20:8900", ""])
def test_a_control_post_under_a_foreign_host_is_refused_and_changes_nothing(sandbox, host):
    before = _members(sandbox)
    status, answer = _request(sandbox, "/sandbox/members/add", host=host, content_type="application/json",
                              body=json.dumps({"userid": "rebound", "name": "重绑定"}).encode())
    assert status == 403 and "loopback" in answer["error"]
    assert _members(sandbox) == before


@pytest.mark.parametrize("path", ["/sandbox/state", "/sandbox/calls", "/sandbox-file/oauth/authorize?redirect_uri=x"])
def test_what_the_sandbox_shows_is_not_served_to_a_rebinding_host(sandbox, path):
    """Not its state, not the calls it saw, not the OAuth page (it hands out sign-in codes for any member)."""
    sandbox.do("members/add", userid="zhangsan", name="张三")
    status, answer = _request(sandbox, path, host="attacker.example:8900")
    assert status == 403 and "zhangsan" not in json.dumps(answer)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          None])
def test_a_control_post_that_is_not_json_is_refused_and_changes_nothing(sandbox, content_type):
    """What a cross-site form can send: the JSON inside does not matter."""
    before = _members(sandbox)
    status, answer = _request(sandbox, "/sandbox/members/add", content_type=content_type,
                              body=json.dumps({"userid": "csrf", "name": "跨站"}).encode())
    assert status == 415 and "application/json" in answer["error"]
    assert _members(sandbox) == before


def test_a_reset_from_a_web_page_does_not_wipe_the_sandbox(sandbox):
    sandbox.do("members/add", userid="kept", name="保留")
    assert _request(sandbox, "/sandbox/reset", content_type="text/plain", body=b"{}")[0] == 415
    assert _request(sandbox, "/sandbox/callbacks/drain", host="attacker.example", content_type="application/json",
                    body=b"{}")[0] == 403
    assert _members(sandbox) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST", "127.0.0.2"])
def test_loopback_hosts_with_or_without_a_port_drive_the_sandbox(sandbox, host):
    port = urlsplit(sandbox.url).port
    for name in (host, f"{host}:{port}"):
        status, answer = _request(sandbox, "/sandbox/members/add", host=name,
                                  content_type="application/json; charset=utf-8",
                                  body=json.dumps({"userid": f"lo{len(name)}", "name": "本机"}).encode())
        assert status == 200, answer


def test_the_wecom_api_answers_as_wecom_whatever_the_host(sandbox):
    query = f"corpid={settings.WECOM_CORP_ID}&corpsecret={settings.WECOM_SECRET}"
    status, answer = _request(sandbox, f"/cgi-bin/gettoken?{query}", host="qyapi.weixin.qq.com")
    assert status == 200 and answer["errcode"] == 0 and answer["access_token"]
    status, answer = _request(sandbox, "/cgi-bin/user/get?access_token=x&userid=a", host="qyapi.weixin.qq.com")
    assert status == 200 and answer["errcode"] == 40014  # WeCom's own answer, not a refusal


def test_the_control_client_and_the_cli_keep_working(sandbox):
    from wecom_sandbox.__main__ import main

    assert sandbox.do("members/add", userid="cli", name="命令行")["member"]["userid"] == "cli"
    assert main(["do", "members/update", "userid=cli", "name=改名", "--url", sandbox.url]) == 0
    assert main(["get", "state", "--url", sandbox.url]) == 0


def test_extra_hosts_are_allowed_only_when_named():
    assert not host_is_allowed("sandbox:8900")
    assert host_is_allowed("sandbox:8900", frozenset({"sandbox"}))
    assert host_is_allowed("[::1]:8900") and host_is_allowed("127.0.0.1:8900") and host_is_allowed("localhost")
    for forged in ("[::1].attacker.example", "[::1]x:80", "127.0.0.1:80.attacker.example", "127.0.0.1:",
                   "0x7f000001.attacker.example", "[::1"):
        assert not host_is_allowed(forged), forged
