"""portal.locks: a lock held by one connection is refused to another until its block or transaction ends;
the transaction lock waits, the session lock does not; the keys are the ones used before the module existed
(a worker of the previous release contends for the same locks during a deploy)."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection, transaction

from customers.contacts.services import FULL_KIND
from customers.tags.services import TAGGING_KIND
from portal.locks import IdLock, TextLock, session_lock_try, xact_lock

# The same locks, spelled as before portal.locks: (namespace, id) pairs and hashed text keys.
MEMBER_IMPORT_42 = ("%s, %s", [7_301, 42])
TAGGING_5 = ("hashtextextended(%s, 0)", ["customers.tagging:5"])
CUSTOMER_WM1 = ("hashtextextended(%s, 0)", ["customers.sync:wm1"])


@pytest.fixture
def other():
    """A second connection to the same database, in autocommit: its locks are session locks."""
    settings = connection.settings_dict
    with psycopg.connect(dbname=settings["NAME"], host=settings["HOST"] or None, port=settings["PORT"] or None,
                         user=settings["USER"] or None, password=settings["PASSWORD"] or None,
                         autocommit=True) as other:
        yield other


def _try(other, key) -> bool:
    """Take the lock on the other connection if free, and give it back at once."""
    args, params = key
    taken = other.execute(f"SELECT pg_try_advisory_lock({args})", params).fetchone()[0]
    if taken:
        other.execute(f"SELECT pg_advisory_unlock({args})", params)
    return taken


@pytest.mark.django_db
@pytest.mark.parametrize(("subject", "name", "key", "neighbour"), [
    (IdLock.MEMBER_IMPORT, 42, MEMBER_IMPORT_42, ("%s, %s", [7_301, 43])),
    (TextLock.CUSTOMERS_TAGGING, 5, TAGGING_5, ("hashtextextended(%s, 0)", ["customers.tagging:6"])),
])
def test_a_session_lock_is_refused_to_a_second_connection_until_its_block_ends(other, subject, name, key, neighbour):
    with session_lock_try(subject, name) as locked:
        assert locked
        assert not _try(other, key)
        assert _try(other, neighbour)  # another job's lock is free
    assert _try(other, key)


@pytest.mark.django_db
def test_a_session_lock_held_elsewhere_is_not_waited_for_nor_released_by_the_one_refused(other):
    args, params = MEMBER_IMPORT_42
    assert other.execute(f"SELECT pg_try_advisory_lock({args})", params).fetchone()[0]
    started = time.monotonic()
    with session_lock_try(IdLock.MEMBER_IMPORT, 42) as locked:
        assert not locked and time.monotonic() - started < 1
    with session_lock_try(IdLock.MEMBER_IMPORT, 42) as locked:  # still the other's
        assert not locked
    other.execute(f"SELECT pg_advisory_unlock({args})", params)
    with session_lock_try(IdLock.MEMBER_IMPORT, 42) as locked:
        assert locked


@pytest.mark.django_db(transaction=True)
def test_a_transaction_lock_waits_for_its_holder_and_is_released_at_commit(other):
    args, params = CUSTOMER_WM1
    assert other.execute(f"SELECT pg_try_advisory_lock({args})", params).fetchone()[0]
    releaser = threading.Timer(0.5, lambda: other.execute(f"SELECT pg_advisory_unlock({args})", params))
    releaser.start()
    with transaction.atomic():
        started = time.monotonic()
        xact_lock(TextLock.CUSTOMER, "wm1")  # waits for the other connection
        assert time.monotonic() - started >= 0.4
        releaser.join()
        assert not _try(other, CUSTOMER_WM1)
    assert _try(other, CUSTOMER_WM1)


@pytest.mark.django_db(transaction=True)
def test_a_transaction_lock_is_released_at_rollback_and_refused_outside_a_transaction(other):
    with pytest.raises(RuntimeError, match="WeCom refused"), transaction.atomic():
        xact_lock(TextLock.CUSTOMER, "wm1")
        assert not _try(other, CUSTOMER_WM1)
        raise RuntimeError("WeCom refused")
    assert _try(other, CUSTOMER_WM1)
    with pytest.raises(RuntimeError, match="needs a transaction"):
        xact_lock(TextLock.CUSTOMER, "wm1")  # in autocommit it would be released at once


def test_subjects_are_declared_once_and_keys_are_checked():
    assert len(set(IdLock)) == len(IdLock.__members__) and len(set(TextLock)) == len(TextLock.__members__)
    assert not [subject for subject in TextLock if ":" in subject.value]  # "<subject>:<name>" stays unambiguous
    assert (TextLock.CUSTOMERS_FULL_SYNC, TextLock.CUSTOMERS_TAGGING) == (FULL_KIND, TAGGING_KIND)
    with pytest.raises(ValueError):
        session_lock_try(IdLock.MEMBER_IMPORT, 2**31).__enter__()
    with pytest.raises(ValueError):
        session_lock_try(IdLock.MEMBER_IMPORT, "42").__enter__()
    with pytest.raises(TypeError):
        session_lock_try("customers.sync", "wm1").__enter__()
