"""Library search at 200,000 materials: the whole response, as HQ (the admin) and as a store manager (the mobile page).

    python -m bench material_search --scale 200000     # --small: 20,000

The materials are generated set-based (generate_series): eight kinds, titles and descriptions from a word pool,
scripts with text, 85 % published (some expiring or expired), the rest drafts and archived; audiences spread over
the brand (everyone, an area, a city, a franchisee, a store kind, a few stores) and some franchisees' own
materials. A common word (新品, in about a third) and a rare one (樱花限定, in 40, brand-wide) are searched, with
and without a kind.

Each page is asked for REPEAT times through Django's test client in process (the whole middleware, view, template
and SQL path, no network): HQ's admin changelist /admin/materials/material/ and a store manager's mobile library
/m/materials/. The baseline is the same pages with the trigram index dropped (inside a transaction that is rolled
back) and the stock paginator that counts every match: what the pages would cost without the design's index and
estimated counts. The RESULT line compares the overall p95 across every page and persona.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.harness import p95, result_line, timed

REPEAT = 20
GOAL_MS = 50
COMMON, RARE = "新品", "樱花限定"

MATERIALS_SQL = """
INSERT INTO materials_material (kind, title, description, status, valid_from, expires_at, audience_all,
                                audience_store_kinds, owner_franchisee_id, search_text, created_at, updated_at,
                                folder_id)
SELECT k.kind,
       t.title,
       t.description,
       'draft', NULL,
       CASE WHEN i % 10 = 3 THEN now() + make_interval(days => (i % 30) + 1)
            WHEN i % 10 = 7 THEN now() - make_interval(days => (i % 30) + 1) END,
       i % 5 = 0,
       CASE WHEN i % 10 = 4 THEN ARRAY[CASE WHEN i % 20 = 4 THEN 'franchise' ELSE 'direct' END]::varchar[]
            ELSE '{}'::varchar[] END,
       CASE WHEN i % 25 = 1 THEN (SELECT id FROM stores_franchisee ORDER BY id
                                  OFFSET (i / 25) % (SELECT count(*) FROM stores_franchisee) LIMIT 1) END,
       concat_ws(E'\\n', t.title, t.description, CASE WHEN k.kind = 'script' THEN t.script END),
       now() - make_interval(mins => i), now() - make_interval(mins => i),
       NULL
FROM generate_series(1, %(count)s) AS i
CROSS JOIN LATERAL (SELECT (ARRAY['image','poster_template','video','file','link','miniprogram','script',
                                  'moments'])[1 + i % 8] AS kind) k
CROSS JOIN LATERAL (
  SELECT concat((ARRAY['春季','夏日','秋冬','周年庆','会员日','开业','中秋','国庆','双十一','年货'])[1 + (i / 8) % 10],
                (ARRAY['早餐','下午茶','咖啡','面包','蛋糕','饮品','甜品','轻食','沙拉','果汁','奶茶','冰淇淋'])
                    [1 + (i / 80) % 12],
                CASE WHEN i % 3 = 0 THEN '新品' ELSE '' END,
                CASE WHEN i % 5000 = 10 THEN '樱花限定' ELSE '' END,
                (ARRAY['海报','话术','活动说明','陈列指引','培训视频','朋友圈文案','价目表','小程序卡片'])[1 + i % 8],
                ' #', i) AS title,
         concat('适用于', (ARRAY['全部门店','直营店','加盟店','旗舰店'])[1 + i % 4], '，第', i % 97, '期，',
                (ARRAY['请按陈列图摆放','活动期间每日更新','导购转发前请核对价格','配合店内物料使用'])[1 + i % 4])
           AS description,
         concat('{客户称呼}您好，我是{门店名称}的{导购姓名}，',
                (ARRAY['本周新品上市','会员日全场九折','下午茶第二份半价','欢迎到店品尝'])[1 + i % 4],
                '，营业时间{营业时间}。') AS script
) t
"""

VERSIONS_SQL = """
INSERT INTO materials_materialversion (material_id, number, note, file, file_name, mime, size, sha256, thumbnail,
                                       text, link_url, link_title, miniprogram_appid, miniprogram_page,
                                       attachment_ids, created_at)
SELECT m.id, 1, '', '', '', '', NULL, '', '',
       CASE WHEN m.kind IN ('script', 'moments') THEN split_part(m.search_text, E'\\n', 3) ELSE '' END,
       CASE WHEN m.kind = 'link' THEN 'https://example.com/a/' || m.id ELSE '' END,
       CASE WHEN m.kind = 'link' THEN m.title ELSE '' END,
       CASE WHEN m.kind = 'miniprogram' THEN 'wx0000000000000001' ELSE '' END,
       CASE WHEN m.kind = 'miniprogram' THEN 'pages/index' ELSE '' END,
       '{}', m.created_at
