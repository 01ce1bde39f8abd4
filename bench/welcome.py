"""Callback receipt → send_welcome_msg, at 50 adds/s, with everything real and on loopback.

    python -m bench welcome --scale 1500      # adds (at 50/s: 30 s)

The sandbox plays customers scanning store codes at a steady 50/s and fires each add_external_contact at
a gunicorn portal; a Celery worker subprocess processes the inbox (the sync area's handler, then
acquisition_on_add). Latency per add = the sandbox's record of the successful send_welcome_msg call minus
the inbox's received_at for that event (both clocks are this machine's). Baseline, same run: the worker
queues the welcome and a beat-style poller sends whatever is queued every 5 s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.callbacks import _database_url, _serve
from bench.harness import p95, result_line, tables_truncate

RATE = float(os.environ.get("XIAOER_BENCH_WELCOME_RATE", "50"))  # adds/s; the goal is set at 50
POLL_QUEUE = "xiaoer:bench:welcome_poll"  # the baseline worker queues welcomes here (bench/welcome_worker.py)
POLL_SECONDS = 5.0
WORKER_CONCURRENCY = int(os.environ.get("XIAOER_BENCH_WELCOME_WORKERS", "4"))
STORES, STAFF = 20, 60
TABLES = ("customers_welcomedelivery", "customers_relationship", "customers_customer", "customers_contactway_members",
          "customers_contactway", "customers_channel_auto_tags", "customers_channel", "customers_welcomemessage",
          "customers_tag", "customers_taggroup", "wecom_callbackevent", "wecom_wecomcall", "wecom_syncrun")
ORG_TABLES = ("stores_access_regions", "stores_access", "stores_apitoken", "stores_staff", "stores_store",
              "stores_franchisee", "stores_region", "portal_user_groups", "portal_user", "portal_auditevent")


def _env(sandbox_url: str, **extra) -> dict:
    from django.conf import settings

    return {**os.environ, "DATABASE_URL": _database_url(settings.DATABASES["default"]), "DJANGO_DEBUG": "0",
            "DJANGO_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "portal.settings",
            "WECOM_BASE_URL": f"{sandbox_url}/cgi-bin/", "XIAOER_SANDBOX_URL": sandbox_url, **extra}


def _worker_start(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.welcome_worker", "worker", "-P", "prefork",
         "-c", str(WORKER_CONCURRENCY), "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
         "--without-heartbeat"], env=env, cwd=Path(__file__).resolve().parents[1])


def _setup(sandbox) -> list[str]:
    """A small org mirrored into the sandbox; a channel with a welcome and an auto-tag; one code per store."""
    from customers.acquisition.services import contact_way_create
    from customers.models import Channel, ContactWay, Tag, TagGroup, WelcomeMessage
    from portal.wecom.gateway import wecom_call
    from stores.demo import OrgSize, org_build
    from stores.models import Staff, Store

    tables_truncate(*TABLES, *ORG_TABLES)
    org_build(size=OrgSize(areas=1, franchisees=2, stores=STORES, staff=STAFF))
    staff = list(Staff.objects.active().exclude(position="hq"))
    sandbox.do("addressbook/load", departments=[{"id": 1000 + s.pk, "name": s.name} for s in Store.objects.all()],
               members=[{"userid": s.userid, "name": s.name, "department": [1000 + s.store_id]} for s in staff])
    group = wecom_call("externalcontact/add_corp_tag", data={"group_name": "来源", "tag": [{"name": "门店码"}]})
    tag = Tag.objects.create(group=TagGroup.objects.create(name="来源", wecom_group_id=group["tag_group"]["group_id"]),
                             name="门店码", wecom_tag_id=group["tag_group"]["tag"][0]["id"])
    welcome = WelcomeMessage.objects.create(name="门店欢迎语", text="{客户昵称}您好，我是{门店名称}的{员工姓名}",
                                            attachment="image", attachment_data={"pic_url": "https://x.example/w.png"})
    channel = Channel.objects.create(code="STORE", name="门店码", kind=Channel.Kind.POSTER, welcome=welcome)
    channel.auto_tags.add(tag)
    ways = [contact_way_create(kind=ContactWay.Kind.CHANNEL_STORE, store=store, channel=channel)
            for store in Store.objects.filter(staff__isnull=False).distinct()]
    return [w.config_id for w in ways if w.config_id]


class SendLog:
    """Polls the sandbox's recent calls (a ring of 2,000) often enough to see every send_welcome_msg."""

    def __init__(self, sandbox):
        self.sandbox, self.sent, self.failed = sandbox, {}, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.poll()

    def poll(self) -> None:
        for call in self.sandbox.get("calls", endpoint="externalcontact/send_welcome_msg", limit=2000)["calls"]:
            code = (call.get("body") or {}).get("welcome_code")
            if call.get("errcode") == 0:
                self.sent.setdefault(code, call["at"])
            elif call.get("errcode") not in (40014, 41001, 42001):
                self.failed.setdefault(code, call.get("errcode"))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.poll()


def _scan_at_rate(sandbox, config_ids: list[str], count: int, rate: float) -> list[str]:
    codes, start = [], time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        added = sandbox.do("customers/scan", config_id=config_ids[i % len(config_ids)], customer={"name": f"客{i}"})
        codes.append(added["welcome_code"])
    return codes


