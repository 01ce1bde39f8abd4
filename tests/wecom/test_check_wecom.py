"""manage.py check_wecom tells an operator, in plain words, what is wrong with the WECOM_* settings."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


def _check(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("check_wecom", *args, stdout=out)
        return 0, out.getvalue()
    except SystemExit as exit_:
        return exit_.code, out.getvalue()


def test_the_sandbox_corp_passes_every_check(sandbox, db):
    code, out = _check()
    assert code == 0 and "FAIL" not in out and out.count("OK") == 4


def test_a_wrong_secret_is_reported_with_what_to_fix(sandbox, db, settings):
    settings.WECOM_SECRET = "wrong"
    code, out = _check()
    assert code == 1 and "FAIL access token (app secret)" in out and "WECOM_SECRET" in out


@pytest.mark.parametrize("key", ["too-short", ""])
def test_a_malformed_aes_key_is_reported(sandbox, db, settings, key):
    settings.WECOM_AES_KEY = key
    code, out = _check()
    assert code == 1 and "WECOM_AES_KEY" in out


def test_the_callback_url_is_verified_like_wecom_does(sandbox, live_server, settings):
    code, out = _check("--callback-url", f"{live_server.url}/wecom/callback/")
    assert code == 0 and "OK   callback URL" in out
    settings.WECOM_AES_KEY = "Z" * 43  # the portal and WeCom disagree on the key
    code, out = _check("--callback-url", f"{live_server.url}/healthz")
    assert code == 1 and "回调地址未正确应答" in out
