"""Segment snapshots: frozen member lists, taken in the request or filled by a Celery task; counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from customers.models import Segment, SegmentSnapshot
from customers.segments.rules import SegmentRuleError, segment_rule_normalize
from customers.segments.selectors import _system_queryset, segment_count, segment_queryset, segment_statement
from customers.segments.tasks import segment_snapshot_fill_task
from portal.tasks import enqueue_after_commit

if TYPE_CHECKING:
    from portal.models import User

SNAPSHOT_SYNC_MAX = 200_000  # bigger segments are materialized by a Celery task, not in the request


def segments_recount() -> int:
    """Refresh every segment's brand-wide ``last_count`` (beat). One COUNT per segment; returns segments counted."""
    counted = 0
    for segment in Segment.objects.only("pk", "rule").iterator():
        try:
            with segment_statement():
                count = _system_queryset(segment.rule).order_by().count()
        except SegmentRuleError:
            continue  # an invalid rule shows its errors on its admin page
        Segment.objects.filter(pk=segment.pk).update(last_count=count, last_counted_at=timezone.now())
        counted += 1
    return counted


# -- snapshots ---------------------------------------------------------------------------------------

SNAPSHOT_FILL_SQL = """
INSERT INTO customers_segmentsnapshotmember (snapshot_id, customer_id)
SELECT %s, matched.customer_id FROM ({query}) AS matched(customer_id)
ON CONFLICT (snapshot_id, customer_id) DO NOTHING
"""


def _snapshot_create(*, segment: Segment, by: User, status: str) -> SegmentSnapshot:
    rule = segment_rule_normalize(rule=segment.rule)  # a broken rule fails here, before any snapshot exists
    return SegmentSnapshot.objects.create(segment=segment, rule=rule, created_by=by, status=status)


def segment_snapshot_take(*, segment: Segment, by: User) -> SegmentSnapshot:
    """Materialize at once when the segment is small; leave a big one to a Celery task (status shown).

    A snapshot is the customers its creator may see: ``by`` is recorded as ``created_by`` and its scope is
    the one the (possibly later) fill applies, so actor and viewer are one user here by design."""
    if segment_count(segment=segment, viewer=by) <= SNAPSHOT_SYNC_MAX:
        return segment_materialize(segment=segment, by=by)
    return segment_materialize_enqueue(segment=segment, by=by)


def segment_materialize(*, segment: Segment, by: User) -> SegmentSnapshot:
    """Freeze the customers ``by`` may see in the segment now: one INSERT … SELECT. Never changes afterwards."""
    snapshot = _snapshot_create(segment=segment, by=by, status=SegmentSnapshot.Status.QUEUED)
    return segment_snapshot_fill(snapshot_id=snapshot.pk)


def segment_materialize_enqueue(*, segment: Segment, by: User) -> SegmentSnapshot:
    """The same for big segments: the snapshot is queued and a Celery task fills it."""
    snapshot = _snapshot_create(segment=segment, by=by, status=SegmentSnapshot.Status.QUEUED)
    enqueue_after_commit(segment_snapshot_fill_task, snapshot_id=snapshot.pk)
    return snapshot


def segment_snapshot_fill(*, snapshot_id: int) -> SegmentSnapshot:
    """Fill a queued snapshot. Idempotent: the row lock makes a second run wait, then find it done.

    Members and the final status commit together, so a worker dying half-way leaves a snapshot with
    no members that the next delivery of the task fills.
    """
    SegmentSnapshot.objects.filter(pk=snapshot_id, status=SegmentSnapshot.Status.QUEUED).update(
        status=SegmentSnapshot.Status.RUNNING)
    try:
        with transaction.atomic():
            snapshot = SegmentSnapshot.objects.select_for_update(of=("self",)).select_related("created_by").get(
                pk=snapshot_id)
            if snapshot.status in (SegmentSnapshot.Status.DONE, SegmentSnapshot.Status.FAILED):
                return snapshot
            if snapshot.created_by is None:
                raise SegmentRuleError([_("创建人已不存在，无法按其可见范围生成快照")])
            size = _snapshot_insert(snapshot=snapshot, viewer=snapshot.created_by)
            snapshot.size, snapshot.status, snapshot.finished_at = size, SegmentSnapshot.Status.DONE, timezone.now()
            snapshot.save(update_fields=["size", "status", "finished_at"])
            return snapshot
    except Exception as exc:
        SegmentSnapshot.objects.filter(pk=snapshot_id).exclude(status=SegmentSnapshot.Status.DONE).update(
            status=SegmentSnapshot.Status.FAILED, error=str(exc)[:255], finished_at=timezone.now())
        raise


def _snapshot_insert(*, snapshot: SegmentSnapshot, viewer: User) -> int:
    queryset = segment_queryset(rule=snapshot.rule, viewer=viewer).order_by().values("pk")
    # str(queryset.query) does not quote parameters: take the SQL and its parameters separately.
    sql, params = queryset.query.sql_with_params()
    with segment_statement(), connection.cursor() as cursor:
        cursor.execute(SNAPSHOT_FILL_SQL.format(query=sql), [snapshot.pk, *params])
        return cursor.rowcount
