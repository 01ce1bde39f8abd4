"""The phone's task pages under 50 concurrent users: home, a task, 收到 (confirm), against a real gunicorn.

    python -m bench mobile_tasks --scale 4000     # 4,000 stores / 13,000 staff (--small: 200 stores)

The organisation is stores.demo.org_build's; five tasks (a checklist of three, executed by each staff member) are
dispatched to every store, so a store manager's home lists five open tasks and five store tasks with progress,
and a task page carries the team of its store, the checklist and the region's ranking. 50 logins (25 store
managers, 25 guides, each of another store) are signed in; each user, on its own keep-alive connection, loops:
GET /m/, think, GET its task page, think, POST 收到 (CSRF token in the header, as htmx sends it), think — a phone
user's pace (think time 0.5–1.5 s). The first confirm changes the state, the others are the idempotent repeat
(a double tap). Measured: p95 of every request's latency, and errors (any status but 200 for pages, 302 for the
POST); afterwards exactly one confirm event per assignment is checked.

Baseline, same run, same pages and users (confirming another task's assignments): Django's ``runserver``
single-threaded (``--nothreading``), the way a page is served when nobody sets up an application server.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta

from bench.harness import p95, result_line, tables_truncate, timed
from bench.org import ORG_TABLES, _size
from bench.task_dispatch import TASK_TABLES

USERS = 50
TASKS = 5
ROUNDS = int(os.environ.get("BENCH_MOBILE_ROUNDS", "8"))
THINK_S = float(os.environ.get("BENCH_MOBILE_THINK_S", "1.0"))  # mean; each pause is uniform in [0.5, 1.5]×


@dataclass
class User:
    cookie: str
    csrf: str
    assignment_ids: list[int]  # the assignment each side confirms (ours: task 1, baseline: task 2)


@dataclass
class Run:
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {"home": [], "task": [], "confirm": []})
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def all_ms(self) -> list[float]:
        return [ms for values in self.latencies_ms.values() for ms in values]


def _build(scale: int):
    from django.db import connection
    from django.utils import timezone

    from campaigns.tasks.services import ChecklistSpec, TargetSpec, campaign_create, task_create, task_dispatch
    from portal.models import User as PortalUser
    from stores.access.services import access_grant, role_groups_sync
    from stores.demo import org_build
    from stores.models import Region, Role, Staff, Store

    role_groups_sync()
    tables_truncate(*TASK_TABLES, *ORG_TABLES, "django_session")
    org_build(size=_size(scale))
    hq = PortalUser.objects.create_superuser("bench_hq", "", "x")
    now = timezone.now()
    areas = list(Region.objects.filter(parent__isnull=True))
    campaign = campaign_create(by=hq, name="压测活动 手机端")
    tasks = []
    with timed() as dispatching:
        for n in range(TASKS):
            task = task_create(campaign=campaign, by=hq, kind="offline", title=f"门店陈列 {n + 1}",
                               instructions="{门店名称}：请在{截止时间}前完成陈列，{员工姓名}加油", executor="staff",
                               start_at=now, deadline=now + timedelta(days=2 + n), target=TargetSpec(regions=areas),
                               checklist=[ChecklistSpec(text="堆头摆放"), ChecklistSpec(text="价签更新"),
                                          ChecklistSpec(text="门头照片", photo="optional", required=False)])
            task_dispatch(task=task, by=hq)
            tasks.append(task)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    stores = list(Store.objects.open().order_by("pk").values_list("pk", flat=True))
    picked = stores[:: max(1, len(stores) // USERS)][:USERS]
    logins = []
    from stores.models import Access

    managers = dict(Access.objects.filter(role=Role.STORE_MANAGER, store_id__in=picked)
                    .values_list("store_id", "user_id"))
    for i, store_id in enumerate(picked):
        if i % 2 == 0 and store_id in managers:
            user = PortalUser.objects.get(pk=managers[store_id])
        else:
            guide = Staff.objects.active().filter(store_id=store_id).exclude(position="store_manager").first() \
                or Staff.objects.active().filter(store_id=store_id).first()
            assert guide is not None
            user = PortalUser.objects.filter(access__staff=guide).first()
            if user is None:
                user = PortalUser.objects.create_user(f"bench_guide_{store_id}", password="x")
                access_grant(user=user, role=Role.STORE_STAFF, store=Store.objects.get(pk=store_id), staff=guide)
        logins.append(user)
    return tasks, logins, dispatching.seconds


def _users(tasks, logins) -> list[User]:
    from django.conf import settings
    from django.test import Client
    from django.utils.crypto import get_random_string

    from campaigns.tasks.models import Assignment
    from stores.access.scoping import user_scope

    users = []
    for login in logins:
        client = Client()
        client.force_login(login)
        scope = user_scope(login)
        ids = [Assignment.objects.get(task=task, staff_id=scope.staff_id).pk for task in tasks[:2]]
        csrf = get_random_string(32)  # an unmasked secret: cookie and header alike, as Django accepts
        cookie = (f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}; "
                  f"{settings.CSRF_COOKIE_NAME}={csrf}")
        users.append(User(cookie=cookie, csrf=csrf, assignment_ids=ids))
    return users


# -- the load: 50 phones, each on its own keep-alive connection -----------------------------------------------
async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the server closes the connection after it)."""
    status = int((await reader.readline()).split()[1])
    length, chunked, close = 0, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name == "connection" and "close" in value.lower():
            close = True
    if not chunked:
        return status, (await reader.readexactly(length) if length else b""), close
    body = b""
    while True:
        size = int((await reader.readline()).strip(), 16)
        if size == 0:
            await reader.readline()
            return status, body, close
        body += await reader.readexactly(size)
        await reader.readline()


