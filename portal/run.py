"""``make run``: embedded PostgreSQL and Redis, the WeCom sandbox, migrations, schedules, demo data,
then the web server, a Celery worker and beat (honcho). Demo mode (``XIAOER_DEMO=1``, DEBUG on).

``make serve`` (``python -m portal.run --production``): production mode, no embedded server, no sandbox,
no demo data, no DEBUG. ``manage.py check --deploy`` first (it refuses every public default, see
portal/checks.py), then migrate, setup_schedules and collectstatic, then gunicorn, a worker and beat.

Once the web server and a worker answer, the sandbox plays the demo's first customers scanning the
store, staff and channel codes seed_demo made (once per data dir: ``.run/demo-arrivals.done``).

Ctrl-C stops the processes, then the sandbox, Redis and PostgreSQL. Running it again reuses the data.
Give DATABASE_URL / CELERY_BROKER_URL to use real servers (with XIAOER_DEMO=1: make run loads demo data,
admin / admin, into that database), WECOM_CORP_ID etc. to use the real WeCom.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from portal.embedded import (
    BASE_DIR,
    DEFAULT_REDIS_PORT,
    RUN_DIR,
    port_is_free,
    postgres_stop,
    postgres_url,
    redis_start,
    redis_stop,
)

WEB_PORT = int(os.environ.get("XIAOER_PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8900"))
DEMO_ARRIVALS = int(os.environ.get("XIAOER_DEMO_ARRIVALS", "40"))
ARRIVALS_MARKER = RUN_DIR / "demo-arrivals.done"
ARRIVALS_BATCH = 10  # customers per request, a second apart: a busy hour, not one instant
READY_TIMEOUT = 180.0


_TRUE = {"1", "true", "yes", "on"}


class RunRefused(ValueError):
    """make run / make serve will not start as configured; the message says why and what to do."""


def _flag(environ, name: str) -> bool:
    return environ.get(name, "").strip().lower() in _TRUE


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def demo_refusal(environ) -> str | None:
    """Why make run must not start here, or None: it loads demo data (admin / admin) wherever it runs."""
    if "XIAOER_DEMO" in environ and not _flag(environ, "XIAOER_DEMO"):
        return "make run is the demo (XIAOER_DEMO=1); for production use make serve (python -m portal.run --production)"
    if environ.get("DATABASE_URL") and not _flag(environ, "XIAOER_DEMO"):
        return ("make run loads demo data (a superuser admin / admin) into DATABASE_URL, which is not the embedded "
                "database: set XIAOER_DEMO=1 to confirm it is a demo database, or use make serve for production")
    return None


def _environment() -> tuple[dict[str, str], object | None, bool]:
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "1")
    env["XIAOER_DEMO"] = "1"
    env.setdefault("XIAOER_SANDBOX_URL", f"http://127.0.0.1:{SANDBOX_PORT}/sandbox/")
    env.setdefault("SANDBOX_PORT", str(SANDBOX_PORT))
    env.setdefault("SANDBOX_CALLBACK_URL", f"http://127.0.0.1:{WEB_PORT}/wecom/callback/")
    env.setdefault("SANDBOX_DATA_DIR", str(RUN_DIR / "sandbox"))
    env.setdefault("WECOM_BASE_URL", f"http://127.0.0.1:{SANDBOX_PORT}/cgi-bin/")
    env["XIAOER_PORT"] = str(WEB_PORT)
    started_pg = False
    if "DATABASE_URL" not in env:
        env["DATABASE_URL"] = postgres_url(database="xiaoer")
        started_pg = True
    redis = None
    if "CELERY_BROKER_URL" not in env:
        if port_is_free(DEFAULT_REDIS_PORT):
            redis = redis_start(port=DEFAULT_REDIS_PORT)
        env["CELERY_BROKER_URL"] = env["REDIS_URL"] = f"redis://127.0.0.1:{DEFAULT_REDIS_PORT}/0"
    return env, redis, started_pg


def _web_answers() -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{WEB_PORT}/admin/login/", timeout=2).close()
    except urllib.error.HTTPError:
        pass  # any HTTP answer will do: the server is up
    except OSError:
        return False
    return True


def _ready(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(1.0)
    return True


def _first_arrivals(env: dict[str, str]) -> None:
    """The demo's first customers, once per data dir, when callbacks can be received and processed.

    seed_demo runs before the web server exists, so the customers come afterwards: the sandbox plays
    them scanning the existing codes, and the worker must be up for the welcome messages to go out
    inside WeCom's 20 seconds. A background thread: a failure here is reported, never fatal.
    """
    from celery import Celery

    from wecom_sandbox.control import SandboxControl

    celery = Celery(broker=env["CELERY_BROKER_URL"])
    try:
        if not (_ready(_web_answers, READY_TIMEOUT)
                and _ready(lambda: bool(celery.control.ping(timeout=1.0)), READY_TIMEOUT)):
            print("demo arrivals skipped: the web server or the worker did not start in time", flush=True)
            return
        control = SandboxControl(env["XIAOER_SANDBOX_URL"])
        arrived = refused = 0
        for start in range(0, DEMO_ARRIVALS, ARRIVALS_BATCH):
            result = control.do("scenario/arrivals", count=min(ARRIVALS_BATCH, DEMO_ARRIVALS - start),
                                seed=2026 + start)
            arrived, refused = arrived + result["arrived"], refused + result["refused"]
            time.sleep(1.0)
        if arrived:  # no codes yet (seed_demo could not reach the sandbox): try again next time
            ARRIVALS_MARKER.write_text(json.dumps({"arrived": arrived, "refused": refused, "at": time.time()}))
        print(f"\n  演示 demo: {arrived} 位顾客扫描门店码 / 员工码 / 渠道码添加了导购（{refused} 次被拒）——"
              f"客户、欢迎语发送记录、加粉看板: http://127.0.0.1:{WEB_PORT}/admin/customers/acquisitiondaily/"
              f"dashboard/\n", flush=True)
    except Exception as exc:  # a demo nicety must not take make run down
        print(f"demo arrivals skipped: {exc}", flush=True)
    finally:
        celery.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def demo() -> int:
    refusal = demo_refusal(os.environ)
    if refusal:
        print(f"refused: {refusal}", file=sys.stderr, flush=True)
        return 2
    # Ctrl-C and SIGTERM both stop everything, even when started from a script (where SIGINT is ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    env, redis, started_pg = _environment()
    honcho = sandbox = None
    try:
        if "WECOM_CORP_ID" not in env:
            from wecom_sandbox.control import sandbox_spawn

            sandbox = sandbox_spawn(port=SANDBOX_PORT, callback_url=env["SANDBOX_CALLBACK_URL"],
                                    data_dir=RUN_DIR / "sandbox", env=env,
                                    events_per_second=float(env.get("SANDBOX_DAY_RATE", "0.2")),
                                    callback_concurrency=8)
        _manage(env, "migrate", "--no-input")
        _manage(env, "setup_schedules")
        _manage(env, "seed_demo")
        print(f"\n  管理后台 admin      http://127.0.0.1:{WEB_PORT}/admin/   (admin / admin)"
              f"\n  移动任务页 mobile   http://127.0.0.1:{WEB_PORT}/m/"
              f"\n  API 文档 docs       http://127.0.0.1:{WEB_PORT}/api/docs/"
              f"\n  WeCom 沙箱 sandbox  http://127.0.0.1:{SANDBOX_PORT}/sandbox/state\n", flush=True)
        honcho = subprocess.Popen([str(BASE_DIR / ".venv" / "bin" / "honcho"), "start", "-f", "Procfile"],
                                  cwd=BASE_DIR, env=env)
        if sandbox is not None and DEMO_ARRIVALS > 0 and not ARRIVALS_MARKER.exists():
            threading.Thread(target=_first_arrivals, args=(env,), name="demo-arrivals", daemon=True).start()
        return honcho.wait()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        if honcho is not None and honcho.poll() is None:
            honcho.terminate()  # honcho passes SIGTERM on to web, worker and beat
            try:
                honcho.wait(timeout=30)
            except subprocess.TimeoutExpired:
                honcho.kill()
        return 0
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(timeout=10)
        if redis is not None:
            redis_stop(redis)
        if started_pg:
            postgres_stop()
        print("stopped: processes, WeCom sandbox, Redis and PostgreSQL", flush=True)


@dataclass
class ProductionPlan:
    env: dict[str, str]
    steps: list[list[str]] = field(default_factory=list)  # one after the other; any failure stops the start
    processes: dict[str, list[str]] = field(default_factory=dict)  # then these, together, under honcho


def production_plan(environ) -> ProductionPlan:
    """What make serve runs: only what the environment gives, never an embedded server, sandbox or demo data."""
    if _flag(environ, "XIAOER_DEMO") or _flag(environ, "DJANGO_DEBUG"):
        raise RunRefused("make serve is production mode: unset XIAOER_DEMO and DJANGO_DEBUG (make run is the demo)")
    if not (environ.get("CELERY_BROKER_URL") or environ.get("REDIS_URL")):
        raise RunRefused("make serve starts no embedded Redis: set REDIS_URL (and CELERY_BROKER_URL if it differs)")
    env = {**environ, "XIAOER_DEMO": "0", "DJANGO_DEBUG": "0"}
    python = sys.executable
    manage = [python, "manage.py"]
    return ProductionPlan(
        env=env,
        steps=[[*manage, "check", "--deploy"], [*manage, "migrate", "--no-input"], [*manage, "setup_schedules"],
               [*manage, "collectstatic", "--no-input", "--verbosity", "0"]],
        processes={
            "web": [python, "-m", "gunicorn", "portal.wsgi", "--bind", env.get("XIAOER_BIND", "127.0.0.1:8000"),
                    "--worker-class", "gthread", "--workers", env.get("XIAOER_WEB_WORKERS", "3"),
                    "--threads", env.get("XIAOER_WEB_THREADS", "4"),
                    "--forwarded-allow-ips", env.get("XIAOER_FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
                    "--access-logfile", "-", "--graceful-timeout", "30"],
            "worker": [python, "-m", "celery", "-A", "portal", "worker", "--loglevel=INFO",
                       f"--concurrency={env.get('XIAOER_WORKER_CONCURRENCY', '2')}", "--without-gossip",
                       "--without-mingle"],
            "beat": [python, "-m", "celery", "-A", "portal", "beat", "--loglevel=INFO"],
        },
    )


def serve(environ=None) -> int:
    """make serve: refuse on any failed step (the checks first), then run web, worker and beat until one stops."""
    try:
        plan = production_plan(os.environ if environ is None else environ)
    except RunRefused as exc:
        print(f"refused: {exc}", file=sys.stderr, flush=True)
        return 2
    for step in plan.steps:
        if subprocess.run(step, cwd=BASE_DIR, env=plan.env).returncode != 0:
            print(f"refused: {shlex.join(step[1:])} failed; nothing was started", file=sys.stderr, flush=True)
            return 1
    from honcho.manager import Manager

    manager = Manager()
    for name, command in plan.processes.items():
        manager.add_process(name, shlex.join(command), env=plan.env, cwd=str(BASE_DIR))
    manager.loop()  # SIGTERM / Ctrl-C stop all three; so does any one of them stopping
    return manager.returncode or 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m portal.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--production", action="store_true",
                        help="production mode (make serve): no demo data, no DEBUG, no embedded servers")
    args = parser.parse_args(argv)
    return serve() if args.production else demo()


if __name__ == "__main__":
    sys.exit(main())
