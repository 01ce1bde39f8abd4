"""Reading one's notices."""

from __future__ import annotations

from django.db.models import QuerySet

from stores.notices.models import Notice


def notices_unread(*, viewer) -> QuerySet[Notice]:
    if viewer is None or not viewer.pk:
        return Notice.objects.none()
    return Notice.objects.filter(user=viewer, read_at__isnull=True)
