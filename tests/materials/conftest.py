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


@pytest.fixture
def east_poster(org, hq_operator):
    """A poster template published to region EAST (stores A001 and A002), with a guide in A002 too."""
    from tests.factories import StaffFactory
    from tests.materials.helpers import poster_template_published

    StaffFactory(userid="a2-guide", name="陈导购", store=org.store_a2)
    return poster_template_published(by=hq_operator, title="华东开业海报", regions=[org.east])
