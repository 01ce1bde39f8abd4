"""``make run``: embedded PostgreSQL and Redis, the WeCom sandbox, migrations, schedules, demo data,
then the web server, a Celery worker and beat (honcho).

Ctrl-C stops the processes, then the sandbox, Redis and PostgreSQL. Running it again reuses the data.
Give DATABASE_URL / CELERY_BROKER_URL to use real servers, WECOM_CORP_ID etc. to use the real WeCom.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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
