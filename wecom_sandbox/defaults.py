"""The sandbox corp's published credentials and port.

The sandbox serves with these unless WECOM_* variables say otherwise. The portal reads them through
``portal.dev_defaults.wecom_sandbox_settings()`` only: its settings take them in sandbox (demo) mode, so
both agree out of the box, and its production checks refuse them anywhere else (they are public).
"""

CORP_ID = "ww_sandbox_corp"
APP_SECRET = "sandbox-secret"
CONTACT_SECRET = "sandbox-contact-secret"
AGENT_ID = "1000002"
CALLBACK_TOKEN = "sandboxtoken"
CALLBACK_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PORT = 8900
