"""Verify the WeCom settings against the corp they point at, and say in plain words what is wrong."""

from django.conf import settings
from django.core.management.base import BaseCommand

from portal.wecom.gateway import WeComError, wecom_call, wecom_client

ADVICE: dict[int | None, str] = {  # keyed like WeComError.errcode
    40001: "Secret 不正确：检查 WECOM_SECRET / WECOM_CONTACT_SECRET",
    40013: "CorpID 不正确：检查 WECOM_CORP_ID",
    48002: "应用没有该接口权限：在企业微信后台为应用开通“客户联系”或“通讯录”权限",
    60011: "应用可见范围不包含所需成员或部门：调整应用可见范围",
    60020: "访问 IP 不在企业可信 IP 列表中：在应用设置中添加服务器出口 IP",
    84061: "没有客户联系权限的成员：在“客户联系”中配置可使用成员",
}


class Command(BaseCommand):
    help = "Check WECOM_* settings: token, address-book and customer-contact permissions, callback settings."

    def add_arguments(self, parser):
        parser.add_argument("--callback-url", default="",
                            help="also verify this callback URL answers WeCom's signed echo with our token and key")

    def _callback_check(self, url: str) -> None:
        """Do what WeCom does when an admin saves the callback URL: a signed GET whose echostr must come back."""
        import uuid
        from xml.etree import ElementTree

        import requests
        from wechatpy.enterprise.crypto import WeChatCrypto

        crypto = WeChatCrypto(settings.WECOM_TOKEN, settings.WECOM_AES_KEY, settings.WECOM_CORP_ID)
        echo, nonce, timestamp = uuid.uuid4().hex, uuid.uuid4().hex[:10], str(int(__import__("time").time()))
        envelope = ElementTree.fromstring(crypto.encrypt_message(echo, nonce, timestamp))
        response = requests.get(url, timeout=5, params={
            "msg_signature": envelope.findtext("MsgSignature"), "timestamp": timestamp, "nonce": nonce,
            "echostr": envelope.findtext("Encrypt")})
        if response.status_code != 200 or response.text.strip() != echo:
            raise WeComError(endpoint="callback", errcode=None,
                             errmsg=f"回调地址未正确应答（HTTP {response.status_code}）：检查该地址的 WECOM_TOKEN / "
                                    "WECOM_AES_KEY / WECOM_CORP_ID 与企业微信后台一致")

    def handle(self, *args, **options):
        checks = [
            ("access token (app secret)", lambda: wecom_client().fetch_access_token()),
            ("access token (contact secret)", lambda: wecom_client(secret_kind="contact").fetch_access_token()),
            ("address book: department/list", lambda: wecom_call("department/list", method="get",
                                                                 caller="check_wecom", secret_kind="contact")),
            ("customer contact: get_follow_user_list",
             lambda: wecom_call("externalcontact/get_follow_user_list", method="get", caller="check_wecom")),
        ]
        if options["callback_url"]:
            checks.append((f"callback URL {options['callback_url']}", lambda: self._callback_check(
                options["callback_url"])))
        failures = 0
        self.stdout.write(f"WeCom API: {settings.WECOM_BASE_URL}  corp: {settings.WECOM_CORP_ID}")
        for label, check in checks:
            try:
                check()
                self.stdout.write(self.style.SUCCESS(f"  OK   {label}"))
            except WeComError as exc:
                failures += 1
                advice = ADVICE.get(exc.errcode, exc.errmsg)
                self.stdout.write(self.style.ERROR(f"  FAIL {label}: {exc.errcode} {advice}"))
            except Exception as exc:
                failures += 1
                self.stdout.write(self.style.ERROR(f"  FAIL {label}: {type(exc).__name__}: {exc}"))
        if len(settings.WECOM_AES_KEY) != 43:
            failures += 1
            self.stdout.write(self.style.ERROR("  FAIL WECOM_AES_KEY must be the 43-character EncodingAESKey"))
        if not settings.WECOM_TOKEN:
            failures += 1
            self.stdout.write(self.style.ERROR("  FAIL WECOM_TOKEN (callback Token) is empty"))
        if not options["callback_url"]:
            self.stdout.write("Callback URL to configure in WeCom: https://<your host>/wecom/callback/ "
                              "(verify it with --callback-url)")
        if failures:
            raise SystemExit(1)
