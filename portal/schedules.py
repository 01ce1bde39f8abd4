"""Beat schedules, declared by each app and written to django-celery-beat by ``setup_schedules``.

Apps call ``schedule_register`` in their AppConfig.ready(); the command is idempotent
(update_or_create by name) and never overwrites an operator's enabled/disabled choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.registry import registry_add


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    every_seconds: int | None = None
    crontab: str | None = None  # "minute hour day_of_month month_of_year day_of_week"
    description: str = ""


_SCHEDULES: dict[str, Schedule] = {}


def schedule_register(schedule: Schedule) -> None:
    if (schedule.every_seconds is None) == (schedule.crontab is None):
        raise ValueError(f"schedule {schedule.name} needs exactly one of every_seconds or crontab")
    registry_add(_SCHEDULES, schedule.name, schedule, what="beat schedule")


def schedules_declared() -> list[Schedule]:
    return sorted(_SCHEDULES.values(), key=lambda s: s.name)


def schedules_setup() -> tuple[int, int]:
    """Create or update every declared schedule. Returns (created, updated)."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    created = updated = 0
    for schedule in schedules_declared():
        timing: dict = {"interval": None, "crontab": None}
        if schedule.every_seconds is not None:
            timing["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=schedule.every_seconds, period=IntervalSchedule.SECONDS
            )
        else:
            assert schedule.crontab is not None  # schedule_register: exactly one of the two
            minute, hour, dom, month, dow = schedule.crontab.split()
            timing["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow,
                timezone="Asia/Shanghai",
            )
        _, was_created = PeriodicTask.objects.update_or_create(
            name=schedule.name,
            defaults={"task": schedule.task, "description": schedule.description, **timing},
        )
        created += was_created
        updated += not was_created
    return created, updated
