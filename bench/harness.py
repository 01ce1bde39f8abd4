"""The benchmark harness: a separate database, timing helpers and the RESULT line.

Every benchmark measures the set-based way *and* the naive baseline in the same run and ends
with exactly one line:  RESULT bench=NAME value=… unit=… baseline=… ratio=…
"""

from __future__ import annotations

import atexit
import os
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass


def django_setup(database: str = "xiaoer_bench") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("XIAOER_DB_NAME", database)
    os.environ.setdefault("XIAOER_DEMO", "1")  # demo mode: dev defaults and the WeCom sandbox, DEBUG off
    os.environ.setdefault("DJANGO_SSL_REDIRECT", "0")
    os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
    if "CELERY_BROKER_URL" not in os.environ:
        from portal.embedded import free_port, redis_start, redis_stop

        port = free_port()
        server = redis_start(port=port, db_file=__import__("pathlib").Path(f"/tmp/xiaoer-bench-redis-{port}.db"))
        os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        atexit.register(redis_stop, server)
    if "WECOM_CORP_ID" not in os.environ and "XIAOER_SANDBOX_URL" not in os.environ:
        from portal.embedded import free_port
        from wecom_sandbox.control import sandbox_spawn

        port = free_port()
        sandbox = sandbox_spawn(port=port)
        os.environ["WECOM_BASE_URL"] = f"http://127.0.0.1:{port}/cgi-bin/"
        os.environ["XIAOER_SANDBOX_URL"] = f"http://127.0.0.1:{port}"
        atexit.register(sandbox.terminate)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def tables_truncate(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@dataclass
class Timer:
    seconds: float = 0.0


@contextmanager
def timed():
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


def result_line(*, bench: str, value: float, unit: str, baseline: float, higher_is_better: bool = False) -> str:
    """ratio > 1 means the measured way beats the baseline (time: baseline/value; rate: value/baseline)."""
    if higher_is_better:
        ratio = value / baseline if baseline else float("inf")
    else:
        ratio = baseline / value if value else float("inf")
    return f"RESULT bench={bench} value={value:.4g} unit={unit} baseline={baseline:.4g} ratio={ratio:.1f}"
