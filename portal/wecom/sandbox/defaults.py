"""The sandbox corp's credentials: the portal's settings default to these, so both agree out of the box."""

CORP_ID = "ww_sandbox_corp"
APP_SECRET = "sandbox-secret"
CONTACT_SECRET = "sandbox-contact-secret"
AGENT_ID = "1000002"
CALLBACK_TOKEN = "sandboxtoken"
CALLBACK_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
PORT = 8900
