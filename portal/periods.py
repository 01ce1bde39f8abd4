"""The period a dashboard or an analytics page may show, checked once for every page that offers one."""

from __future__ import annotations

from datetime import date

from django.utils import timezone
from django.utils.translation import gettext as _

from portal.errors import DomainError

MAX_PERIOD_DAYS = 366


class PeriodInvalid(DomainError):
    pass


def period_clean(*, date_from: date, date_to: date, today: date | None = None, max_days: int = MAX_PERIOD_DAYS,
                 error: type[DomainError] = PeriodInvalid) -> tuple[date, date]:
    """Ordered, not starting in the future (an end past today is cut to today), at most ``max_days`` days.
    Raises ``error`` (the page's own DomainError) with the reason."""
    today = today or timezone.localdate()
    if date_from > date_to:
        raise error(_("开始日期不能晚于结束日期"))
    if date_from > today:
        raise error(_("开始日期不能晚于今天"))
    date_to = min(date_to, today)
    if (date_to - date_from).days + 1 > max_days:
        raise error(_("日期范围最长 %(days)d 天") % {"days": max_days})
    return date_from, date_to
