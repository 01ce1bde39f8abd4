from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from portal.models import AuditEvent, User

MAX_IDS_RECORDED = 1000


def audit_record(*, action: str, target_type: str, target_ids: Iterable[int] = (), by: User | None = None,
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    ids = list(target_ids)
    detail = dict(detail or {})
    if len(ids) > MAX_IDS_RECORDED:
        detail["ids_truncated_from"] = len(ids)
        ids = ids[:MAX_IDS_RECORDED]
    actor = by if by is not None and getattr(by, "pk", None) else None
    return AuditEvent.objects.create(action=action, target_type=target_type, target_ids=ids, actor=actor,
                                     detail=detail)
