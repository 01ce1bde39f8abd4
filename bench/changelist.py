"""The admin customer changelist at 10 M customers: the whole HTTP response, ours vs the stock admin.

    python -m bench changelist --scale 10000000        # reuses the generated data when it matches (bench/scale.py)
    BENCH_REUSE=0 python -m bench changelist --scale … # regenerate first

Mind the scale: data of another size is replaced (``--small`` on a 10 M database reloads 200,000).

A real gunicorn serves portal.wsgi (ours: customers/contacts/admin.py — estimated/capped counts,
show_full_result_count=False, region on the customer row, prefix/trigram/exact searches) and another
serves bench.baseline_wsgi (the stock ModelAdmin of bench/baseline_admin.py), both on 127.0.0.1 and
the same database. One keep-alive client, logged in as an HQ superuser (session cookie), asks for
each kind of page in turn — unfiltered page 1, a later page, a city, an area with its cities, the
common name 张伟 (no trigram: prefix), a rare 3-character name, an exact external_userid, a store —
REPEAT times (the baseline fewer when slow: BASELINE_BUDGET_S per kind) and reports p50/p95 per kind
and overall (every kind weighing the same); the RESULT line compares the overall p95s. Then, in
process, each kind once with its SQL timed (queries, SQL ms, Django's own ms), and EXPLAIN ANALYZE
of the slowest statement of any kind over the goal.
"""

from __future__ import annotations

import http.client
import os
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench.harness import p95, result_line, timed
from bench.scale import external_userid, reuse_wanted, scale_ensure

REPEAT = 30
GOAL_MS = 200
BASELINE_BUDGET_S = 20.0  # per kind: at 10 M a stock request can take seconds
BASELINE_MIN_REPEAT = 3
PATH = "/admin/customers/customer/"
COMMON_NAME = "张伟"


@dataclass
class Kind:
    name: str
    ours: dict
    baseline: dict


@dataclass
class Samples:
    ms: list[float] = field(default_factory=list)
    rows: int = 0
    size: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p95(self) -> float:
        return p95(self.ms)


def _rare_name() -> tuple[str, int]:
    """A 3-character Chinese name that few customers share (found through the trigram index)."""
    from customers.models import Customer

    names = [n for n in Customer.objects.filter(pk__lte=3000).values_list("name", flat=True)
             if len(n) == 3 and all("\u4e00" <= c <= "\u9fff" for c in n)][:40]
    counted = sorted((Customer.objects.filter(name__contains=n).count(), n) for n in set(names))
    count, name = counted[0]
    return name, count


