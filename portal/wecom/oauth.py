"""WeCom OAuth (网页授权) for the mobile page: the authorize URL, and the code → userid exchange.

Inside WeCom's in-app browser the page redirects to WeCom's authorize URL; WeCom sends the browser
back with a one-time ``code`` that ``auth/getuserinfo`` turns into the member's ``userid``. With the
sandbox, the authorize page is the sandbox's own (it lists members to sign in as).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.utils.translation import gettext as _

from portal.wecom.gateway import WeComError, wecom_call

REAL_AUTHORIZE_URL = "https://open.weixin.qq.com/connect/oauth2/authorize"
INVALID_CODE = 40029


class OAuthFailed(Exception):
    """The code was missing, used, expired or not a member's: the user must start again."""


def oauth_authorize_url(*, redirect_uri: str, state: str) -> str:
    query = {"appid": settings.WECOM_CORP_ID, "redirect_uri": redirect_uri, "response_type": "code",
             "scope": "snsapi_base", "state": state, "agentid": settings.WECOM_AGENT_ID}
    if settings.WECOM_SANDBOX:
        return f"{settings.XIAOER_SANDBOX_URL.rstrip('/')}/sandbox-file/oauth/authorize?{urlencode(query)}"
    return f"{REAL_AUTHORIZE_URL}?{urlencode(query)}#wechat_redirect"


def oauth_userid(*, code: str) -> str:
    """The member's userid for a one-time code, or OAuthFailed (a non-member's code, a used one, …)."""
    if not code:
        raise OAuthFailed(_("缺少授权码"))
    try:
        answer = wecom_call("auth/getuserinfo", method="get", params={"code": code}, caller="mobile.oauth")
    except WeComError as exc:
        if exc.errcode == INVALID_CODE:
            raise OAuthFailed(_("授权码无效或已过期，请重新进入")) from exc
        raise
    userid = answer.get("userid") or answer.get("UserId")
    if not userid:
        raise OAuthFailed(_("只有企业成员可以使用店小二"))
    return userid
