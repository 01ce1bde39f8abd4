"""Hand-made relationships for the add-fan dashboard tests (times in Asia/Shanghai)."""

from __future__ import annotations

import itertools
import zoneinfo
from datetime import date, datetime

from customers.models import Customer, Relationship

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
_numbers = itertools.count(1)


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SH)


def follow(staff, added_at: datetime, *, ended_at: datetime | None = None, status: str | None = None,
           channel=None) -> Relationship:
    """A customer who added ``staff`` at ``added_at`` and, when ``ended_at`` is given, deleted it then."""
    n = next(_numbers)
    customer = Customer.objects.create(external_userid=f"wmDASH{n:08d}", name=f"客户{n}", staff=staff,
                                       store=staff.store, first_added_at=added_at)
    if ended_at is not None:
        status = status or Relationship.Status.DELETED_BY_CUSTOMER
    return Relationship.objects.create(customer=customer, staff=staff, store=staff.store, added_at=added_at,
                                       ended_at=ended_at, status=status or Relationship.Status.ACTIVE,
                                       channel=channel)
