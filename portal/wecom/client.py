"""The wechatpy client, pointed at the real WeCom or the local sandbox.

wechatpy 1.8.18 hard-codes both the API base URL (a class attribute) and the token URL
(inside ``fetch_access_token``); this subclass makes both follow ``base_url`` so the same
code talks to ``https://qyapi.weixin.qq.com/cgi-bin/`` or to the sandbox on loopback.
Nothing outside ``portal/wecom/`` builds a client: use the gateway.
"""

from __future__ import annotations

from wechatpy.enterprise import WeChatClient

REAL_WECOM_BASE_URL = "https://qyapi.weixin.qq.com/cgi-bin/"


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

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )

    def _fetch_access_token(self, url, params):
        # wechatpy fetches the token without a timeout; a hung gettoken must not hang a worker.
        original_get = self._http.get
        self._http.get = lambda *args, **kwargs: original_get(*args, timeout=self.timeout, **kwargs)
        try:
            return super()._fetch_access_token(url, params)
        finally:
            self._http.get = original_get