def _poller(stop: threading.Event) -> None:
    """The baseline's beat job: every 5 s, send every welcome queued since (one worker, one after another)."""
    from datetime import datetime

    from django.db import connection

    from customers.acquisition import attribution
    from customers.models import Relationship, WelcomeMessage
    from portal.wecom.gateway import _redis

    send = attribution.welcome_send
    while not stop.wait(POLL_SECONDS):
        pipe = _redis().pipeline()
        pipe.lrange(POLL_QUEUE, 0, -1)
        pipe.delete(POLL_QUEUE)
        items, _ = pipe.execute()
        for item in map(json.loads, items):
            relationship = Relationship.objects.select_related("customer", "staff__store", "store").filter(
                pk=item["relationship"]).first()
            if relationship is None:  # queued inside the worker's transaction, not committed yet: next round
                _redis().rpush(POLL_QUEUE, json.dumps(item))
                continue
            send(relationship=relationship, welcome=WelcomeMessage.objects.filter(pk=item["welcome"]).first(),
                 welcome_code=item["code"], event_at=datetime.fromisoformat(item["event_at"]))
    connection.close()


def _phase(sandbox, config_ids: list[str], count: int, *, env: dict, poll: bool) -> dict:
    worker = _worker_start(env)
    stop = threading.Event()
    poller = threading.Thread(target=_poller, args=(stop,), daemon=True) if poll else None
    try:
        with SendLog(sandbox) as log:
            if poller:
                poller.start()
            warm = _scan_at_rate(sandbox, config_ids, 10, 5.0)  # the worker is up and has its token
            _wait(lambda: all(c in log.sent or c in log.failed for c in warm), timeout=60)
            codes = _scan_at_rate(sandbox, config_ids, count, RATE)
            _wait(lambda: all(c in log.sent or c in log.failed for c in codes), timeout=40)
    finally:
        stop.set()
        if poller:
            poller.join(timeout=POLL_SECONDS * 3)
        worker.terminate()
        worker.wait(timeout=30)
    return _latencies(codes, log)


def _wait(check, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)


def _latencies(codes: list[str], log: SendLog) -> dict:
    from django.db.models import Max, Min

    from portal.wecom.models import CallbackEvent

    events = CallbackEvent.objects.filter(change_type="add_external_contact", payload__WelcomeCode__in=codes)
    received = {code: at.timestamp() for code, at in events.values_list("payload__WelcomeCode", "received_at")}
    span = events.aggregate(first=Min("received_at"), last=Max("received_at"), done=Max("processed_at"))
    created = {code: int(t) for code, t in CallbackEvent.objects.filter(
        change_type="add_external_contact", payload__WelcomeCode__in=codes).values_list(
        "payload__WelcomeCode", "payload__CreateTime")}
    # A welcome never sent (too late, refused) counts as infinitely late: the percentiles cover every add.
    samples = sorted(log.sent[c] - received[c] if c in log.sent and c in received else float("inf") for c in codes)
    from_create = sorted(log.sent[c] - created[c] if c in log.sent and c in created else float("inf")
                         for c in codes)
    sent = sum(c in log.sent for c in codes)
    seconds = lambda a, b: max((b - a).total_seconds(), 1e-3) if a and b else float("nan")  # noqa: E731
    return {"adds": len(codes), "received": len(received), "sent": sent,
            "delivered_per_s": len(received) / seconds(span["first"], span["last"]),
            "processed_per_s": len(received) / seconds(span["first"], span["done"]),
            "failed": sum(c in log.failed for c in codes), "p50": statistics.median(samples),
            "p95": p95(samples), "max": max(x for x in samples if x != float("inf")) if sent else float("inf"),
            "p95_from_createtime": p95(from_create)}


def bench_welcome(*, scale: int) -> str:
    from django.conf import settings

    from portal.embedded import free_port
    from wecom_sandbox.control import SandboxControl, sandbox_spawn

    sandbox_port, portal_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    settings.WECOM_BASE_URL, settings.XIAOER_SANDBOX_URL = f"{sandbox_url}/cgi-bin/", sandbox_url
    os.environ.update(WECOM_BASE_URL=settings.WECOM_BASE_URL, XIAOER_SANDBOX_URL=sandbox_url)
    sandbox_process = sandbox_spawn(port=sandbox_port, callback_url=f"http://127.0.0.1:{portal_port}/wecom/callback/",
                                    callback_concurrency=8)  # WeCom delivers in parallel under load
    sandbox = SandboxControl(sandbox_url)
    portal = None
    try:
        config_ids = _setup(sandbox)
        portal = _serve(portal_port, "portal.settings")
        inline = _phase(sandbox, config_ids, scale, env=_env(sandbox_url), poll=False)
        polled = _phase(sandbox, config_ids, scale, env=_env(sandbox_url, XIAOER_BENCH_WELCOME="poll"), poll=True)
    finally:
        if portal:
            portal.terminate()
            portal.wait(timeout=20)
        sandbox_process.terminate()
    handler = "stand-in" if _handler_missing() else "sync"
    for name, r in (("on_event", inline), ("poll_5s", polled)):
        print(f"{name}: adds={r['adds']} received={r['received']} sent={r['sent']} failed={r['failed']} "
              f"p50={r['p50'] * 1000:.0f}ms p95={r['p95'] * 1000:.0f}ms max={r['max'] * 1000:.0f}ms "
              f"p95_from_CreateTime={r['p95_from_createtime']:.2f}s callbacks_in={r['delivered_per_s']:.0f}/s "
              f"processed={r['processed_per_s']:.0f}/s")
    print(f"rate={RATE:.0f} adds/s stores={STORES} staff={STAFF} worker=prefork x{WORKER_CONCURRENCY} "
          f"add_handler={handler} goal p95<2s")
    return result_line(bench="welcome", value=inline["p95"], unit="s", baseline=polled["p95"])


def _handler_missing() -> bool:
    from portal.wecom.events import handler_for

    return handler_for("change_external_contact", "add_external_contact") is None
