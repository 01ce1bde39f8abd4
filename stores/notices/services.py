"""Telling people things: one row per reader, written in one statement."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from stores.notices.models import Notice


def notices_send(*, user_ids: Iterable[int], title: str, body: str = "", link: str = "") -> int:
    rows = [Notice(user_id=user_id, title=title[:200], body=body[:2000], link=link[:500])
            for user_id in dict.fromkeys(user_ids)]
    Notice.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def notices_mark_read(*, notices, by) -> int:
    """Marks the reader's own notices read (others' are not theirs to mark)."""
    return notices.filter(user=by, read_at__isnull=True).update(read_at=timezone.now())
