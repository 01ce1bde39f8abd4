"""Recording material use: a push to a Redis list on the hot path, written to the database in batches.

``material_use_record`` is what a page calls when someone views, downloads, copies, shares or sends a
material: it appends one small JSON record (made with its own event id and time) to a Redis list and returns —
no database write. If Redis cannot be reached the event is inserted directly (nothing lost, only slower).

``material_uses_flush`` (beat, every 10 s, one at a time under an advisory lock) reads a batch from the head of
the list *without removing it*, writes the events and their daily counts in one statement, then trims what it
read. The events are inserted ``ON CONFLICT (event_id) DO NOTHING`` and the daily counts are added from the
rows that statement actually inserted, so a flush that crashed after writing and before trimming re-reads the
same records and counts nothing twice. A record that cannot be parsed, or names a material (version, store,
staff member) that does not exist, is dropped and counted in the log line: it never blocks the queue.
Producers only append to the tail and only the flush trims the head, so trimming what was read is exact.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction

from materials.usage.models import UseAction
from portal.locks import TextLock, session_lock_try

logger = logging.getLogger(__name__)

QUEUE_KEY = "xiaoer:materials:uses"
ACTIONS = frozenset(UseAction.values)
INT4_MAX = 2**31 - 1
FLUSH_SECONDS = 8.0  # one beat run drains batches for at most this long (the next run comes 10 s later)


@lru_cache(maxsize=4)
def _redis_for(url: str) -> redis.Redis:
    """One client (one connection pool) per process and URL; short timeouts so an outage is noticed fast."""
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def _redis() -> redis.Redis:
    return _redis_for(settings.REDIS_URL)


@dataclass(frozen=True)
class UseEvent:
    event_id: str
    material_id: int
    version_id: int
    store_id: int | None
    staff_id: int | None
    user_id: int | None
    action: str
    at: float  # seconds since the epoch

    def record(self) -> bytes:
        return json.dumps([self.event_id, self.material_id, self.version_id, self.store_id, self.staff_id,
                           self.user_id, self.action, self.at], separators=(",", ":")).encode()


def material_use_record(*, material_id: int, version_id: int, store_id: int | None, staff_id: int | None,
                        user_id: int | None, action: str, at: float | None = None) -> None:
    """Record one use: a Redis push (microseconds); straight into the database if Redis is unreachable.

    ``at`` (seconds since the epoch) is now unless given: the demo's history and imports give past times.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown material use action {action!r}")
    event = UseEvent(event_id=uuid.uuid4().hex, material_id=material_id, version_id=version_id, store_id=store_id,
                     staff_id=staff_id, user_id=user_id, action=action, at=time.time() if at is None else at)
    try:
        _redis().rpush(QUEUE_KEY, event.record())
    except redis.RedisError:
        logger.warning("material use: Redis unreachable, writing the event directly")
        _events_write([event])


def _id(value: Any, *, optional: bool) -> int | None:
    if value is None and optional:
        return None
    if type(value) is not int or not 0 < value <= INT4_MAX:
        raise ValueError(value)
    return value


def use_event_parse(raw: bytes | str) -> UseEvent | None:
    """The event a queued record holds, or None if it is malformed."""
    try:
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != 8:
            return None
        event_id, material_id, version_id, store_id, staff_id, user_id, action, at = values
        if not isinstance(event_id, str) or action not in ACTIONS:
            return None
        if type(at) not in (int, float) or not 0 < at < 32_503_680_000:  # before the year 3000
            return None
        return UseEvent(event_id=uuid.UUID(hex=event_id).hex, material_id=_id(material_id, optional=False) or 0,
                        version_id=_id(version_id, optional=False) or 0, store_id=_id(store_id, optional=True),
                        staff_id=_id(staff_id, optional=True), user_id=_id(user_id, optional=True),
                        action=action, at=float(at))
    except (ValueError, TypeError, AttributeError):  # bad JSON, bad UUID, bad ids
        return None


