"""PostgreSQL advisory locks, all of them here: one worker at a time on a customer, a sync, a job.

Two key schemes, which PostgreSQL keeps apart (a bigint key and a pair of int4 keys never conflict):

- ``IdLock``: a number per subject plus a row id, ``pg_advisory_lock(subject, id)``: for jobs keyed by an id.
- ``TextLock``: a text key, ``"<subject>"`` or ``"<subject>:<name>"``, hashed to a bigint by PostgreSQL's
  ``hashtextextended(key, 0)``: for things named by a string (a WeCom external_userid, a sync kind).

Every subject is declared in these two enums (``@unique``: no two subjects share a number or a text), so two
subjects cannot take each other's lock. The keys are the ones used before this module existed: a worker of
the previous release still running during a deploy contends for the same locks. Never renumber or rename.

Two ways to hold one, as the callers need:

- ``xact_lock``: waits for the lock; it is released when the surrounding transaction ends (commit or rollback).
- ``session_lock_try``: does not wait (``with … as locked``, False if another connection holds it); held until
  the block ends, across the block's own commits, and released if the worker dies with its connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum, StrEnum, unique

from django.db import connection

INT4 = range(-(2**31), 2**31)


@unique
class IdLock(IntEnum):
    MEMBER_IMPORT = 7_301  # one runner per member import job (a second delivery skips it)
    TASK_DISPATCH = 7_401  # one dispatch, re-dispatch or cancel of a task at a time


@unique
class TextLock(StrEnum):
    CUSTOMER = "customers.sync"  # + external_userid: callbacks, "sync now" and reconciliation on one customer
    CUSTOMERS_FULL_SYNC = "customers.full"  # one full customer sync at a time
    CUSTOMERS_TAGGING = "customers.tagging"  # + run id: one runner per bulk tagging job
    MATERIAL_MEDIA = "materials.media"  # + "<version id>:<purpose>": one upload of a version to WeCom at a time
    MATERIAL_MEDIA_UPLOADIMG = "materials.media.uploadimg"  # the daily quota of permanent image URLs, counted
    MATERIAL_USES_FLUSH = "materials.uses_flush"  # one flush of the material-use queue at a time
    MATERIAL_POSTERS = "materials.posters"  # + run id: one runner per poster job


def _key(subject: IdLock | TextLock, name: int | str | None) -> tuple[str, list]:
    """The arguments of a pg_advisory_* call: ``(sql, params)``."""
    if isinstance(subject, IdLock):
        if type(name) is not int or name not in INT4:
            raise ValueError(f"lock {subject.name}: the id must be an int4, not {name!r}")
        return "%s, %s", [int(subject), name]
    if isinstance(subject, TextLock):
        return "hashtextextended(%s, 0)", [subject.value if name is None else f"{subject.value}:{name}"]
    raise TypeError(f"not a lock subject declared in portal.locks: {subject!r}")


def xact_lock(subject: IdLock | TextLock, name: int | str | None = None) -> None:
    """Wait for the lock, held until the current transaction ends. Take it *before* reading what it guards."""
    if not connection.in_atomic_block:  # outside a transaction it would be released at once
        raise RuntimeError(f"xact_lock({subject.name}) needs a transaction (transaction.atomic)")
    args, params = _key(subject, name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock({args})", params)


@contextmanager
def session_lock_try(subject: IdLock | TextLock, name: int | str | None = None) -> Iterator[bool]:
    """Take the lock if it is free (never waits): ``with session_lock_try(…) as locked: if not locked: …``."""
    args, params = _key(subject, name)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_try_advisory_lock({args})", params)
        locked = cursor.fetchone()[0]
    try:
        yield locked
    finally:
        if locked:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT pg_advisory_unlock({args})", params)
