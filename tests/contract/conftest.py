"""The contract suite: the real wechatpy client, over HTTP, endpoint by endpoint.

By default it runs against the sandbox. With WECOM_* credentials of a real (test) corp and
XIAOER_CONTRACT_REAL=1 it runs against the real WeCom; tests that need the sandbox to play
people (the ``sandbox`` fixture) are skipped there. Without that flag, a configured real corp
skips the whole suite, so nothing is sent to a real corp by accident.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings


@pytest.fixture(autouse=True)
def _contract_target(db):
    if not settings.WECOM_SANDBOX and os.environ.get("XIAOER_CONTRACT_REAL") != "1":
        pytest.skip("a real WeCom corp is configured: set XIAOER_CONTRACT_REAL=1 to run the contract suite on it")


@pytest.fixture
def wechat(sandbox):
    """wechatpy's own client (WeComClient over the gateway's settings), for wechatpy's built-in APIs."""
    from portal.wecom.gateway import wecom_client

    return wecom_client()


@pytest.fixture
def wecom(sandbox):
    """The gateway: wecom("externalcontact/get", method="get", params={...}) → WeCom's JSON or WeComError."""
    from portal.wecom.gateway import wecom_call

    def call(endpoint: str, **kwargs):
        return wecom_call(endpoint, caller="contract", **kwargs)

    return call
