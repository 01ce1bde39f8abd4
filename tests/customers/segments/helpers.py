"""Hand-built customers for the segment and lifecycle tests (times in Asia/Shanghai)."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import datetime
from decimal import Decimal

from customers.models import Customer, Member, Segment
from tests.factories import TagFactory

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def member(*, level: str = "", spend: str = "0", r: int | None = None, f: int | None = None,
           m: int | None = None) -> Member:
    n = next(_numbers)
    return Member.objects.create(member_no=f"MSEG{n:06d}", level=level, lifetime_spend=Decimal(spend),
                                 rfm_r=r, rfm_f=f, rfm_m=m)


def customer(staff, *, name: str | None = None, tags=(), stage: str = "fan", first_added_at=None,
             last_touch_at=None, active: bool = True, channel=None, member: Member | None = None) -> Customer:
    """A customer whose primary staff member (and so store, region, franchisee) is ``staff``."""
    n = next(_numbers)
    store = staff.store
    return Customer.objects.create(
        external_userid=f"wmSEG{n:08d}", name=name or f"客户{n}", staff=staff, store=store, region=store.region,
        franchisee=store.franchisee, tag_ids=[t.pk for t in tags], stage=stage, first_added_at=first_added_at,
        last_touch_at=last_touch_at, active=active, channel=channel, member=member)


def tags(*names: str):
    return [TagFactory(name=name) for name in names]


def segment(rule: dict, name: str = "分层") -> Segment:
    return Segment.objects.create(name=name, rule=rule)
