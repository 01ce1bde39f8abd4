"""Callback ingestion: sign + encrypt + POST to the real callback view over HTTP (gunicorn).

    python -m bench callbacks --scale 5000

Accepted events/s and p99 latency of the inbox design (verify, store once, answer, enqueue)
against the baseline of handling each event synchronously inside the request. The events are
``change_contact/update_user`` for members the sandbox knows, so handling one means what it means
in production: a ``user/get`` call to WeCom (the sandbox, over HTTP) and an upsert.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from bench.harness import p95, result_line, tables_truncate
from bench.loadclient import post_all

CONCURRENCY = 32


def _events(count: int, staff_userids: list[str]) -> list[tuple[str, bytes]]:
    from tests.wecom.helpers import event_xml, signed_post

    requests = []
    for i in range(count):
        xml = event_xml("change_contact", "update_user", UserID=staff_userids[i % len(staff_userids)],
                        CreateTime=1_700_000_000 + i)
        query, body = signed_post(xml)
        requests.append((f"/wecom/callback/?{query}", body))
    return requests


def _serve(port: int, settings_module: str) -> subprocess.Popen:
    wsgi = "bench.baseline_wsgi" if settings_module.startswith("bench.") else "portal.wsgi"
    from django.conf import settings

    env = {**os.environ, "DJANGO_SSL_REDIRECT": "0", "DJANGO_DEBUG": "0", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": _database_url(settings.DATABASES["default"]), "DJANGO_SETTINGS_MODULE": settings_module}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", wsgi, "-w", os.environ.get("BENCH_WEB_WORKERS", "3"), "-k", "gthread",
         "--threads", os.environ.get("BENCH_WEB_THREADS", "4"),
         "-b", f"127.0.0.1:{port}", "--log-level", "warning", "--keep-alive", "30"], env=env)
    for _ in range(300):  # up to 30 s on a busy machine
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def _database_url(db: dict) -> str:
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@/{db['NAME']}?host={db['HOST']}"


def _run(requests, settings_module: str):
    from portal.embedded import free_port

    port = free_port()
    server = _serve(port, settings_module)
    try:
        result = post_all(host="127.0.0.1", port=port, requests=requests, concurrency=CONCURRENCY)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return result


def bench_callbacks(*, scale: int) -> str:
    from portal.wecom.models import CallbackEvent
    from stores.models import Staff

    if not Staff.objects.exists():
        from stores.demo import OrgSize, org_build

        org_build(size=OrgSize(stores=100, staff=500))
    userids = list(Staff.objects.values_list("userid", flat=True)[:1000])
    from django.conf import settings

    from stores.demo import sandbox_mirror_org

    sandbox_mirror_org(sandbox_url=settings.XIAOER_SANDBOX_URL)
    tables_truncate("wecom_callbackevent")
    inbox = _run(_events(scale, userids), "portal.settings")
    stored = CallbackEvent.objects.count()
    tables_truncate("wecom_callbackevent")
    inline = _run(_events(scale, userids), "bench.baseline_settings")
    p99 = lambda r: sorted(r.latencies_ms)[int(len(r.latencies_ms) * 0.99) - 1]  # noqa: E731
    print(f"events={scale} concurrency={CONCURRENCY} inbox={inbox.rate:.0f}/s p95={p95(inbox.latencies_ms):.1f}ms "
          f"p99={p99(inbox):.1f}ms statuses={inbox.statuses} stored={stored} | inline={inline.rate:.0f}/s "
          f"p99={p99(inline):.1f}ms statuses={inline.statuses}")
    return result_line(bench="callbacks", value=inbox.rate, unit="events/s", baseline=inline.rate,
                       higher_is_better=True)