FROM materials_material m
"""

PUBLISH_SQL = """
UPDATE materials_material m
SET current_version_id = v.id,
    status = CASE WHEN m.id % 20 = 0 THEN 'draft' WHEN m.id % 20 IN (1, 2) THEN 'archived' ELSE 'published' END
FROM materials_materialversion v WHERE v.material_id = m.id
"""

# Audiences by id: everyone (i % 5 = 0, set above), an area (1, 6), a city (2), a franchisee (8), a few stores (9).
REGIONS_SQL = """
INSERT INTO materials_material_audience_regions (material_id, region_id)
SELECT m.id, CASE WHEN m.id % 10 IN (1, 6) THEN a.ids[1 + (m.id / 10) % array_length(a.ids, 1)]
                  ELSE c.ids[1 + (m.id / 10) % array_length(c.ids, 1)] END
FROM materials_material m,
     (SELECT array_agg(id ORDER BY id) ids FROM stores_region WHERE parent_id IS NULL) a,
     (SELECT array_agg(id ORDER BY id) ids FROM stores_region WHERE parent_id IS NOT NULL) c
WHERE m.owner_franchisee_id IS NULL AND m.id % 10 IN (1, 2, 6)
"""
FRANCHISEES_SQL = """
INSERT INTO materials_material_audience_franchisees (material_id, franchisee_id)
SELECT m.id, f.ids[1 + (m.id / 10) % array_length(f.ids, 1)]
FROM materials_material m, (SELECT array_agg(id ORDER BY id) ids FROM stores_franchisee) f
WHERE m.owner_franchisee_id IS NULL AND m.id % 10 = 8
"""
STORES_SQL = """
INSERT INTO materials_material_audience_stores (material_id, store_id)
SELECT m.id, s.ids[1 + ((m.id / 10) * 7 + k) % array_length(s.ids, 1)]
FROM materials_material m, generate_series(0, 4) k,
     (SELECT array_agg(id ORDER BY id) ids FROM stores_store) s
WHERE m.id % 10 = 9
ON CONFLICT DO NOTHING
"""
LOCAL_STORES_SQL = """
INSERT INTO materials_material_audience_stores (material_id, store_id)
SELECT m.id, s.id FROM materials_material m JOIN stores_store s ON s.franchisee_id = m.owner_franchisee_id
WHERE m.owner_franchisee_id IS NOT NULL AND NOT m.audience_all AND s.id % 2 = 0
ON CONFLICT DO NOTHING
"""

MATERIAL_TABLES = ("materials_materialuse", "materials_materialusedaily", "materials_wecommedia",
                   "materials_material_audience_stores", "materials_material_audience_franchisees",
                   "materials_material_audience_regions", "materials_material_tags", "materials_materialversion",
                   "materials_material")


@dataclass
class Page:
    persona: str
    name: str
    url: str
    ours: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    rows: str = ""


def _org_ensure(stores: int):
    from stores.models import Access, Role, Store

    if not Access.objects.filter(role=Role.STORE_MANAGER).exists() or Store.objects.count() < 100:
        from bench.harness import tables_truncate
        from bench.org import ORG_TABLES, _size
        from stores.demo import org_build

        tables_truncate(*MATERIAL_TABLES, *ORG_TABLES)
        org_build(size=_size(stores))
    # A store manager of a franchised store: their view unites brand and franchisee audiences.
    access = (Access.objects.filter(role=Role.STORE_MANAGER, store__franchisee__isnull=False)
              .select_related("user", "store").order_by("store_id").first())
    assert access is not None
    return access.user, access.store


def _materials_ensure(count: int) -> float:
    from django.db import connection, transaction

    from bench.harness import tables_truncate
    from materials.models import Material

    rare = Material.objects.filter(search_text__contains=RARE, audience_all=True)  # this generator's data
    if Material.objects.count() == count and rare.exists():
        print(f"reusing {count} materials", flush=True)
        return 0.0
    tables_truncate(*MATERIAL_TABLES)
    with timed() as t, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(MATERIALS_SQL.replace("%(count)s", str(int(count))))
        for sql in (VERSIONS_SQL, PUBLISH_SQL, REGIONS_SQL, FRANCHISEES_SQL, STORES_SQL, LOCAL_STORES_SQL):
            cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"generated {count} materials in {t.seconds:.1f}s", flush=True)
    return t.seconds


def _ask(client, url: str, repeat: int) -> tuple[list[float], str]:
    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code)
    samples = []
    for _ in range(repeat):
        with timed() as t:
            response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        samples.append(t.seconds * 1000)
    return samples, f"{len(response.content) // 1024}KiB"


def _pages(mobile_url: str | None) -> list[Page]:
    from urllib.parse import quote

    admin = "/admin/materials/material/"
    pages = [Page("hq", "unfiltered", admin), Page("hq", "common", f"{admin}?q={quote(COMMON)}"),
             Page("hq", "rare", f"{admin}?q={quote(RARE)}"),
             Page("hq", "script+common", f"{admin}?kind__exact=script&q={quote(COMMON)}"),
             Page("hq", "usable", f"{admin}?usable=yes")]
    if mobile_url:
        pages += [Page("store_manager", "library", mobile_url),
                  Page("store_manager", "common", f"{mobile_url}?q={quote(COMMON)}"),
                  Page("store_manager", "rare", f"{mobile_url}?q={quote(RARE)}"),
                  Page("store_manager", "script+common", f"{mobile_url}?kind=script&q={quote(COMMON)}")]
    return pages


def _mobile_url() -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("mobile:materials")
    except NoReverseMatch:
        return None


def _selector_samples(manager, repeat: int) -> dict[str, float]:
    """The store manager's reads without a page (the selector tasks and sends will call): first 20 rows."""
    from materials.library.selectors import materials_usable

    out = {}
    for name, search in (("all", ""), ("common", COMMON), ("rare", RARE)):
        samples = []
        for _ in range(repeat):
            with timed() as t:
                list(materials_usable(viewer=manager, search=search).order_by("-updated_at")[:20])
            samples.append(t.seconds * 1000)
        out[name] = p95(samples)
    return out


