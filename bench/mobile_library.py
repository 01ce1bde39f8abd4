"""The library on the phone at scale: list and search pages among many materials, as a store's guide.

    python -m bench mobile_library --scale 200000   # materials (small: 20,000)

The world: an organisation of 200 stores and ``scale`` materials written set-based (one INSERT … SELECT each for
materials, versions and audiences): 70 % for everyone, 20 % for one region, 10 % for a few stores; 5 % expired,
5 % drafts, every one with a script text made of common and rare words. Measured through the Django test client
(the whole request: session, scope, query, template) as a guide of one store: the first page, a common word, a
rare word (found through the trigram index on ``UPPER(search_text)``), a kind filter, page 5. The value is the
p95 of the rows' queries of all those pages (one row more than a page, newest first, walked down the partial
index ``material_published_recent``); baseline, same run: the draft's (Django's Paginator: a COUNT over every
usable material of the scope before each page). The goal: every whole page p95 under 300 ms at 200,000.
"""

from __future__ import annotations

import statistics

from bench.harness import p95, result_line, tables_truncate, timed

STORES = 200
RUNS = 15
GOAL_MS = 300.0
MATERIAL_TABLES = ("materials_material_audience_regions", "materials_material_audience_stores",
                   "materials_material_audience_franchisees", "materials_material_tags", "materials_materialuse",
                   "materials_materialusedaily", "materials_materialversion", "materials_material")

MATERIALS_SQL = """
INSERT INTO materials_material (kind, title, description, status, audience_all, audience_store_kinds, search_text,
                                expires_at, created_at, updated_at)
SELECT k.kind, '压测素材' || g, '', 'draft', g % 10 < 7,
       '{}', '', CASE WHEN g % 20 = 3 THEN now() - interval '1 day' WHEN g % 20 = 4 THEN now() + interval '3 days' END,
       now() - g * interval '1 second', now() - g * interval '1 second'
FROM generate_series(1, %(n)s) g
CROSS JOIN LATERAL (SELECT (ARRAY['script','moments','link','script'])[1 + g % 4] AS kind) k
"""
VERSIONS_SQL = """
INSERT INTO materials_materialversion (material_id, number, note, file, file_name, mime, sha256, thumbnail, text,
                                       link_url, link_title, miniprogram_appid, miniprogram_page, attachment_ids,
                                       created_at)
SELECT m.id, 1, '', '', '', '', '', '', '{客户称呼}您好，' || (ARRAY['会员日积分翻倍','新品到店','周末满减','开业酬宾',
       '生日礼遇'])[1 + m.id % 5] || '，暗号' || md5(m.id::text), CASE WHEN m.kind = 'link' THEN 'https://example.com/'
       || m.id ELSE '' END, '', '', '', '{}', now()
FROM materials_material m
"""
CURRENT_SQL = """
UPDATE materials_material m SET current_version_id = v.id, search_text = m.title || E'\\n' || v.text,
    status = CASE WHEN m.id % 20 = 7 THEN 'draft' ELSE 'published' END
FROM materials_materialversion v WHERE v.material_id = m.id
"""
REGIONS_SQL = """
INSERT INTO materials_material_audience_regions (material_id, region_id)
SELECT m.id, (SELECT array_agg(id ORDER BY id) FROM stores_region)[1 + m.id %% (SELECT count(*) FROM stores_region)]
FROM materials_material m WHERE m.id %% 10 IN (7, 8)
"""
STORES_SQL = """
INSERT INTO materials_material_audience_stores (material_id, store_id)
SELECT m.id, s.id FROM materials_material m
CROSS JOIN LATERAL (SELECT id FROM stores_store ORDER BY (id + m.id) %% 97 LIMIT 3) s
WHERE m.id %% 10 = 9
"""


