"""assignment_nudge: a supervisor reminds the executor of open work, recorded once per quiet window."""

from __future__ import annotations

from datetime import timedelta

import pytest

from campaigns.tasks.models import Assignment
from campaigns.tasks.services import (
    AssignmentNotFound,
    AssignmentRefused,
    assignment_nudge,
    assignment_nudges_count,
)
from portal.models import AuditEvent
from tests.campaigns.tasks.helpers import task_dispatched


@pytest.fixture
def guide_a_work(hq_operator, org):
    task = task_dispatched(by=hq_operator, stores=[org.store_a, org.store_b], executor="staff")
    return Assignment.objects.get(task=task, staff=org.guide_a)


def test_a_store_manager_nudges_and_a_second_nudge_soon_after_records_nothing(guide_a_work, store_manager_of_a):
    first = assignment_nudge(assignment=guide_a_work, by=store_manager_of_a)
    second = assignment_nudge(assignment=guide_a_work, by=store_manager_of_a)
    assert (first.recorded, first.sent, second.recorded) == (True, True, False)  # queued for a WeCom member
    assert assignment_nudges_count(assignment=guide_a_work) == 1


def test_a_nudge_after_the_quiet_window_is_recorded_again(guide_a_work, store_manager_of_a):
    from campaigns.tasks.services import NUDGE_QUIET_MINUTES

    assignment_nudge(assignment=guide_a_work, by=store_manager_of_a)
    AuditEvent.objects.filter(action="assignment.nudge").update(
        at=AuditEvent.objects.get(action="assignment.nudge").at - timedelta(minutes=NUDGE_QUIET_MINUTES + 1))
    assert assignment_nudge(assignment=guide_a_work, by=store_manager_of_a).recorded
    assert assignment_nudges_count(assignment=guide_a_work) == 2


def test_staff_cannot_nudge(guide_a_work, staff_of_a):
    with pytest.raises(AssignmentRefused, match="只有店长或上级可以催办"):
        assignment_nudge(assignment=guide_a_work, by=staff_of_a)


def test_a_store_manager_cannot_nudge_another_stores_staff(hq_operator, store_manager_of_a, org, guide_a_work):
    theirs = Assignment.objects.get(task=guide_a_work.task, staff=org.guide_b)
    with pytest.raises(AssignmentNotFound):
        assignment_nudge(assignment=theirs, by=store_manager_of_a)
    assert assignment_nudges_count(assignment=theirs) == 0


def test_finished_work_is_not_nudged(guide_a_work, store_manager_of_a):
    Assignment.objects.filter(pk=guide_a_work.pk).update(status="done")
    with pytest.raises(AssignmentRefused, match="无需催办"):
        assignment_nudge(assignment=guide_a_work, by=store_manager_of_a)
