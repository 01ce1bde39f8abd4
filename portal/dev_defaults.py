"""What demo mode uses when nothing is configured: public values, so production mode refuses each.

Settings take these only in demo mode (``XIAOER_DEMO``, see portal/settings.py); portal/checks.py
refuses them everywhere else. The WeCom sandbox's published credentials are read here and only here,
from the sandbox's own ``wecom_sandbox.defaults`` (one copy, so the refusal cannot drift from what the
sandbox serves), and lazily: settings call ``wecom_sandbox_settings()`` only in sandbox mode, so a
production process imports nothing of the sandbox to configure itself; only the checks that refuse those
values read them there.
"""

from __future__ import annotations

SECRET_KEY = "dev-only-insecure-key-change-me-" + "x" * 32
MEMBER_MOBILE_HASH_KEY = "dev-only-member-mobile-hash-key-change-me"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
DEV_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "testserver", ".localhost"}

WECOM_API_URL = "https://qyapi.weixin.qq.com/cgi-bin/"


def wecom_sandbox_settings() -> dict[str, str]:
    """The WECOM_* settings that make the portal and the local sandbox agree out of the box."""
    from wecom_sandbox import defaults

    return {
        "WECOM_CORP_ID": defaults.CORP_ID,
        "WECOM_SECRET": defaults.APP_SECRET,
        "WECOM_CONTACT_SECRET": defaults.CONTACT_SECRET,
        "WECOM_AGENT_ID": defaults.AGENT_ID,
        "WECOM_TOKEN": defaults.CALLBACK_TOKEN,
        "WECOM_AES_KEY": defaults.CALLBACK_AES_KEY,
        "WECOM_BASE_URL": f"http://127.0.0.1:{defaults.PORT}/cgi-bin/",
        "XIAOER_SANDBOX_URL": f"http://127.0.0.1:{defaults.PORT}",
    }
