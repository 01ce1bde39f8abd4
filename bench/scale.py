"""The scale generator: 10 M customers / 12 M relationships / 4.5 M members over 4,000 stores / 13,000 staff.

    python -m bench scale --scale 10000000          # generate, time each phase, compare with bulk_create
    BENCH_REUSE=1 python -m bench scale --scale …   # keep the data if it is exactly this scale (prints
                                                     # the timings recorded when it was loaded)

Other benchmarks call ``scale_ensure(customers=N, reuse=…)``. What it makes, all consistent with the
organisation (``org_build``):
- customers with Chinese names (a realistic, skewed surname distribution and Zipf-like given-name
  characters: 张伟… ~0.4 % of customers, a rare 3-character name a handful; ~9 % WeChat
  nicknames), ``wm…``/``wo…`` external_userids, a unionid for ~70 %, stages, skewed tag arrays,
  primary staff/store/region/franchisee of their earliest active relationship, a member for ~45 %;
- 1.22 relationships per customer (82 % one, 14 % two, 4 % three, the extra ones with staff of other
  stores), added over 3 years (growing), ~8 % ended (deleted by customer or staff, with ``ended_at``),
  a channel and its ``state`` for ~65 %;
- members (id = the customer's id) with level, points, spend, RFM, hashed + masked mobile, unionid.

How it is fast on 2 cores: producer processes (one per core, forked) generate the COPY text of
50,000-customer chunks — customers, their relationships and members — a few chunks ahead, while this
process feeds them in order to PostgreSQL with ``COPY … FREEZE`` (three COPYs per chunk) into tables
truncated in the same transaction: rows arrive frozen and all-visible, so no hint-bit or vacuum
rewrite later and index-only scans work at once. Generation and ingestion overlap; at 10 M the
consumer spends ~70 % of the time waiting on PostgreSQL. Every index but the primary keys is dropped
first and rebuilt after the load (sorted builds, parallel workers, 1 GB maintenance_work_mem) — unique
constraints included. FK triggers are off for the load (the data is valid by construction; CHECK
constraints still apply). Everything from TRUNCATE to ANALYZE is one transaction: a crash leaves the
previous data, and a marker (the table's COMMENT, committed with the data) lets the next run skip a
load that already matches (reuse). The generated data depends only on SEED and the organisation, not
on the number of producers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import multiprocessing
import os
import random
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bench.harness import result_line, tables_truncate, timed

GENERATOR = "scale-v1"  # bump when the generated data changes: a stored load with another version is reloaded
SEED = 20261124
CHUNK = 50_000
TAGS = 300
MEMBER_SHARE = 0.45
UNIONID_SHARE = 0.70
NICKNAME_SHARE = 0.09
WECOM_KIND_SHARE = 0.03
CUSTOMERS_PER_STORE = 2500
STAGES = [("fan", 50), ("interested", 20), ("lead", 12), ("visited", 8), ("customer", 7), ("referrer", 3)]
RELATIONSHIPS_PER_CUSTOMER = [(1, 82), (2, 14), (3, 4)]
ENDED = [("deleted_by_customer", 6), ("deleted_by_staff", 2)]  # of 100 relationships; the rest active
YEARS = 3
SLOT_MINUTES = 10
BASELINE_SAMPLE = 20_000  # customers (with their relationships and members) for the bulk_create baseline
NULL = "\\N"  # in COPY's text format

DATA_TABLES = ("customers_segmentsnapshotmember", "customers_segmentsnapshot", "customers_segment",
               "customers_stagechange", "customers_welcomedelivery", "customers_relationship",
               "customers_customer", "customers_member")
LOADED_TABLES = ("customers_customer", "customers_relationship", "customers_member")
CUSTOMER_COLUMNS = ("id, external_userid, unionid, name, kind, gender, avatar, corp_name, staff_id, store_id, "
                    "region_id, franchisee_id, channel_id, stage, tag_ids, active, first_added_at, last_touch_at, "
                    "member_id, created_at, updated_at")
RELATIONSHIP_COLUMNS = ("customer_id, staff_id, store_id, added_at, add_way, state, channel_id, contact_way_id, "
                        "campaign_ref, remark, description, remark_mobiles, tag_ids, status, ended_at, synced_at")
MEMBER_COLUMNS = ("id, member_no, mobile_hash, mobile_masked, unionid, name, level, points, lifetime_spend, "
                  "order_count, last_purchase_on, home_store_id, rfm_r, rfm_f, rfm_m, updated_at")

# -- names -----------------------------------------------------------------------------------------------
# Surnames with their approximate share of the population in percent (national surveys): 王李张 ≈ 7 % each,
# a long tail, and a few compound surnames.
SURNAMES = (
    "王7.12 李7.00 张6.74 刘5.10 陈4.61 杨3.22 黄2.45 赵2.19 吴2.05 周1.92 徐1.68 孙1.54 马1.47 朱1.36 胡1.29 "
    "郭1.23 何1.17 林1.13 高1.10 罗0.99 郑0.93 梁0.88 谢0.84 宋0.76 唐0.75 许0.68 韩0.65 冯0.64 邓0.63 曹0.61 "
    "彭0.58 曾0.57 肖0.55 田0.54 董0.53 袁0.50 潘0.49 于0.48 蒋0.47 蔡0.46 余0.45 杜0.44 叶0.43 程0.42 苏0.41 "
    "魏0.40 吕0.39 丁0.38 任0.37 沈0.36 姚0.35 卢0.34 姜0.33 崔0.32 钟0.31 谭0.30 陆0.29 汪0.28 范0.27 金0.26 "
    "石0.25 廖0.24 贾0.23 夏0.22 韦0.21 付0.20 方0.20 白0.19 邹0.19 孟0.18 熊0.18 秦0.17 邱0.17 江0.16 尹0.16 "
    "薛0.15 闫0.15 段0.14 雷0.14 侯0.13 龙0.13 史0.12 陶0.12 黎0.11 贺0.11 顾0.10 毛0.10 郝0.10 龚0.10 邵0.09 "
    "万0.09 钱0.09 严0.08 覃0.08 武0.08 戴0.08 莫0.07 孔0.07 向0.07 汤0.07 常0.06 温0.06 康0.06 施0.06 文0.06 "
    "牛0.05 樊0.05 葛0.05 邢0.05 安0.05 齐0.04 易0.04 乔0.04 伍0.04 庞0.04 颜0.04 倪0.04 庄0.04 聂0.04 章0.04 "
    "鲁0.03 岳0.03 翟0.03 殷0.03 詹0.03 申0.03 欧0.03 耿0.03 关0.03 兰0.03 焦0.03 俞0.03 左0.03 柳0.03 甘0.03 "
    "祝0.02 包0.02 宁0.02 尚0.02 符0.02 舒0.02 阮0.02 柯0.02 纪0.02 梅0.02 童0.02 凌0.02 毕0.02 单0.02 季0.02 "
    "裴0.02 霍0.02 涂0.02 成0.02 苗0.02 谷0.02 盛0.02 曲0.02 翁0.02 冉0.02 骆0.01 蓝0.01 路0.01 游0.01 辛0.01 "
    "靳0.01 管0.01 柴0.01 蒙0.01 鲍0.01 华0.01 喻0.01 祁0.01 蒲0.01 房0.01 滕0.01 屈0.01 饶0.01 解0.01 牟0.01 "
    "艾0.01 尤0.01 阳0.01 时0.01 穆0.01 农0.01 司0.01 卓0.01 古0.01 吉0.01 缪0.01 简0.01 车0.01 项0.01 连0.01 "
    "欧阳0.03 上官0.004 司马0.004 诸葛0.002 东方0.002 慕容0.002 皇甫0.002 令狐0.001 尉迟0.001 公孙0.001"
)
# Given-name characters, most common first; their weights fall off as rank^-0.6 (伟 ≈ 5 % of first
# given characters), so a common 2-character name is frequent and a 3-character one of rare characters is rare.
GIVEN = ("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华玉萍红建文辉力林斌宇浩凯鹏峰晨欣怡婷雪梅琳佳子涵轩梓萱俊"
         "博诗雨思晓嘉一昊天泽瑞鑫成永国志海东春燕云飞龙亮宁丹颖慧兰凤洁琴彬淑珍晶莉荣新波岩健鸿飞翔宏伦琦瑶蕾"
         "倩薇茜璐露婉悦玲蓉彤妍颜馨然安乐康诚信义礼智勤俭朴素真善美和顺达远志豪杰英雄武威德厚光"
         "启迪开阳阔朗清澈澄湘江河湖泊川山峻岭松柏竹梧桐槐杉枫桦楠棠樱桃李杏荷莲菊兰蕙芷若蘅薇芸苓茗茹萌")
NICKNAMES = ("阳光 快乐每一天 平安是福 岁月静好 随遇而安 静待花开 知足常乐 花开富贵 一路有你 简单就好 微笑 向日葵 "
             "A小王 A阿杰 A美美 小雨 小鱼儿 小猪佩奇 奶茶控 吃货一枚 追梦人 海阔天空 心若向阳 风轻云淡 不忘初心 "
             "Lily Grace Kevin Jason Amy Coco Lucky Sunny Tina Vicky 🌸花开 🍀幸运草 🌈彩虹 ☀️晴天 爱笑的眼睛 "
             "宝妈 二宝妈 雯雯妈妈 浩浩爸爸 老张 老李 王姐 陈哥 刘总 张老师 李医生 周小姐 Mr.Wang Miss林").split()
CORP_NAMES = ("上海云帆科技有限公司 杭州西溪文化传媒 深圳前海供应链管理 北京朝阳餐饮管理 成都天府软件园 "
              "广州天河贸易有限公司 南京新街口商贸 重庆两江物流").split()
TAG_NAMES = ("高意向 已到店 老客户 价格敏感 爱喝咖啡 周末到店 宝妈 学生 白领 团购 会员日 生日月 投诉过 "
             "转介绍 大客户 新客 沉睡 复购 线上下单 外卖").split()
CHANNELS = [("poster", "门店海报"), ("table_card", "桌贴台卡"), ("receipt", "小票二维码"),
            ("parcel_card", "电商包裹卡"), ("live", "直播间"), ("ads", "朋友圈广告"),
            ("mini_program", "小程序"), ("referral", "老带新")]
TAG_COUNTS = (0, 1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8)  # tags per customer
GENDERS = (1, 2, 2, 0)
ADD_WAYS = (0, 2, 3, 4)  # WeCom add_way without a channel code: unknown, mobile search, card share, group chat


# -- the organisation, tags and channels -------------------------------------------------------------------
def stores_for(customers: int) -> int:
    """A chain's density: ~2,500 customers a store, 200 stores at least, 4,000 at most."""
    return max(200, min(4000, customers // CUSTOMERS_PER_STORE))


def org_ensure(*, customers: int) -> list[tuple]:
    """The organisation (built once, kept if at least this big): (staff, store, region, franchisee) ids."""
    from bench.org import ORG_TABLES, _size
    from stores.demo import org_build
    from stores.models import Staff

    size = _size(stores_for(customers))
    if Staff.objects.count() < size.staff:
        tables_truncate(*ORG_TABLES)
        org_build(size=size)
    return list(Staff.objects.filter(store__isnull=False).order_by("pk").values_list(
        "pk", "store_id", "store__region_id", "store__franchisee_id"))


def tags_and_channels() -> tuple[list[int], list[tuple[int, str]]]:
    """300 tags in 20 groups, 8 channels: ids in a stable order; channels as (id, code)."""
    from customers.models import Channel, Tag, TagGroup

    groups = [TagGroup.objects.get_or_create(wecom_group_id=f"etBENCH{g:02d}", defaults={"name": f"标签组{g}"})[0]
              for g in range(20)]
    Tag.objects.bulk_create([Tag(group=groups[i % 20], name=f"{TAG_NAMES[i % len(TAG_NAMES)]}{i:03d}",
                                 wecom_tag_id=f"etBENCHTAG{i:03d}") for i in range(TAGS)], ignore_conflicts=True)
    for i, (kind, name) in enumerate(CHANNELS):
        Channel.objects.get_or_create(code=f"BC{i:02d}", defaults={"name": name, "kind": kind})
    tags = list(Tag.objects.filter(wecom_tag_id__startswith="etBENCHTAG").order_by("wecom_tag_id")
                .values_list("pk", flat=True))
    return tags, list(Channel.objects.filter(code__startswith="BC").order_by("code").values_list("pk", "code"))


# -- the generator (runs in producer processes) -------------------------------------------------------
@dataclass
class _Context:
    """Everything a producer needs, built once in the parent before the fork (read-only afterwards)."""

    staff: list[tuple]
    tags: list[int]
    channels: list[tuple[int, str]]
    now: str = ""
    slots: list[str] = field(default_factory=list)
    days: list[str] = field(default_factory=list)
    staff_pool: list[int] = field(default_factory=list)
    surname_pool: list[str] = field(default_factory=list)
    given_pool: list[str] = field(default_factory=list)
    tag_pool: list[int] = field(default_factory=list)
    staff_columns: list[str] = field(default_factory=list)
    relationship_columns: list[str] = field(default_factory=list)
    stage_pool: list[str] = field(default_factory=list)
    rel_count_pool: list[int] = field(default_factory=list)
    states: dict = field(default_factory=dict)
    hmac_inner: object = None
    hmac_outer: object = None


_CTX: _Context | None = None


def _context(staff: list[tuple], tags: list[int], channels: list[tuple[int, str]]) -> _Context:
    from django.conf import settings

    rng = random.Random(SEED)
    ctx = _Context(staff=staff, tags=tags, channels=channels)
    end = datetime.now().astimezone().replace(second=0, microsecond=0)
    ctx.now = end.isoformat()
    count = YEARS * 365 * 24 * 60 // SLOT_MINUTES
    ctx.slots = [(end - timedelta(minutes=SLOT_MINUTES * (count - k))).isoformat() for k in range(count)]
    ctx.days = [(end.date() - timedelta(days=d)).isoformat() for d in range(YEARS * 365)]
    # Staff popularity is skewed (lognormal): some guides serve thousands of customers, some a few dozen.
    weights = [rng.lognormvariate(0, 0.5) for _ in staff]
    scale = 200_000 / sum(weights)
    ctx.staff_pool = [k for k, w in enumerate(weights) for _ in range(max(1, round(w * scale)))]
    surnames = re.findall(r"(\D+?)([\d.]+)\s*", SURNAMES)
    ctx.surname_pool = [name for name, share in surnames for _ in range(max(1, round(float(share) * 1000)))]
    given = list(dict.fromkeys(GIVEN))  # most common first, each once
    ctx.given_pool = [char for rank, char in enumerate(given) for _ in range(round(2000 / (rank + 1) ** 0.6))]
    # Tag popularity is skewed like a real tag library (rank^-0.9).
    ctx.tag_pool = [tag for rank, tag in enumerate(tags) for _ in range(round(1000 / (rank + 1) ** 0.9))]
    ctx.staff_columns = [f"{s}\t{store}\t{region}\t{franchisee or NULL}" for s, store, region, franchisee in staff]
    ctx.relationship_columns = [f"{s}\t{store}" for s, store, _region, _franchisee in staff]
    ctx.stage_pool = [s for s, weight in STAGES for _ in range(weight)]
    ctx.rel_count_pool = [n for n, weight in RELATIONSHIPS_PER_CUSTOMER for _ in range(weight)]
    key = settings.MEMBER_MOBILE_HASH_KEY.encode()
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    ctx.hmac_inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    ctx.hmac_outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return ctx


def _state(ctx: _Context, channel: int, staff_index: int) -> str:
    """The contact-way ``state`` of a channel × staff code (as the portal encodes it), made once per pair."""
    key = (channel, staff_index)
    state = ctx.states.get(key)
    if state is None:
        from customers.acquisition.state import contact_state_encode

        staff_id, store_id = ctx.staff[staff_index][:2]
        state = ctx.states[key] = contact_state_encode(channel=ctx.channels[channel][1], store=store_id,
                                                       staff=staff_id)
    return state


_MASK = (1 << 192) - 1
_MIX = (0x9E3779B97F4A7C15F39CC0605CEDC8341082276BF3A27251, 0xC2B2AE3D27D4EB4F165667B19E3779F9D3A2B0C1E5F70A93)


def _scrambled(i: int, salt: int = 0) -> str:
    """32 URL-safe characters from a bijection of (i, salt): random-looking, distinct per id (even cut to 27
    characters: 162 bits), cheaper than a hash."""
    x = ((i ^ (salt << 160)) * _MIX[0]) & _MASK
    x ^= x >> 97
    x = (x * _MIX[1]) & _MASK
    x ^= x >> 61
    return base64.urlsafe_b64encode(x.to_bytes(24, "little")).decode()


def external_userid(i: int) -> str:
    """wm… (a WeChat user) or, for ~3 %, wo… (a WeCom user): 32 characters like WeCom's."""
    return ("wo" if (i * 2654435761) % 100 < WECOM_KIND_SHARE * 100 else "wm") + _scrambled(i)[:30]


def _name(ctx: _Context, rnd) -> tuple[str, bool]:
    """(name, is a real name). 20 % of real names have one given character, the rest two."""
    if rnd() < NICKNAME_SHARE:
        return NICKNAMES[int(rnd() * len(NICKNAMES))], False
    given, pool = ctx.given_pool, len(ctx.given_pool)
    name = ctx.surname_pool[int(rnd() * len(ctx.surname_pool))] + given[int(rnd() * pool)]
    if rnd() >= 0.2:
        name += given[int(rnd() * pool)]
    return name, True


def _relationships(ctx: _Context, rnd, count: int) -> list[list]:
    """[staff index, added slot, status, ended slot] sorted by added slot: the first is the earliest."""
    slots, staff, pool = len(ctx.slots), ctx.staff, ctx.staff_pool
    first = int(slots * rnd() ** 0.75)  # adds grow over the years
    primary = pool[int(rnd() * len(pool))]
    rels = [[primary, first, "active", -1]]
    if count > 1:
        stores = {staff[primary][1]}
        for _ in range(count - 1):
            for _attempt in range(5):  # a member of staff of another store
                other = pool[int(rnd() * len(pool))]
                if staff[other][1] not in stores:
                    stores.add(staff[other][1])
                    rels.append([other, first + int((slots - first) * rnd()), "active", -1])
                    break
        rels.sort(key=lambda r: r[1])
    for rel in rels:
        roll = rnd() * 100
        for status, share in ENDED:
            if roll < share:
                rel[2], rel[3] = status, rel[1] + int((slots - rel[1]) * rnd())
                break
            roll -= share
    return rels


def _generate(ctx: _Context, rng: random.Random, first: int, count: int):
    """Customers first..first+count-1 → (customer text, relationship text, member text, relationships, members).

    The hot loop of the whole generator: ``rnd()`` picks from pre-weighted pools (no randrange), and each
    staff member's columns are formatted once."""
    rnd = rng.random
    slots, channels, now, stages, tag_pool = ctx.slots, ctx.channels, ctx.now, ctx.stage_pool, ctx.tag_pool
    staff_cols, rel_cols, rel_counts = ctx.staff_columns, ctx.relationship_columns, ctx.rel_count_pool
    last_slot, n_tags, n_channels = len(slots) - 1, len(tag_pool), len(channels)
    recent = len(slots) - 180 * 24 * 60 // SLOT_MINUTES
    customers, relationships, members = [], [], []
    rel_total = 0
    for i in range(first, first + count):
        rels = _relationships(ctx, rnd, rel_counts[int(rnd() * 100)])
        primary = next((r for r in rels if r[2] == "active"), None)
        active = primary is not None
        staff_index = (primary or rels[0])[0]
        name, real = _name(ctx, rnd)
        ext = external_userid(i)
        unionid = "o" + _scrambled(i, 1)[:27] if rnd() < UNIONID_SHARE else ""
        wecom = ext[1] == "o"
        picks = TAG_COUNTS[int(rnd() * len(TAG_COUNTS))]
        tag_text = "{" + ",".join(map(str, sorted({tag_pool[int(rnd() * n_tags)] for _ in range(picks)}))) + "}" \
            if picks else "{}"
        channel = int(rnd() * n_channels) if rnd() < 0.65 else -1
        added = rels[0][1]
        touch = NULL
        if rnd() < 0.6:
            low = max(added, recent)
            touch = slots[min(last_slot, low + int((last_slot + 1 - low) * rnd()))]
        member = NULL
        if rnd() < MEMBER_SHARE:
            member = i
            members.append(_member_line(ctx, rnd, i, unionid, name if real else "", ctx.staff[staff_index][1]))
        avatar = f"https://wx.qlogo.cn/mmhead/{ext[2:]}{unionid[1:9]}/0" if rnd() < 0.85 else ""
        customers.append(
            f"{i}\t{ext}\t{unionid}\t{name}\t{2 if wecom else 1}\t{GENDERS[int(rnd() * 4)]}\t{avatar}\t"
            f"{CORP_NAMES[i % len(CORP_NAMES)] if wecom else ''}\t{staff_cols[staff_index]}\t"
            f"{channels[channel][0] if channel >= 0 else NULL}\t{stages[int(rnd() * 100)]}\t{tag_text}\t"
            f"{'t' if active else 'f'}\t{slots[added]}\t{touch}\t{member}\t{now}\t{now}\n")
        for n, (who, at, status, ended) in enumerate(rels):
            rel_channel = channel if n == 0 else (int(rnd() * n_channels) if rnd() < 0.5 else -1)
            if rel_channel >= 0:
                state, channel_id, add_way = _state(ctx, rel_channel, who), channels[rel_channel][0], 1
            else:
                state, channel_id, add_way = "", NULL, ADD_WAYS[int(rnd() * len(ADD_WAYS))]
            relationships.append(
                f"{i}\t{rel_cols[who]}\t{slots[at]}\t{add_way}\t{state}\t{channel_id}\t\\N\t\t\t\t{{}}\t"
                f"{tag_text if n == 0 else '{}'}\t{status}\t{slots[ended] if ended >= 0 else NULL}\t{now}\n")
        rel_total += len(rels)
    return "".join(customers), "".join(relationships), "".join(members), rel_total, len(members)


def _member_line(ctx: _Context, rnd, i: int, unionid: str, name: str, store_id: int) -> str:
    spend = math.exp(5.0 + 1.2 * _gauss(rnd))
    level = "钻石" if spend > 3000 else "金卡" if spend > 800 else "银卡" if spend > 200 else "普通"
    mobile = f"1{'3456789'[int(rnd() * 7)]}{int(rnd() * 1e9):09d}"
    inner, outer = ctx.hmac_inner.copy(), ctx.hmac_outer.copy()  # HMAC-SHA256 as mobile_hash(), pads pre-hashed
    inner.update(mobile.encode())
    outer.update(inner.digest())
    digest = outer.hexdigest()
    bought = ctx.days[min(len(ctx.days) - 1, int(-60 * math.log(1 - rnd())))]  # ~ every two months
    return (f"{i}\tM{i:010d}\t{digest}\t{mobile[:3]}****{mobile[7:]}\t{unionid}\t{name}\t{level}\t{int(spend)}\t"
            f"{spend:.2f}\t{1 + int(rnd() * 39)}\t{bought}\t{store_id}\t{1 + int(rnd() * 5)}\t"
            f"{1 + int(rnd() * 5)}\t{1 + int(rnd() * 5)}\t{ctx.now}\n")


def _gauss(rnd) -> float:
    """A standard normal from two uniforms (Box–Muller), cheaper than Random.lognormvariate's machinery."""
    return math.sqrt(-2.0 * math.log(1.0 - rnd())) * math.cos(2.0 * math.pi * rnd())


def _chunk(job: tuple[int, int, int]) -> tuple[bytes, bytes, bytes, int, int]:
    """Producer: one chunk of customers with their relationships and members, as COPY text."""
    k, first, count = job
    rng = random.Random(SEED * 1_000_003 + k)  # per chunk: the same data whatever the number of producers
    customers, relationships, members, rels, mems = _generate(_CTX, rng, first, count)
    return customers.encode(), relationships.encode(), members.encode(), rels, mems


def _produced(jobs: list, processes: int):
    """The producers' results in job order, at most a few chunks ahead of the consumer (bounded memory)."""
    if processes <= 1:
        for job in jobs:
            yield _chunk(job)
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.apply_async(_chunk, (job,)))
            if len(pending) >= processes * 2:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


# -- loading ------------------------------------------------------------------------------------------
def _droppable(cursor) -> tuple[list[str], list[tuple[str, str]]]:
    """(statements that drop, (name, statement) that rebuild) every index of the loaded tables but primary keys."""
    cursor.execute("""
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE c.conrelid::regclass::text = ANY(%s) AND c.contype = 'u' ORDER BY 1, 2
    """, [list(LOADED_TABLES)])
    unique = cursor.fetchall()
    cursor.execute("""
        SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
        ORDER BY 1, 2
    """, [list(LOADED_TABLES)])
    plain = cursor.fetchall()
    drop = [f'ALTER TABLE {t} DROP CONSTRAINT "{name}"' for t, name, _d in unique]
    drop += [f'DROP INDEX "{name}"' for _t, name, _d in plain]
    rebuild = [(name, f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {definition}') for t, name, definition in unique]
    rebuild += [(name, definition) for _t, name, definition in plain]
    return drop, rebuild


def _copy(cursor, table: str, columns: str, data: bytes, spent: dict) -> None:
    start = time.perf_counter()
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN WITH (FREEZE)") as copy:
        copy.write(data)
    spent[table] = spent.get(table, 0.0) + time.perf_counter() - start


def _load(*, customers: int, ctx: _Context, processes: int, prepare_seconds: float) -> dict:
    """One transaction: TRUNCATE, drop indexes, COPY chunk by chunk (customers, relationships, members of
    a chunk in turn, so PostgreSQL ingests while the producers make the next chunks), rebuild, ANALYZE."""
    from django.db import connection, transaction

    global _CTX
    _CTX = ctx  # inherited by the producers (fork)
    jobs = [(k, first, min(CHUNK, customers - first + 1)) for k, first in enumerate(range(1, customers + 1, CHUNK))]
    timings: dict = {"prepare": prepare_seconds}
    waited: dict = {}  # seconds the consumer spent in each table's COPY (PostgreSQL ingesting)
    relationships = members = 0
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            with timed() as t:
                cursor.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY CASCADE")
                drop, rebuild = _droppable(cursor)
                for statement in drop:
                    cursor.execute(statement)
            timings["truncate_drop"] = t.seconds
            cursor.execute("SET LOCAL session_replication_role = replica")  # no FK triggers: valid by construction
            with timed() as t:
                for customer_text, relationship_text, member_text, rels, mems in _produced(jobs, processes):
                    _copy(cursor, "customers_customer", CUSTOMER_COLUMNS, customer_text, waited)
                    _copy(cursor, "customers_relationship", RELATIONSHIP_COLUMNS, relationship_text, waited)
                    _copy(cursor, "customers_member", MEMBER_COLUMNS, member_text, waited)
                    relationships += rels
                    members += mems
            timings["generate_copy"] = t.seconds
            cursor.execute("SET LOCAL session_replication_role = DEFAULT")
            for table in ("customers_customer", "customers_member"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
            cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
            cursor.execute("SET LOCAL max_parallel_maintenance_workers = 2")
            builds = {}
            with timed() as t:
                for name, statement in rebuild:
                    start = time.perf_counter()
                    cursor.execute(statement)
                    builds[name] = time.perf_counter() - start
            timings["rebuild_indexes"] = t.seconds
            with timed() as t:
                cursor.execute(f"ANALYZE {', '.join(LOADED_TABLES)}, stores_staff, stores_store, stores_region")
            timings["analyze"] = t.seconds
            counts = {"customers": customers, "relationships": relationships, "members": members}
            detail = {"copy_wait": waited, "slowest_indexes": dict(sorted(builds.items(), key=lambda kv: -kv[1])[:6])}
            _mark(cursor, counts=counts, staff=ctx.staff, timings=timings, detail=detail, processes=processes)
    finally:
        _CTX = None
    return {**counts, "timings": timings, "detail": detail}


def _fingerprint(staff: list[tuple]) -> str:
    return hashlib.sha1(repr(staff).encode()).hexdigest()[:16]


def _mark(cursor, *, counts: dict, staff: list[tuple], timings: dict, detail: dict, processes: int) -> None:
    marker = {"generator": GENERATOR, **counts, "staff": _fingerprint(staff), "timings": timings, "detail": detail,
              "processes": processes, "loaded_at": datetime.now().astimezone().isoformat(timespec="seconds")}
    cursor.execute(f"COMMENT ON TABLE customers_customer IS {_literal(json.dumps(marker))}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def scale_marker(*, customers: int, staff: list[tuple]) -> dict | None:
    """The stored load's marker when the database holds exactly this generated scale, else None."""
    from django.db import connection

    from customers.models import Customer, Relationship

    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('customers_customer'::regclass, 'pg_class')")
        raw = cursor.fetchone()[0]
    try:
        marker = json.loads(raw or "")
    except ValueError:
        return None
    if marker.get("generator") != GENERATOR or marker.get("customers") != customers or \
            marker.get("staff") != _fingerprint(staff):
        return None
    last = Customer.objects.filter(pk=customers).values_list("external_userid", flat=True).first()
    if last != external_userid(customers) or Customer.objects.filter(pk__gt=customers).exists():
        return None
    top = Relationship.objects.order_by("-pk").values_list("pk", flat=True).first()
    return marker if top == marker["relationships"] else None


@dataclass
class ScaleData:
    customers: int
    relationships: int
    members: int
    staff: list[tuple]
    tags: list[int]
    channels: list[tuple[int, str]]
    timings: dict
    reused: bool
    detail: dict = field(default_factory=dict)
    org_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.customers + self.relationships + self.members

    @property
    def load_seconds(self) -> float:
        return sum(self.timings.values())

    def timings_text(self) -> str:
        text = " ".join(f"{k}={v:.1f}s" for k, v in self.timings.items())
        waited = self.detail.get("copy_wait") or {}
        if waited:
            text += "\n  of which in COPY: " + " ".join(f"{k.split('_')[1]}={v:.1f}s" for k, v in waited.items())
        slowest = self.detail.get("slowest_indexes") or {}
        if slowest:
            text += "\n  slowest index builds: " + " ".join(f"{k}={v:.1f}s" for k, v in slowest.items())
        return text


def scale_ensure(*, customers: int, reuse: bool, processes: int | None = None) -> ScaleData:
    """The generated data at this scale: reused when the database already holds exactly it (and reuse is
    asked), otherwise loaded. The organisation, tags and channels are made first when missing."""
    with timed() as org:
        staff = org_ensure(customers=customers)
        tags, channels = tags_and_channels()
    marker = scale_marker(customers=customers, staff=staff) if reuse else None
    if marker:
        return ScaleData(customers=customers, relationships=marker["relationships"], members=marker["members"],
                         staff=staff, tags=tags, channels=channels, timings=marker["timings"], reused=True,
                         detail=marker.get("detail", {}),
                         org_seconds=org.seconds)
    processes = processes or int(os.environ.get("BENCH_SCALE_PROCS", os.cpu_count() or 2))
    with timed() as prepare:
        ctx = _context(staff, tags, channels)
    loaded = _load(customers=customers, ctx=ctx, processes=processes, prepare_seconds=prepare.seconds)
    timings = loaded["timings"]
    return ScaleData(customers=customers, relationships=loaded["relationships"], members=loaded["members"],
                     staff=staff, tags=tags, channels=channels, timings=timings, reused=False, detail=loaded["detail"],
                     org_seconds=org.seconds)


def reuse_wanted(default: bool = False) -> bool:
    value = os.environ.get("BENCH_REUSE")
    return default if value is None else value == "1"


# -- the benchmark: COPY pipeline vs Django bulk_create --------------------------------------------------
def _parse(text: str, columns: str, arrays: tuple[str, ...] = ("tag_ids", "remark_mobiles")) -> list[dict]:
    names = [c.strip() for c in columns.split(",")]
    rows = []
    for line in text.splitlines():
        row = {}
        for name, value in zip(names, line.split("\t"), strict=True):
            if value == "\\N":
                value = None
            elif name in arrays:
                value = [int(v) for v in value[1:-1].split(",") if v] if name == "tag_ids" else []
            row[name] = value
        rows.append(row)
    return rows


def _naive_baseline(*, start: int, count: int, staff, tags, channels) -> tuple[float, int]:
    """Django bulk_create (batches of 1,000) of ``count`` more customers with their relationships and
    members, into the loaded, indexed tables, rolled back: (seconds, rows). Then VACUUM, so the rolled-back
    rows leave no dead index entries or not-all-visible pages behind in the data other benchmarks reuse."""
    from django.db import connection, transaction

    from customers.models import Customer, Member, Relationship

    ctx = _context(staff, tags, channels)
    customers, relationships, members, _r, _m = _generate(ctx, random.Random(SEED - 1), start, count)
    rows = {Customer: _parse(customers, CUSTOMER_COLUMNS), Relationship: _parse(relationships, RELATIONSHIP_COLUMNS),
            Member: _parse(members, MEMBER_COLUMNS)}
    total = sum(len(r) for r in rows.values())
    with transaction.atomic(), timed() as t:
        for model in (Member, Customer, Relationship):
            model.objects.bulk_create([model(**row) for row in rows[model]], batch_size=1000)
        transaction.set_rollback(True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (INDEX_CLEANUP ON) {', '.join(LOADED_TABLES)}")
    return t.seconds, total


def bench_scale(*, scale: int) -> str:
    data = scale_ensure(customers=scale, reuse=reuse_wanted())
    sample = min(BASELINE_SAMPLE, max(1000, scale // 10))
    naive_s, naive_rows = _naive_baseline(start=scale + 1, count=sample, staff=data.staff, tags=data.tags,
                                          channels=data.channels)
    naive_rate = naive_rows / naive_s
    rate = data.rows / data.load_seconds
    print(f"customers={data.customers} relationships={data.relationships} members={data.members} "
          f"staff={len(data.staff)} stores={len({s[1] for s in data.staff})} org={data.org_seconds:.1f}s")
    print(("reused (timings recorded at load): " if data.reused else "load: ")
          + f"total={data.load_seconds:.1f}s → {rate:,.0f} rows/s; " + data.timings_text())
    print(f"baseline: Django bulk_create of {naive_rows} rows ({sample} customers + relationships + members) into "
          f"the loaded tables: {naive_s:.1f}s = {naive_rate:,.0f} rows/s; extrapolated to {data.rows} rows: "
          f"{data.rows / naive_rate / 60:.1f} min")
    return result_line(bench="scale", value=rate, unit="rows/s", baseline=naive_rate, higher_is_better=True)
