"""Fixtures of the materials tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def queue():
    """The Redis queue of material uses, empty before and after the test."""
    from materials.usage.services import QUEUE_KEY, _redis

    client = _redis()
    client.delete(QUEUE_KEY)
    yield client
    client.delete(QUEUE_KEY)