def _world(scale: int):
    from django.db import connection

    from bench.org import ORG_TABLES, _size
    from materials.models import Material
    from stores.demo import org_build
    from stores.models import Access, Role

    if not Access.objects.filter(role=Role.STORE_MANAGER).exists():
        tables_truncate(*ORG_TABLES)
        org_build(size=_size(STORES))
    if Material.objects.filter(title__startswith="压测素材").count() != scale:
        tables_truncate(*MATERIAL_TABLES)
        with connection.cursor() as cursor:
            cursor.execute(MATERIALS_SQL.replace("%(n)s", str(int(scale))))
            for sql in (VERSIONS_SQL, CURRENT_SQL, REGIONS_SQL, STORES_SQL):
                cursor.execute(sql.replace("%%", "%"))
            cursor.execute("ANALYZE materials_material; ANALYZE materials_materialversion; "
                           "ANALYZE materials_material_audience_regions; ANALYZE materials_material_audience_stores")
    return Access.objects.filter(role=Role.STORE_MANAGER).select_related("user").first().user


def _queries_ours(user, params: dict) -> int:
    """What the page reads for its rows: the usable materials of the scope, one row more than a page, no COUNT."""
    from campaigns.mobile.library import PAGE_SIZE
    from materials.library.selectors import materials_usable

    page = int(params.get("page", 1))
    materials = materials_usable(viewer=user, search=params.get("q", ""), kind=params.get("kind") or None)
    return len(list(materials.order_by("-updated_at", "-id")[(page - 1) * PAGE_SIZE:page * PAGE_SIZE + 1]))


def _queries_paginator(user, params: dict) -> int:
    """The baseline: the draft's list, Django's Paginator counting the whole filtered set for every page."""
    from django.core.paginator import Paginator

    from materials.library.selectors import materials_usable

    materials = materials_usable(viewer=user, search=params.get("q", ""),
                                 kind=params.get("kind") or None).order_by("-updated_at", "-id")
    page = Paginator(materials, 20).get_page(params.get("page"))
    return page.paginator.count + len(list(page))


def bench_mobile_library(*, scale: int) -> str:
    from django.test import Client
    from django.urls import reverse

    user = _world(scale)
    client = Client()
    client.force_login(user)
    url = reverse("mobile:materials")
    pages = {"first": {}, "common word": {"q": "积分翻倍"}, "rare word": {"q": "暗号c4ca4238"},
             "kind": {"kind": "moments"}, "page 5": {"page": "5"}}
    timings: dict[str, list[float]] = {}
    found: dict[str, int] = {}
    for name, params in pages.items():
        assert client.get(url, params).status_code == 200  # warm
        timings[name] = []
        for _ in range(RUNS):
            with timed() as t:
                response = client.get(url, params)
            timings[name].append(t.seconds * 1000)
        found[name] = response.content.decode().count("weui-media-box_appmsg")
    ours: list[float] = []
    baseline: list[float] = []
    for params in pages.values():
        for way, samples in ((_queries_ours, ours), (_queries_paginator, baseline)):
            for _ in range(RUNS // 3):
                with timed() as t:
                    way(user, params)
                samples.append(t.seconds * 1000)
    lines = [f"materials={scale} stores={STORES} runs={RUNS} (ms, median / p95; rows on the page)"]
    lines += [f"  {name:12} {statistics.median(v):7.1f} / {p95(v):7.1f}  rows={found[name]}"
              for name, v in timings.items()]
    lines.append(f"  rows' queries, every page above: ours {statistics.median(ours):.1f} / {p95(ours):.1f}, "
                 f"Paginator with COUNT {statistics.median(baseline):.1f} / {p95(baseline):.1f}")
    worst = max(p95(v) for v in timings.values())
    lines.append(f"goal: every page p95 < {GOAL_MS:.0f} ms: {'met' if worst < GOAL_MS else 'NOT met'} "
                 f"(worst {worst:.1f} ms)")
    lines.append(result_line(bench="mobile_library", value=p95(ours), unit="ms", baseline=p95(baseline)))
    return "\n".join(lines)
