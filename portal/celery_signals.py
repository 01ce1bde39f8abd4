"""Workers are long-lived: drop stale or broken DB connections around every task."""

from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections


@task_prerun.connect
def _close_before(**_kwargs) -> None:
    close_old_connections()


@task_postrun.connect
def _close_after(**_kwargs) -> None:
    close_old_connections()
