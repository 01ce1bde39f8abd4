"""No secret, token or OAuth code in any text we store, raise, show or log.

WeCom puts credentials in query strings: ``gettoken?corpid=…&corpsecret=<secret>``, every other call
``…?access_token=<token>``, the OAuth exchange ``auth/getuserinfo?code=<code>``. A failed connection's
message (urllib3's "Max retries exceeded with url: …") carries that URL, and so do urllib3's debug
log lines. ``text_redact`` is the one place that cleans such text:

- the value of any query parameter or mapping key with a sensitive name (``corpsecret=***``,
  ``'access_token': '***'``), whatever the value is;
- the configured secrets themselves (``SECRET_SETTINGS``), raw or URL-encoded, wherever they appear.

The gateway runs everything it records, raises or returns as an error through it; settings.LOGGING
installs ``SecretsRedactingFilter`` on its handlers (and WeComConfig.ready() on Celery's), so log
lines from urllib3, requests and wechatpy are cleaned too.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"

# Parameter and key names whose values are credentials (compared case-insensitively, as whole names:
# ``errcode`` is not ``code``).
SENSITIVE_NAMES = (
    "access_token", "corpsecret", "secret", "code", "auth_code", "pre_auth_code", "key", "echostr", "token",
    "aes_key", "encodingaeskey", "suite_access_token", "provider_access_token", "suite_secret", "provider_secret",
    "ticket", "jsapi_ticket", "password",
)
# Settings whose values must never appear in text, whatever surrounds them.
SECRET_SETTINGS = ("WECOM_SECRET", "WECOM_CONTACT_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY", "SECRET_KEY",
                   "MEMBER_MOBILE_HASH_KEY")
MIN_SECRET_LENGTH = 6  # a shorter (or empty) value would mask harmless text everywhere

_NAMES = "|".join(sorted(SENSITIVE_NAMES, key=len, reverse=True))
# name=value in a query string (also percent-encoded, as in a logged redirect URL): the value runs to the
# next separator.
_PARAM = re.compile(rf"(?:(?<![A-Za-z0-9_])|(?<=%3F)|(?<=%26))({_NAMES})(=|%3D)"
                    rf"((?:(?!%26)[^&\s'\"#<>,;)\]}}])+)", re.IGNORECASE)
# 'name': 'value' / "name": "value" (a dict's repr, JSON).
_KEYED = re.compile(rf"""(["'])({_NAMES})\1(\s*:\s*)(["'])(?:(?!\4).)*\4""", re.IGNORECASE)
_SENSITIVE = {name.lower() for name in SENSITIVE_NAMES}


def _configured_secrets() -> tuple[str, ...]:
    from django.conf import settings

    if not settings.configured:
        return ()
    values = (getattr(settings, name, "") for name in SECRET_SETTINGS)
    return tuple(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)


@lru_cache(maxsize=8)
def _literal_pattern(secrets: tuple[str, ...]) -> re.Pattern | None:
    forms = {form for secret in secrets for form in (secret, quote(secret, safe=""), quote_plus(secret))}
    if not forms:
        return None
    return re.compile("|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True)))


def text_redact(text: str) -> str:
    """``text`` without credentials: sensitive parameters' values and the configured secrets masked."""
    if not text:
        return text
    text = str(text)
    literal = _literal_pattern(_configured_secrets())
    if literal is not None:
        text = literal.sub(MASK, text)
    text = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    return _KEYED.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(1)}{m.group(3)}{m.group(4)}{MASK}{m.group(4)}",
                      text)


def data_redact(value: Any) -> Any:
    """A copy of a request's params/body with the values of sensitive keys masked (for a stored summary)."""
    if isinstance(value, dict):
        return {k: MASK if str(k).lower() in _SENSITIVE else data_redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [data_redact(v) for v in value]
    return value


class SecretsRedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's message, traceback and stack without credentials.

    It changes the record itself (message formatted, args dropped), so every handler after this one
    sees the cleaned text too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        cleaned = text_redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = text_redact(record.exc_text)
        if record.stack_info:
            record.stack_info = text_redact(record.stack_info)
        return True


def redacting_filter_install(handlers) -> None:
    """Add the filter to handlers made outside settings.LOGGING (Celery's worker and task loggers)."""
    for handler in handlers:
        if not any(isinstance(f, SecretsRedactingFilter) for f in handler.filters):
            handler.addFilter(SecretsRedactingFilter())
