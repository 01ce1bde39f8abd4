"""The wechatpy client, pointed at the real WeCom or the local sandbox.

wechatpy 1.8.18 hard-codes both the API base URL (a class attribute) and the token URL
(inside ``fetch_access_token``); this subclass makes both follow ``base_url`` so the same
code talks to ``https://qyapi.weixin.qq.com/cgi-bin/`` or to the sandbox on loopback.
Nothing outside ``portal/wecom/`` builds a client: use the gateway.
"""

from __future__ import annotations

import os
import threading
import urllib.request

import requests
from wechatpy.enterprise import WeChatClient

REAL_WECOM_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"

_local = threading.local()


def _http_session() -> requests.Session:
    """One keep-alive session per thread and process (a forked worker makes its own): a new client per call
    would open a new TCP (and TLS) connection for every call. Without proxy variables in the environment
    requests need not scan the environment on every request either."""
    session = getattr(_local, "session", None)
    if session is None or _local.pid != os.getpid():
        session = requests.Session()
        session.trust_env = bool(urllib.request.getproxies())
        _local.session, _local.pid = session, os.getpid()
    return session


class _Http:
    """What wechatpy uses of ``self._http``, over the shared session, with our timeout on every request
    (wechatpy sends its token request without one: a hung gettoken must not hang a worker)."""

    def __init__(self, timeout: float):
        self.timeout = timeout

    def request(self, method, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return _http_session().request(method=method, url=url, **kwargs)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)


class WeComClient(WeChatClient):
    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        base_url: str = REAL_WECOM_BASE_URL,
        session=None,
        timeout: float = 10.0,
        auto_retry: bool = True,
    ):
        if not base_url.endswith("/"):
            base_url += "/"
        # An instance attribute shadows the class attribute wechatpy reads in _request.
        self.API_BASE_URL = base_url
        super().__init__(corp_id, secret, session=session, timeout=timeout, auto_retry=auto_retry)
        self._http = _Http(timeout)

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