async def _phone(port: int, user: User, side: int, run: Run, rng: random.Random, *, rounds: int = ROUNDS,
                 think_s: float = THINK_S) -> None:
    reader, opened = await asyncio.open_connection("127.0.0.1", port)
    writer: asyncio.StreamWriter | None = opened
    pk = user.assignment_ids[side]
    steps = [("home", "GET", "/m/", 200), ("task", "GET", f"/m/tasks/{pk}/", 200),
             ("confirm", "POST", f"/m/tasks/{pk}/confirm/", 302)]
    try:
        await asyncio.sleep(rng.uniform(0, think_s))  # the phones do not start in step
        for _round in range(rounds):
            for name, method, path, expected in steps:
                extra = f"X-CSRFToken: {user.csrf}\r\nContent-Length: 0\r\n" if method == "POST" else ""
                head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {user.cookie}\r\n"
                        f"Accept-Language: zh-hans\r\n{extra}Connection: keep-alive\r\n\r\n").encode()
                started = time.perf_counter()
                if writer is None:  # the server closed the last one (runserver does after every response)
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head)
                await writer.drain()
                status, body, close = await _response(reader)
                run.latencies_ms[name].append((time.perf_counter() - started) * 1000)
                if close:
                    writer.close()
                    writer = None
                if status != expected or (name == "home" and "门店陈列".encode() not in body):
                    run.errors.append(f"{method} {path}: {status}")
                await asyncio.sleep(rng.uniform(0.5 * think_s, 1.5 * think_s))
    finally:
        if writer is not None:
            writer.close()


def _load(port: int, users: list[User], side: int) -> Run:
    """A warm-up pass first (every page once per user, not counted: each worker loads its code, templates and
    catalogues), then the measured rounds."""
    run = Run()
    rng = random.Random(side)

    async def main() -> None:
        warm = Run()
        await asyncio.gather(*(_phone(port, user, side, warm, random.Random(rng.random()), rounds=1, think_s=0.2)
                               for user in users))
        run.errors.extend(warm.errors)
        started = time.perf_counter()
        await asyncio.gather(*(_phone(port, user, side, run, random.Random(rng.random())) for user in users))
        run.seconds = time.perf_counter() - started

    asyncio.run(main())
    return run


# -- the servers ------------------------------------------------------------------------------------------
def _env() -> dict:
    from django.conf import settings

    from bench.callbacks import _database_url

    return {**os.environ, "DJANGO_SSL_REDIRECT": "0", "DJANGO_DEBUG": "0", "LOG_LEVEL": "WARNING",
            "DJANGO_SECURE_COOKIES": "0", "DATABASE_URL": _database_url(settings.DATABASES["default"]),
            "DJANGO_SETTINGS_MODULE": "portal.settings"}


def _wait(server: subprocess.Popen, port: int, url: str = "/healthz") -> subprocess.Popen:
    for _ in range(600):  # up to 60 s on a busy machine
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=1)
            return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("the server exited") from None
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def _gunicorn(port: int) -> subprocess.Popen:
    workers, threads = os.environ.get("BENCH_WEB_WORKERS", "3"), os.environ.get("BENCH_WEB_THREADS", "4")
    return _wait(subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "-w", workers, "-k", "gthread", "--threads", threads,
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "30"], env=_env()), port)


def _runserver(port: int) -> subprocess.Popen:
    return _wait(subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--nothreading", "--noreload", "--skip-checks",
         f"127.0.0.1:{port}"], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), port)


def _side(start, users: list[User], side: int) -> Run:
    from portal.embedded import free_port

    port = free_port()
    server = start(port)
    try:
        return _load(port, users, side)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _summary(name: str, run: Run) -> str:
    parts = " ".join(f"{k}_p95={p95(v):.1f}ms" for k, v in run.latencies_ms.items())
    return (f"  {name:9} requests={len(run.all_ms)} in {run.seconds:.1f}s ({len(run.all_ms) / run.seconds:.0f}/s) "
            f"p95={p95(run.all_ms):.1f}ms p50={sorted(run.all_ms)[len(run.all_ms) // 2]:.1f}ms {parts} "
            f"errors={len(run.errors)}")


def bench_mobile_tasks(*, scale: int) -> str:
    from campaigns.tasks.models import Assignment, AssignmentEvent

    tasks, logins, dispatch_s = _build(scale)
    users = _users(tasks, logins)
    assignments = Assignment.objects.filter(task__in=tasks).count()
    print(f"stores={scale} tasks={TASKS} assignments={assignments} (dispatched in {dispatch_s:.1f}s) users={USERS} "
          f"rounds={ROUNDS} think={THINK_S}s", flush=True)
    ours = _side(_gunicorn, users, 0)
    print(_summary("gunicorn", ours), flush=True)
    baseline = _side(_runserver, users, 1)
    print(_summary("runserver", baseline), flush=True)
    for side, run in ((0, ours), (1, baseline)):
        ids = [u.assignment_ids[side] for u in users]
        confirmed = AssignmentEvent.objects.filter(assignment_id__in=ids, to_status="confirmed").count()
        if confirmed != len(ids):
            run.errors.append(f"{confirmed} confirm events for {len(ids)} assignments")
    for run in (ours, baseline):
        for error in run.errors[:5]:
            print(f"  error: {error}", flush=True)
    assert not ours.errors, f"{len(ours.errors)} errors under load"
    value, base = p95(ours.all_ms), p95(baseline.all_ms)
    print(f"p95 under 100 ms: {'yes' if value < 100 else 'NO'}; one confirm event per assignment: yes", flush=True)
    return result_line(bench="mobile_tasks", value=value, unit="ms", baseline=base)
