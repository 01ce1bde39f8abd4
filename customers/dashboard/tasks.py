"""Beat jobs of the add-fan dashboard: thin, idempotent (a rebuild of a day gives the same rows)."""

from __future__ import annotations

from datetime import date, timedelta

from django.utils import timezone

from portal.tasks import xiaoer_task


@xiaoer_task()
def acquisition_daily_build_task(*, day: str) -> int:
    from customers.dashboard.services import acquisition_daily_build

    return acquisition_daily_build(day=date.fromisoformat(day))


@xiaoer_task()
def acquisition_yesterday_build_task() -> int:
    """Just after midnight: yesterday's final figures."""
    from customers.dashboard.services import acquisition_daily_build

    return acquisition_daily_build(day=timezone.localdate() - timedelta(days=1))


@xiaoer_task()
def acquisition_today_build_task() -> int:
    """Every 10 minutes: today's rows so far (the dashboard itself reads today live)."""
    from customers.dashboard.services import acquisition_daily_build

    return acquisition_daily_build(day=timezone.localdate())
