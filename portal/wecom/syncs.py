"""Sync kinds that an operator can start from the admin (同步记录 → 立即同步), registered by their apps.

    sync_kind_register(SyncKind(kind="addressbook.full", label=_("通讯录全量同步"),
                                task="stores.org.tasks.addressbook_sync_task"))
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import current_app

from portal.registry import registry_add


@dataclass(frozen=True)
class SyncKind:
    kind: str  # SyncRun.kind written by the task
    label: str
    task: str  # dotted Celery task name, started with no arguments


_KINDS: dict[str, SyncKind] = {}


def sync_kind_register(kind: SyncKind) -> None:
    registry_add(_KINDS, kind.kind, kind, what="sync kind")


def sync_kinds() -> list[SyncKind]:
    return sorted(_KINDS.values(), key=lambda k: k.kind)


class SyncAlreadyRunning(Exception):
    pass


def sync_start(*, kind: str) -> None:
    """Queue a sync now, unless one of the same kind is already running (started in the last hour)."""
    from datetime import timedelta

    from django.utils import timezone

    from portal.tasks import enqueue_after_commit
    from portal.wecom.models import SyncRun

    registered = _KINDS[kind]
    if SyncRun.objects.filter(kind=kind, status=SyncRun.Status.RUNNING,
                              started_at__gte=timezone.now() - timedelta(hours=1)).exists():
        raise SyncAlreadyRunning(kind)
    enqueue_after_commit(current_app.tasks[registered.task])