def bench_material_search(*, scale: int, repeat: int = REPEAT) -> str:
    from django.core.paginator import Paginator
    from django.db import connection, transaction
    from django.test import Client

    from materials.library.admin import MaterialAdmin
    from materials.models import Material
    from portal.models import User

    manager, store = _org_ensure(1000)
    generated = _materials_ensure(scale)
    hq = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("bench_admin", "", "x")
    mobile_url = _mobile_url()
    pages = _pages(mobile_url)
    visible = Material.objects.for_user(manager).usable().count()
    print(f"materials={scale} generated_in={generated:.1f}s store={store.code} usable_for_manager={visible} "
          f"rare_matches={Material.objects.filter(search_text__contains=RARE).count()}", flush=True)
    if not mobile_url:
        print("the mobile library page is not there (mobile:materials): store manager measured by selector only")
    clients = {"hq": Client(), "store_manager": Client()}
    clients["hq"].force_login(hq)
    clients["store_manager"].force_login(manager)
    for page in pages:
        page.ours, page.rows = _ask(clients[page.persona], page.url, repeat)
    selector = _selector_samples(manager, repeat)

    # Baseline: no trigram index (dropped in a transaction, rolled back) and the stock paginator's full counts.
    stock = (MaterialAdmin.paginator, MaterialAdmin.show_full_result_count)
    MaterialAdmin.paginator, MaterialAdmin.show_full_result_count = Paginator, True
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX material_search_trgm")
            for page in pages:
                page.baseline, _ = _ask(clients[page.persona], page.url, max(5, repeat // 4))
            transaction.set_rollback(True)
    finally:
        MaterialAdmin.paginator, MaterialAdmin.show_full_result_count = stock

    for page in pages:
        print(f"{page.persona:13} {page.name:14} p50={statistics.median(page.ours):6.1f}ms "
              f"p95={p95(page.ours):6.1f}ms  baseline p95={p95(page.baseline):7.1f}ms  {page.rows}", flush=True)
    print("selector (store manager, first 20): " + " ".join(f"{k}_p95={v:.1f}ms" for k, v in selector.items()))
    by_persona = {who: p95([ms for p in pages if p.persona == who for ms in p.ours]) for who in clients
                  if any(p.persona == who for p in pages)}
    print("overall p95: " + " ".join(f"{who}={ms:.1f}ms" for who, ms in by_persona.items())
          + f" (goal < {GOAL_MS} ms each)")
    ours = p95([ms for p in pages for ms in p.ours])
    baseline = p95([ms for p in pages for ms in p.baseline])
    return result_line(bench="material_search", value=ours, unit="ms", baseline=baseline)
