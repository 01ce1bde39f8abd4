"""Fixtures shared by the customers tests (the acquisition tests override ``wecom_org`` with their own org)."""

from __future__ import annotations

import pytest

from stores.models import Staff


@pytest.fixture
def wecom_org(org, sandbox):
    """store A = department 10 (a-manager, a-guide), store B = department 20 (b-guide), known to WeCom."""
    sandbox.do("addressbook/load", departments=[{"id": 10, "name": org.store_a.name},
                                                {"id": 20, "name": org.store_b.name}],
               members=[{"userid": s.userid, "name": s.name, "department": [10 if s.store == org.store_a else 20]}
                        for s in Staff.objects.all()])
    return org
