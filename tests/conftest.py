"""Shared fixtures: a small organisation and the personas who use Xiaoer.

    EAST (大区) ── EAST-SH: store_a  (franchise of franchisee_one)
                └─ EAST-HZ: store_a2 (franchise of franchisee_one)
    SOUTH (大区) ─ SOUTH-GZ: store_b (franchise of franchisee_two), store_c (direct)
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from stores.access.services import access_grant, role_groups_sync
from stores.models import Region, Role, Staff, Store
from tests.factories import FranchiseeFactory, RegionFactory, StaffFactory, StoreFactory, UserFactory

PASSWORD = "pw-for-tests-2026"


@dataclass
class Org:
    east: Region
    east_sh: Region
    east_hz: Region
    south: Region
    south_gz: Region
    franchisee_one: object
    franchisee_two: object
    store_a: Store
    store_a2: Store
    store_b: Store
    store_c: Store
    manager_a: Staff
    guide_a: Staff
    guide_b: Staff


@pytest.fixture
def org(db) -> Org:
    role_groups_sync()
    east = RegionFactory(code="EAST", name="华东大区")
    east_sh = RegionFactory(code="EAST-SH", name="上海", level=Region.Level.CITY, parent=east)
    east_hz = RegionFactory(code="EAST-HZ", name="杭州", level=Region.Level.CITY, parent=east)
    south = RegionFactory(code="SOUTH", name="华南大区")
    south_gz = RegionFactory(code="SOUTH-GZ", name="广州", level=Region.Level.CITY, parent=south)
    one = FranchiseeFactory(code="F-ONE", name="一号加盟公司")
    two = FranchiseeFactory(code="F-TWO", name="二号加盟公司")
    store_a = StoreFactory(code="A001", name="上海徐汇店", region=east_sh, kind=Store.Kind.FRANCHISE, franchisee=one)
    store_a2 = StoreFactory(code="A002", name="杭州西湖店", region=east_hz, kind=Store.Kind.FRANCHISE, franchisee=one)
    store_b = StoreFactory(code="B001", name="广州天河店", region=south_gz, kind=Store.Kind.FRANCHISE, franchisee=two)
    store_c = StoreFactory(code="C001", name="广州越秀店", region=south_gz)
    return Org(
        east=east, east_sh=east_sh, east_hz=east_hz, south=south, south_gz=south_gz,
        franchisee_one=one, franchisee_two=two, store_a=store_a, store_a2=store_a2, store_b=store_b,
        store_c=store_c,
        manager_a=StaffFactory(userid="a-manager", name="张店长", store=store_a,
                               position=Staff.Position.STORE_MANAGER),
        guide_a=StaffFactory(userid="a-guide", name="李导购", store=store_a),
        guide_b=StaffFactory(userid="b-guide", name="王导购", store=store_b),
    )


def _persona(username: str, role: str, **scope):
    user = UserFactory(username=username)
    access_grant(user=user, role=role, **scope)
    user.refresh_from_db()
    return user


@pytest.fixture
def hq_operator(org):
    return _persona("hq_operator", Role.HQ_OPERATOR)


@pytest.fixture
def hq_admin(org):
    return _persona("hq_admin", Role.HQ_ADMIN)


@pytest.fixture
def hq_finance(org):
    return _persona("hq_finance", Role.HQ_FINANCE)


@pytest.fixture
def region_manager_east(org):
    return _persona("region_east", Role.REGION_MANAGER, regions=[org.east])


@pytest.fixture
def franchisee_owner(org):
    return _persona("franchisee_one", Role.FRANCHISEE_OWNER, franchisee=org.franchisee_one)


@pytest.fixture
def store_manager_of_a(org):
    return _persona("manager_a", Role.STORE_MANAGER, store=org.store_a, staff=org.manager_a)


@pytest.fixture
def staff_of_a(org):
    return _persona("guide_a", Role.STORE_STAFF, store=org.store_a, staff=org.guide_a)


@pytest.fixture
def departed_staff_of_a(org):
    """A store-staff login of store A whose staff member has left, departed through the real service."""
    from stores.org.services import staff_depart

    member = StaffFactory(userid="a-departed", name="周离职", store=org.store_a)
    user = _persona("departed_a", Role.STORE_STAFF, store=org.store_a, staff=member)
    staff_depart(staff=Staff.objects.filter(pk=member.pk))
    user.refresh_from_db()
    return user


PERSONAS = ["hq_operator", "region_manager_east", "franchisee_owner", "store_manager_of_a", "staff_of_a"]
NON_HQ_PERSONAS = PERSONAS[1:]
ADMIN_PERSONAS = PERSONAS[:-1]  # store staff work on the mobile page only


@pytest.fixture(scope="session")
def celery_worker_session(django_db_setup, django_db_blocker):
    """A real Celery worker (thread, solo pool) consuming from the embedded Redis broker."""
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    app.conf.task_always_eager = False
    with django_db_blocker.unblock(), start_worker(app, pool="solo", perform_ping_check=False,
                                                   shutdown_timeout=10) as worker:
        yield worker


def _worker_idle(*, timeout: float = 15.0) -> None:
    """Wait until the session worker has nothing queued or running.

    A task still running when a transactional test's tables are flushed deadlocks with the flush's TRUNCATE
    (it holds a row lock on one table and waits for another): the flush fails, its rows stay, and the next
    test sees them. So a test that used the worker ends only when the worker is done with its tasks.
    """
    import time

    import redis
    from celery.worker import state
    from django.conf import settings

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and quiet < 3:  # idle three polls in a row: nothing in between
        # A retry waiting for its countdown (an eta) is not waited for: it may be minutes away.
        waiting = any(request.eta is None for request in list(state.reserved_requests))
        idle = not state.active_requests and not waiting and not broker.llen("celery")
        quiet = quiet + 1 if idle else 0
        time.sleep(0.05)


@pytest.fixture
def celery_worker(celery_worker_session, transactional_db):
    yield celery_worker_session
    _worker_idle()


@pytest.fixture
def sandbox(settings):
    """The WeCom sandbox (a real HTTP server in its own process), reset to an empty corp."""
    from wecom_sandbox.control import SandboxControl

    if not settings.WECOM_SANDBOX:
        pytest.skip("needs the WeCom sandbox to play people (a real corp is configured)")
    control = SandboxControl(settings.XIAOER_SANDBOX_URL)
    control.reset()  # an empty corp, default limits, no faults, callbacks logged but not delivered
    return control


@pytest.fixture
def wecom_live(sandbox, live_server, celery_worker):
    """End to end: the sandbox fires encrypted callbacks at a live portal whose tasks run on a real worker."""
    sandbox.do("config", callback_url=f"{live_server.url}/wecom/callback/")
    yield sandbox
    # Nothing more for the live portal once the test ends: no new deliveries, and the one under way finishes
    # (then the worker's teardown waits for the tasks it queued).
    sandbox.do("config", callback_url="")
    sandbox.drain(timeout=10)


def eventually(check, *, timeout: float = 15.0, interval: float = 0.1):
    """Poll ``check`` until it returns something truthy (work happens on other processes)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check}")
        time.sleep(interval)
