"""``make run``: embedded PostgreSQL and Redis, the WeCom sandbox, migrations, schedules, demo data,
then the web server, a Celery worker and beat (honcho).

Once the web server and a worker answer, the sandbox plays the demo's first customers scanning the
store, staff and channel codes seed_demo made (once per data dir: ``.run/demo-arrivals.done``).

Ctrl-C stops the processes, then the sandbox, Redis and PostgreSQL. Running it again reuses the data.
Give DATABASE_URL / CELERY_BROKER_URL to use real servers, WECOM_CORP_ID etc. to use the real WeCom.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

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


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def _environment() -> tuple[dict[str, str], object | None, bool]:
    env = dict(os.environ)
    env.setdefault("DJANGO_DEBUG", "1")
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

    from portal.wecom.sandbox.control import SandboxControl

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


def main() -> int:
    # Ctrl-C and SIGTERM both stop everything, even when started from a script (where SIGINT is ignored).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    env, redis, started_pg = _environment()
    honcho = sandbox = None
    try:
        if "WECOM_CORP_ID" not in env:
            from portal.wecom.sandbox.control import sandbox_spawn

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


if __name__ == "__main__":
    sys.exit(main())
