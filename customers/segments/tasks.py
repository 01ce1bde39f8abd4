"""Segment tasks: fill a big snapshot, refresh every segment's count (beat)."""

from __future__ import annotations

from portal.tasks import xiaoer_task


@xiaoer_task()
def segment_snapshot_fill_task(*, snapshot_id: int) -> int:
    """Safe to run twice: the snapshot row is locked and a finished snapshot is left as it is."""
    from customers.segments.services import segment_snapshot_fill

    return segment_snapshot_fill(snapshot_id=snapshot_id).size


@xiaoer_task()
def segments_recount_task() -> int:
    from customers.segments.services import segments_recount

    return segments_recount()
