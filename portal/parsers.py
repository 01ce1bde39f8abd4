"""Values as people type them and spreadsheets export them, parsed strictly: mobiles, integers, amounts, dates.

Each parser returns the clean value or raises ``ValueInvalid`` with a message a user can read (naming the
column by its ``label``, quoting at most 32 characters of what was sent). The member imports, the members
API and the admin's search boxes share them, so a value means the same wherever it comes in.
"""

from __future__ import annotations

import re
from datetime import date

from django.utils.translation import gettext as _

from portal.errors import DomainError

INT_MAX = 2_147_483_647  # PostgreSQL's integer


class ValueInvalid(DomainError):
    """A value that cannot be read as what its column holds; the message says why."""


# -- mobiles ----------------------------------------------------------------------------------------

_FULLWIDTH = str.maketrans("０１２３４５６７８９＋", "0123456789+")
_MOBILE_JUNK = re.compile(r"[\s()\-]")


def mobile_normalize(raw: str) -> str:
    """A Chinese mainland mobile as 11 digits starting with 1; raises ValueInvalid otherwise.

    Accepts what people type and spreadsheets produce: ``+86 138 0000 0000``, ``0086-138…``,
    ``86138…``, full-width digits. Kept in step with ``_REMARK_MOBILE_SQL`` in customers/members/services.py
    (the SQL twin, which ``relationship_mobile_hashes_backfill`` uses).
    """
    text = raw if raw.isascii() else raw.translate(_FULLWIDTH)
    if len(text) != 11 or not text.isdigit():
        text = _MOBILE_JUNK.sub("", text)
        if text.startswith("+86"):
            text = text[3:]
        elif text.startswith("0086"):
            text = text[4:]
        elif len(text) == 13 and text.startswith("86"):
            text = text[2:]
    if len(text) == 11 and text[0] == "1" and text.isascii() and text.isdigit():
        return text
    raise ValueInvalid(_("手机号“%(value)s”无效：应为 11 位中国大陆手机号（以 1 开头，可带 +86）") % {
        "value": raw.strip()[:32]})


# -- numbers, dates, text -----------------------------------------------------------------------------

_INT_LOOSE = re.compile(r"[+-]?\d+(?:\.0*)?")
_AMOUNT = re.compile(r"\d{1,12}(?:\.\d{0,2})?")
_DATE_LOOSE = re.compile(r"(\d{4})[-/.年]?(\d{1,2})[-/.月]?(\d{1,2})日?(?:[ T].*)?")


def int_parse(text: str, *, label: str, minimum: int = 0) -> int:
    """'12', '1,234', '12.0' (a spreadsheet's float) → int within [minimum, INT_MAX]."""
    try:
        value = int(text)
    except ValueError:
        cleaned = text.replace(",", "").replace("，", "").strip()
        if not _INT_LOOSE.fullmatch(cleaned):
            raise ValueInvalid(_("%(label)s“%(value)s”不是整数") % {"label": label, "value": text[:32]}) from None
        value = int(cleaned.split(".")[0])
    if not minimum <= value <= INT_MAX:
        raise ValueInvalid(_("%(label)s“%(value)s”超出范围（%(min)d 至 %(max)d）") % {
            "label": label, "value": text[:32], "min": minimum, "max": INT_MAX})
    return value


def amount_parse(text: str, *, label: str) -> str:
    """A non-negative CNY amount with at most 2 decimals ('¥1,234.50' → '1234.50'), as text for SQL."""
    if not _AMOUNT.fullmatch(text):
        cleaned = text.replace(",", "").replace("，", "").lstrip("¥￥").strip()
        if not _AMOUNT.fullmatch(cleaned):
            raise ValueInvalid(_("%(label)s“%(value)s”应为不小于 0 的金额，最多两位小数") % {
                "label": label, "value": text[:32]})
        text = cleaned
    return text


def date_parse(text: str, *, label: str) -> date:
    """2026-01-05, 2026/1/5, 20260105, 2026年1月5日, with or without a time part (the loose forms: years
    1900–2100; an ISO date is taken as it is)."""
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    match = _DATE_LOOSE.fullmatch(text)
    try:
        if not match:
            raise ValueError(text)
        value = date(int(match[1]), int(match[2]), int(match[3]))
        if not 1900 <= value.year <= 2100:
            raise ValueError(text)
        return value
    except ValueError:
        raise ValueInvalid(_("%(label)s“%(value)s”不是有效日期（如 2026-01-05）") % {
            "label": label, "value": text[:32]}) from None


def text_check(text: str, *, label: str, max_length: int) -> str:
    """``text`` itself if it fits the column (``max_length`` characters)."""
    if len(text) > max_length:
        raise ValueInvalid(_("%(label)s超过 %(max)d 个字符") % {"label": label, "max": max_length})
    return text


def id_param(value) -> int | None:
    """A database id from a query string or form (``?customer=12``): a positive int4, else None (ignored)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**31 else None