# One statement: the events that name existing rows are inserted (a known event id: nothing), and the daily
# counts grow by the rows inserted, so replaying a batch changes nothing.
WRITE_SQL = """
WITH incoming AS (
    SELECT * FROM unnest(%(event_ids)s::uuid[], %(materials)s::int[], %(versions)s::int[], %(stores)s::int[],
                         %(staff)s::int[], %(users)s::int[], %(actions)s::text[], %(ats)s::float8[])
        AS i(event_id, material_id, version_id, store_id, staff_id, user_id, action, at)
), valid AS (
    SELECT i.* FROM incoming i
    JOIN materials_materialversion v ON v.id = i.version_id AND v.material_id = i.material_id
    WHERE (i.store_id IS NULL OR EXISTS (SELECT 1 FROM stores_store s WHERE s.id = i.store_id))
      AND (i.staff_id IS NULL OR EXISTS (SELECT 1 FROM stores_staff st WHERE st.id = i.staff_id))
), inserted AS (
    INSERT INTO materials_materialuse (event_id, material_id, version_id, store_id, staff_id, user_id, action, at)
    SELECT event_id, material_id, version_id, store_id, staff_id, user_id, action, to_timestamp(at) FROM valid
    ON CONFLICT (event_id) DO NOTHING
    RETURNING material_id, store_id, action, at
), rolled AS (
    INSERT INTO materials_materialusedaily (day, material_id, store_id, action, count)
    SELECT (at AT TIME ZONE %(tz)s)::date, material_id, store_id, action, count(*) FROM inserted GROUP BY 1, 2, 3, 4
    ON CONFLICT ON CONSTRAINT material_use_daily_unique
    DO UPDATE SET count = materials_materialusedaily.count + EXCLUDED.count
    RETURNING 1
)
SELECT (SELECT count(*) FROM incoming), (SELECT count(*) FROM valid), (SELECT count(*) FROM inserted)
"""


@dataclass(frozen=True)
class WriteResult:
    received: int
    valid: int
    inserted: int


def _events_write(events: list[UseEvent]) -> WriteResult:
    if not events:
        return WriteResult(0, 0, 0)
    params: dict[str, Any] = {
        "event_ids": [e.event_id for e in events], "materials": [e.material_id for e in events],
        "versions": [e.version_id for e in events], "stores": [e.store_id for e in events],
        "staff": [e.staff_id for e in events], "users": [e.user_id for e in events],
        "actions": [e.action for e in events], "ats": [e.at for e in events], "tz": settings.TIME_ZONE,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WRITE_SQL, params)
        received, valid, inserted = cursor.fetchone()
    return WriteResult(received=received, valid=valid, inserted=inserted)


@dataclass(frozen=True)
class FlushResult:
    read: int = 0
    inserted: int = 0
    duplicates: int = 0  # already written by an earlier flush that was not trimmed
    malformed: int = 0
    unknown: int = 0  # naming a material, version, store or staff member that does not exist


def _flush_batch(client: redis.Redis, batch: int) -> FlushResult:
    raw = client.lrange(QUEUE_KEY, 0, batch - 1)
    if not raw:
        return FlushResult()
    parsed = [use_event_parse(record) for record in raw]
    events = [event for event in parsed if event is not None]
    written = _events_write(events)  # raises on a database error: nothing is trimmed, all is read again
    client.ltrim(QUEUE_KEY, len(raw), -1)
    result = FlushResult(read=len(raw), inserted=written.inserted, duplicates=written.valid - written.inserted,
                         malformed=len(raw) - len(events), unknown=written.received - written.valid)
    log = logger.warning if result.malformed or result.unknown else logger.info
    log("material uses flushed: read=%d inserted=%d duplicates=%d dropped_malformed=%d dropped_unknown=%d",
        result.read, result.inserted, result.duplicates, result.malformed, result.unknown)
    return result


def material_uses_flush(*, batch: int = 20_000, max_seconds: float = FLUSH_SECONDS) -> int:
    """Write queued uses to the database, batch after batch for up to ``max_seconds``. Returns rows inserted.

    One flush at a time (a second one returns 0 at once). Safe to crash anywhere and run again.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    inserted = 0
    with session_lock_try(TextLock.MATERIAL_USES_FLUSH) as locked:
        if not locked:
            return 0
        client = _redis()
        started = time.monotonic()
        while True:
            result = _flush_batch(client, batch)
            inserted += result.inserted
            if result.read < batch or time.monotonic() - started >= max_seconds:
                return inserted


def material_uses_queued() -> int:
    """How many records wait in the queue (the admin shows it; a growing number means the flush is behind)."""
    try:
        return int(_redis().llen(QUEUE_KEY))
    except redis.RedisError:
        return 0