def _kinds(scale: int) -> list[Kind]:
    from customers.models import Customer
    from stores.models import Region

    city = Region.objects.get(code="EAST-SH").pk
    area = Region.objects.get(code="EAST").pk
    rare, count = _rare_name()
    print(f"rare name {rare!r}: {count} customers; {COMMON_NAME!r}…: searched by prefix", flush=True)
    store = Customer.objects.filter(pk=scale // 3).values_list("store_id", flat=True).get()
    return [
        Kind("page1", {}, {}),
        Kind("later_page", {"p": 200}, {"p": 200}),
        Kind("region_city", {"region__id__exact": city}, {"relationships__store__region__id__exact": city}),
        Kind("region_area", {"region__id__exact": area}, {"relationships__store__region__parent__id__exact": area}),
        Kind("search_common", {"q": COMMON_NAME}, {"q": COMMON_NAME}),
        Kind("search_rare", {"q": rare}, {"q": rare}),
        Kind("exact_id", {"q": external_userid(scale // 2)}, {"q": external_userid(scale // 2)}),
        Kind("store", {"store__id__exact": store}, {"store__id__exact": store}),
    ]


def _url(query: dict) -> str:
    return PATH + (f"?{urlencode(query)}" if query else "")


def _session_cookie() -> str:
    from django.conf import settings
    from django.test import Client

    from portal.models import User

    user = User.objects.filter(username="bench_hq").first() or User.objects.create_superuser("bench_hq", "", "x")
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class _Browser:
    """One keep-alive connection, like a browser tab: the time is the whole response, body read."""

    def __init__(self, port: int, cookie: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Cookie": cookie, "Accept-Language": "zh-hans"}

    def get(self, url: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        self.conn.request("GET", url, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            raise RuntimeError(f"GET {url} answered {response.status}: {body[:300]!r}")
        return elapsed, body

    def close(self) -> None:
        self.conn.close()


def _measure(port: int, cookie: str, kinds: list[Kind], side: str, *, repeat: int, budget_s: float | None):
    results: dict[str, Samples] = {}
    browser = _Browser(port, cookie)
    try:
        for kind in kinds:
            url = _url(getattr(kind, side))
            first_ms, body = browser.get(url)  # warm-up (and how slow this kind is)
            rows = body.count(b'name="_selected_action"')
            if rows == 0:
                raise RuntimeError(f"{side} {kind.name}: no rows on {url}")
            count = repeat if budget_s is None else \
                max(BASELINE_MIN_REPEAT, min(repeat, int(budget_s * 1000 / first_ms)))
            samples = Samples(rows=rows, size=len(body))
            for _ in range(count):
                samples.ms.append(browser.get(url)[0])
            results[kind.name] = samples
            print(f"  {side:8} {kind.name:13} n={count:2} p50={samples.p50:7.1f}ms p95={samples.p95:7.1f}ms "
                  f"rows={rows} html={len(body) // 1024}KB", flush=True)
    finally:
        browser.close()
    return results


def _weighted_p95(results: dict[str, Samples]) -> float:
    """p95 over every sample, each kind weighing the same whatever its number of samples."""
    weighted = sorted((ms, 1 / len(s.ms)) for s in results.values() for ms in s.ms)
    total, running = sum(w for _ms, w in weighted), 0.0
    for ms, weight in weighted:
        running += weight
        if running >= 0.95 * total:
            return ms
    return weighted[-1][0]


def _serve_both(cookie: str, kinds: list[Kind], repeat: int):
    from bench.callbacks import _serve
    from portal.embedded import free_port

    os.environ.setdefault("BENCH_WEB_WORKERS", "2")  # one client at a time: latency, not throughput
    os.environ.setdefault("BENCH_WEB_THREADS", "1")
    measured = {}
    for side, settings_module, budget in (("ours", "portal.settings", None),
                                          ("baseline", "bench.baseline_settings", BASELINE_BUDGET_S)):
        port = free_port()
        server = _serve(port, settings_module)
        try:
            measured[side] = _measure(port, cookie, kinds, side, repeat=repeat, budget_s=budget)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return measured["ours"], measured["baseline"]


# -- where the time goes (in process) --------------------------------------------------------------------
class _QueryTimer:
    """A connection.execute_wrapper that keeps (ms, sql, params) of every statement."""

    def __init__(self):
        self.statements: list[tuple[float, str, tuple]] = []

    def __call__(self, execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.statements.append(((time.perf_counter() - start) * 1000, sql, params))


def _profile(kinds: list[Kind], side: str) -> dict[str, dict]:
    """Each kind once through Django's test client with every SQL statement timed."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from portal.models import User

    client = Client()
    client.force_login(User.objects.get(username="bench_hq"))
    urlconf = "portal.urls" if side == "ours" else "bench.baseline_urls"
    report = {}
    with override_settings(ROOT_URLCONF=urlconf):
        for kind in kinds:
            url = _url(getattr(kind, side))
            client.get(url)  # warm
            queries = _QueryTimer()
            with connection.execute_wrapper(queries), timed() as t:
                response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            report[kind.name] = {"total_ms": t.seconds * 1000, "queries": len(queries.statements),
                                 "sql_ms": sum(s[0] for s in queries.statements),
                                 "slowest": max(queries.statements, key=lambda s: s[0])}
    return report


def _explain(sql: str, params) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def bench_changelist(*, scale: int, repeat: int = REPEAT) -> str:
    with timed() as prepare:
        data = scale_ensure(customers=scale, reuse=reuse_wanted(default=True))
    print(f"customers={data.customers} relationships={data.relationships} members={data.members} "
          f"{'reused' if data.reused else 'loaded'} in {prepare.seconds:.1f}s"
          + ("" if data.reused else f" ({data.timings_text()})"), flush=True)
    kinds = _kinds(scale)
    cookie = _session_cookie()
    ours, baseline = _serve_both(cookie, kinds, repeat)

    profile = _profile(kinds, "ours")
    print("ours in process (one request each): " + " ".join(
        f"{k}={v['total_ms']:.0f}ms/{v['queries']}q/sql={v['sql_ms']:.0f}ms" for k, v in profile.items()))
    base_profile = _profile([k for k in kinds if baseline[k.name].p50 < 5000], "baseline")
    print("baseline in process: " + " ".join(
        f"{k}={v['total_ms']:.0f}ms/{v['queries']}q/sql={v['sql_ms']:.0f}ms" for k, v in base_profile.items()))
    missed = [k for k in kinds if ours[k.name].p95 >= GOAL_MS]
    for kind in missed:
        ms, sql, params = profile[kind.name]["slowest"]
        print(f"-- {kind.name} over the goal; its slowest statement ({ms:.0f}ms):\n{sql}\n{params}\n"
              + _explain(sql, params))

    print(f"{'kind':14} {'ours p50':>9} {'ours p95':>9} {'stock p50':>10} {'stock p95':>10}  "
          "(ms, the whole HTTP response)")
    for kind in kinds:
        o, b = ours[kind.name], baseline[kind.name]
        print(f"{kind.name:14} {o.p50:9.1f} {o.p95:9.1f} {b.p50:10.1f} {b.p95:10.1f}  "
              f"{'ok' if o.p95 < GOAL_MS else 'MISSED'}")
    overall, overall_base = _weighted_p95(ours), _weighted_p95(baseline)
    print(f"overall p95: ours {overall:.1f}ms, stock {overall_base:.1f}ms; goal p95 < {GOAL_MS}ms per kind: "
          f"{'met' if not missed else 'missed by ' + ', '.join(k.name for k in missed)}")
    return result_line(bench="changelist", value=overall, unit="ms", baseline=overall_base)
