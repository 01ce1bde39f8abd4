"""Background work runs on a real Celery worker over Redis, and only after the data is committed."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from portal.models import BeatHeartbeat
from portal.tasks import TASK_DEFAULTS, beat_heartbeat_task, enqueue_after_commit


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.integration
def test_a_task_enqueued_after_commit_runs_on_the_worker(celery_worker):
    with transaction.atomic():
        enqueue_after_commit(beat_heartbeat_task)
        assert not BeatHeartbeat.objects.exists()
    assert wait_for(lambda: BeatHeartbeat.objects.filter(name="beat").exists())


@pytest.mark.integration
def test_a_rolled_back_transaction_enqueues_nothing(celery_worker):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        enqueue_after_commit(beat_heartbeat_task)
        raise Abort
    time.sleep(0.5)
    assert not BeatHeartbeat.objects.exists()


def test_every_task_acks_late_and_retries_with_backoff():
    assert beat_heartbeat_task.acks_late is True
    assert TASK_DEFAULTS["acks_late"] and TASK_DEFAULTS["retry_backoff"]


@pytest.mark.integration
def test_running_a_task_twice_is_harmless(celery_worker):
    beat_heartbeat_task.delay()
    beat_heartbeat_task.delay()
    assert wait_for(lambda: BeatHeartbeat.objects.filter(name="beat").exists())
    time.sleep(0.3)
    assert BeatHeartbeat.objects.count() == 1
