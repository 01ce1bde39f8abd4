"""Production refuses public defaults: system checks that are errors, so nothing starts on them.

Registered by PortalConfig.ready(). Every ``manage.py`` command that runs checks (migrate, runserver,
setup_schedules, ``check --deploy`` …) stops on an error; the entry points that run no checks —
the WSGI application (gunicorn) and the Celery worker and beat — call ``production_refuse()``.

Demo mode (``settings.XIAOER_DEMO``: make run, the tests) may use the development defaults of
portal/dev_defaults.py. WeCom's values are checked whenever the portal talks to a real corp rather
than the sandbox, in either mode: the sandbox's published token and key would let anyone forge callbacks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from portal import dev_defaults

DEMO_HINT = "XIAOER_DEMO=1"
SECRET_KEY_MIN_LENGTH = 50
MOBILE_HASH_KEY_MIN_LENGTH = 32
# (setting, check id) of the WeCom values that must be given for a real corp and differ from the sandbox's.
WECOM_REQUIRED = (
    ("WECOM_CORP_ID", "xiaoer.E010"),
    ("WECOM_SECRET", "xiaoer.E011"),
    ("WECOM_TOKEN", "xiaoer.E013"),
    ("WECOM_AES_KEY", "xiaoer.E014"),
)


def _setting(name: str) -> str:
    try:
        return getattr(settings, name, "") or ""
    except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY
        return ""


def _production_hint() -> str:
    return _("生产模式必须设置它；开发或演示请设置 %(hint)s。") % {"hint": DEMO_HINT}


def _wecom_hint() -> str:
    return _("从企业微信管理后台复制该企业的值；开发或演示请设置 %(hint)s 且不设置 WECOM_CORP_ID（使用本地沙箱）。") % {
        "hint": DEMO_HINT}


def _secret_problems(*, missing: bool) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    secret_key = _setting("SECRET_KEY")
    if not secret_key:
        if missing:
            problems.append(Error(_("DJANGO_SECRET_KEY 未设置。"), hint=_production_hint(), id="xiaoer.E001"))
    elif (secret_key == dev_defaults.SECRET_KEY or secret_key.startswith(("django-insecure", "dev-only"))
          or len(secret_key) < SECRET_KEY_MIN_LENGTH or len(set(secret_key)) < 5):
        problems.append(Error(
            _("DJANGO_SECRET_KEY 是公开的开发默认值或太弱（至少 %(length)s 个字符的随机值）。")
            % {"length": SECRET_KEY_MIN_LENGTH},
            hint=_("生成一个：python -c 'import secrets; print(secrets.token_urlsafe(64))'"), id="xiaoer.E001"))
    hash_key = _setting("MEMBER_MOBILE_HASH_KEY")
    if not hash_key:
        if missing:
            problems.append(Error(_("MEMBER_MOBILE_HASH_KEY 未设置。"), hint=_production_hint(), id="xiaoer.E002"))
    elif hash_key == dev_defaults.MEMBER_MOBILE_HASH_KEY or len(hash_key) < MOBILE_HASH_KEY_MIN_LENGTH:
        problems.append(Error(
            _("MEMBER_MOBILE_HASH_KEY 是公开的开发默认值或太短（至少 %(length)s 个字符）：会员手机号的哈希可被穷举。")
            % {"length": MOBILE_HASH_KEY_MIN_LENGTH},
            hint=_("设置一个随机值并妥善保管；更换它会使已存的哈希失效，需重新导入会员。"), id="xiaoer.E002"))
    return problems


def _mode_problems(*, missing: bool) -> list[CheckMessage]:
    """``missing=False`` leaves out what is merely not given yet (code-only commands run without it); a value
    given but unsafe (DEBUG on, loopback hosts, a plain-http public address) is refused either way."""
    problems: list[CheckMessage] = []
    if settings.DEBUG:
        problems.append(Error(_("生产模式下开启了 DEBUG（DJANGO_DEBUG）。"),
                              hint=_("生产环境关闭 DEBUG；开发或演示请设置 %(hint)s。") % {"hint": DEMO_HINT},
                              id="xiaoer.E003"))
    hosts = [host.lower() for host in settings.ALLOWED_HOSTS]
    if (missing or hosts) and (not hosts or all(host in dev_defaults.DEV_HOSTS for host in hosts)):
        problems.append(Error(_("DJANGO_ALLOWED_HOSTS 未设置或只含本机地址。"),
                              hint=_("设置为门户对外的域名，例如 xiaoer.example.com。"), id="xiaoer.E004"))
    public = urlparse(settings.XIAOER_PUBLIC_URL or "")
    unsafe = public.scheme != "https" or not public.hostname or _is_loopback(public.hostname)
    if (missing or settings.XIAOER_PUBLIC_URL) and unsafe:
        problems.append(Error(_("XIAOER_PUBLIC_URL 未设置，或不是对外的 https 地址。"),
                              hint=_("应用消息里的链接指向它（员工手机打开的移动端），例如 https://xiaoer.example.com。"),
                              id="xiaoer.E006"))
    engine = settings.DATABASES.get("default", {}).get("ENGINE", "")
    if missing and (not engine or engine.endswith(".dummy")):
        problems.append(Error(_("DATABASE_URL 未设置：生产模式不使用内嵌的开发数据库。"),
                              hint=_production_hint(), id="xiaoer.E005"))
    return problems


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in {"localhost", ""} or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _aes_key_problems() -> list[CheckMessage]:
    key = _setting("WECOM_AES_KEY")
    if not key:
        return []
    try:
        valid = len(key) == 43 and len(base64.b64decode(key + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if valid:
        return []
    return [Error(_("WECOM_AES_KEY 不是企业微信的 EncodingAESKey（43 个字符，解码为 32 字节）。"),
                  hint=_("从企业微信后台“接收消息”设置中复制 EncodingAESKey。"), id="xiaoer.E015")]


def _wecom_problems(*, production: bool, missing: bool = True) -> list[CheckMessage]:
    """What is wrong with the WeCom settings; ``missing=False`` leaves out values merely not given yet."""
    sandbox = dev_defaults.wecom_sandbox_settings()
    problems: list[CheckMessage] = []
    for name, check_id in WECOM_REQUIRED:
        value = _setting(name)
        if not value:
            if not missing:
                continue
            problems.append(Error(_("%(name)s 未设置：连接真实企业微信时必须给出。") % {"name": name},
                                  hint=_wecom_hint(), id=check_id))
        elif value == sandbox[name]:
            problems.append(Error(
                _("%(name)s 是本地沙箱公开的值：任何人都能伪造企业微信回调。") % {"name": name},
                hint=_("使用企业微信后台中该企业的值。"), id=check_id))
    contact_secret = _setting("WECOM_CONTACT_SECRET")
    if contact_secret and contact_secret == sandbox["WECOM_CONTACT_SECRET"]:
        problems.append(Error(
            _("%(name)s 是本地沙箱公开的值：任何人都能伪造企业微信回调。") % {"name": "WECOM_CONTACT_SECRET"},
            hint=_("使用企业微信后台“通讯录同步”的 Secret，或不设置（使用应用的 Secret）。"), id="xiaoer.E012"))
    if missing and not _setting("WECOM_AGENT_ID").isdigit():
        problems.append(Error(_("WECOM_AGENT_ID 未设置或不是数字。"),
                              hint=_("企业微信后台自建应用的 AgentId。"), id="xiaoer.E017"))
    base_url = urlparse(_setting("WECOM_BASE_URL"))
    if production and (base_url.scheme not in {"http", "https"} or _is_loopback(base_url.hostname or "")):
        problems.append(Error(_("WECOM_BASE_URL 指向本机（沙箱）或不是 http(s) 地址。"),
                              hint=_("不设置即为 %(url)s。") % {"url": dev_defaults.WECOM_API_URL},
                              id="xiaoer.E016"))
    return problems


def production_settings_check(app_configs=None, *, missing: bool = True, **kwargs) -> list[CheckMessage]:
    """Errors for every public default or sandbox value where production (or a real corp) needs a secret;
    ``missing=False`` leaves out WeCom values not given yet (the deploy check and the entry points ask for them)."""
    problems = _aes_key_problems()
    production = not settings.XIAOER_DEMO
    if production:
        problems += _secret_problems(missing=missing) + _mode_problems(missing=missing)
    if production or not settings.WECOM_SANDBOX:
        problems += _wecom_problems(production=production, missing=missing)
    return problems


@register(Tags.security)
def settings_check(app_configs=None, **kwargs) -> list[CheckMessage]:
    """Every command refuses public defaults and the sandbox's published values; a WeCom value not given yet
    matters only where the portal talks to WeCom, so code-only commands (makemigrations) run without it."""
    return production_settings_check(missing=False)


@register(Tags.security, deploy=True)
def wecom_settings_deploy_check(app_configs=None, **kwargs) -> list[CheckMessage]:
    """``check --deploy`` (make serve's first step), like the WSGI and Celery entry points: WeCom values given."""
    given = {(m.id, m.msg) for m in production_settings_check(missing=False)}
    return [m for m in production_settings_check() if (m.id, m.msg) not in given]


@register(Tags.security, deploy=True)
def demo_mode_deploy_check(app_configs=None, **kwargs) -> list[CheckMessage]:
    if not settings.XIAOER_DEMO:
        return []
    return [Warning(_("演示模式（XIAOER_DEMO 或 DJANGO_DEBUG）：允许开发默认值和企业微信沙箱，不可用于生产。"),
                    hint=_("生产环境不设置 XIAOER_DEMO 与 DJANGO_DEBUG，见 README 的 Production 一节。"),
                    id="xiaoer.W001")]


def production_refuse() -> None:
    """For entry points that run no system checks (WSGI, Celery): refuse to start on any error above."""
    errors = [message for message in production_settings_check() if message.is_serious()]
    if errors:
        lines = "\n".join(f"  ({message.id}) {message.msg} {message.hint or ''}".rstrip() for message in errors)
        raise ImproperlyConfigured(_("店小二拒绝启动，设置不安全：\n%(problems)s") % {"problems": lines})
