"""The ``state`` codec: a contact way's ``state`` (≤ 30 chars, WeCom's limit) names the channel,
store, staff member and campaign, checksummed, so a customer who scans it is attributed even if the code's
row is gone."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from django.utils.translation import gettext as _

from customers.acquisition.errors import AcquisitionError
from customers.models import Channel

# -- the state codec ------------------------------------------------------------------------------
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
STATE_MAX = 30
STATE_PREFIX = "X"
_CHANNEL_RE = re.compile(r"[A-Za-z0-9]{0,8}")
_CAMPAIGN_RE = re.compile(r"[A-Za-z0-9_-]{0,16}")
_ID_RE = re.compile(r"[1-9A-Za-z][0-9A-Za-z]{0,10}")  # canonical base62: no leading zero, < 62**11


class StateTooLong(AcquisitionError):
    pass


@dataclass(frozen=True)
class DecodedState:
    channel_code: str  # "" when the code has no channel
    store_id: int
    staff_id: int | None
    campaign_ref: str


def _b62(number: int) -> str:
    digits = ""
    while number:
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    return digits or "0"


def _b62_decode(text: str) -> int:
    number = 0
    for char in text:
        number = number * 62 + BASE62.index(char)
    return number


def _checksum(body: str) -> str:
    # Two base62 chars of a CRC: a foreign state that happens to look like ours passes 1 time in 3,844.
    value = zlib.crc32(body.encode()) % (62 * 62)
    return BASE62[value // 62] + BASE62[value % 62]


def _pk(value) -> int | None:
    if value is None:
        return None
    return int(getattr(value, "pk", value))


def contact_state_encode(*, channel, store, staff, campaign_ref: str = "") -> str:
    """``X`` + checksum + ``channel.store.staff.campaign`` (ids in base62), at most 30 characters.

    ``channel`` is a Channel, its code, or None; ``store`` and ``staff`` are instances or ids.
    """
    code = channel.code if isinstance(channel, Channel) else (channel or "")
    campaign_ref = campaign_ref or ""
    if not _CHANNEL_RE.fullmatch(code):
        raise AcquisitionError(_("渠道编码只能是最多 8 位字母或数字：%(code)s") % {"code": code})
    if not _CAMPAIGN_RE.fullmatch(campaign_ref):
        raise AcquisitionError(_("活动编码只能是最多 16 位字母、数字、- 或 _：%(ref)s") % {"ref": campaign_ref})
    store_id, staff_id = _pk(store), _pk(staff)
    if not store_id or store_id < 1 or (staff_id is not None and staff_id < 1):
        raise AcquisitionError(_("活码必须属于一个门店"))
    body = f"{code}.{_b62(store_id)}.{_b62(staff_id) if staff_id else ''}.{campaign_ref}"
    state = STATE_PREFIX + _checksum(body) + body
    if len(state) > STATE_MAX:
        raise StateTooLong(_("活码参数 state 超过企业微信的 30 个字符上限（%(n)d 个）：请缩短渠道编码或活动编码")
                           % {"n": len(state)})
    return state


def contact_state_decode(state) -> DecodedState | None:
    """The attribution in a state we made; None for anything else (other tools' states, garbage)."""
    if not isinstance(state, str) or not (3 < len(state) <= STATE_MAX) or not state.startswith(STATE_PREFIX):
        return None
    check, body = state[1:3], state[3:]
    parts = body.split(".")
    if len(parts) != 4 or _checksum(body) != check:
        return None
    code, store, staff, campaign = parts
    if not (_CHANNEL_RE.fullmatch(code) and _ID_RE.fullmatch(store) and _CAMPAIGN_RE.fullmatch(campaign)):
        return None
    if staff and not _ID_RE.fullmatch(staff):
        return None
    return DecodedState(channel_code=code, store_id=_b62_decode(store),
                        staff_id=_b62_decode(staff) if staff else None, campaign_ref=campaign)
