"""The materials part of the demo (``seed_demo``): a small library as HQ and a franchisee would curate it.

Made through the same services the admin uses: folders and tags; a poster template published to 华东大区 only
(every guide there gets a poster with their own code, another region cannot see it); scripts with variables;
a link, an image for direct stores, a franchisee's own material; one that expired yesterday (gone from the
mobile page, its owner told) and one that expires in two days (its owner warned). Two weeks of use are recorded
through the usage service so the admin's analytics have something to draw. Idempotent: materials are found by
title, folders and tags by name; a second run makes nothing.
"""

from __future__ import annotations

import io
import random
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from materials.library.models import Folder, Material, MaterialKind, MaterialTag
from materials.library.services import (
    VersionContent,
    material_audience_set,
    material_create,
    material_publish,
    material_update,
    material_version_add,
    materials_expiry_run,
)
from stores.models import Access, Franchisee, Region, Role, Staff, Store

POSTER_TITLE = "门店专属海报·华东（一人一码）"
EXPIRED_TITLE = "夏季限定陈列图（已过期）"
POSTER_LAYOUT = {"elements": [
    {"type": "text", "field": "store_name", "x": 60, "y": 200, "width": 630, "height": 130, "font_size": 52,
     "min_font_size": 30, "color": "#1a1a1a", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_address", "x": 60, "y": 350, "width": 630, "height": 80, "font_size": 28,
     "min_font_size": 20, "color": "#555555", "align": "center", "max_lines": 2},
    {"type": "text", "field": "store_hours", "x": 60, "y": 440, "width": 630, "height": 40, "font_size": 26,
     "color": "#555555", "align": "center"},
    {"type": "text", "field": "staff_name", "x": 60, "y": 1120, "width": 380, "height": 60, "font_size": 40,
     "min_font_size": 24, "color": "#c8102e"},
    {"type": "text", "field": "text", "text": "扫码添加您的专属店小二", "x": 60, "y": 1190, "width": 380,
     "height": 40, "font_size": 26},
    {"type": "qr", "x": 470, "y": 1060, "size": 220},
]}


def _background_png() -> bytes:
    """A plain poster background drawn here (no image file in the repository)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (750, 1334), "#fff7e6")
    draw = ImageDraw.Draw(image)
    for y in range(0, 160):
        draw.line([(0, y), (750, y)], fill=(200 - y // 4, 16, 46))
    draw.rectangle([40, 560, 710, 1000], outline="#c8102e", width=6)
    draw.rectangle([440, 1030, 720, 1310], fill="#ffffff")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image_png(color: str) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (640, 640), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _made(by, *, kind: str, title: str, content: VersionContent, folder: Folder | None, tags: list[MaterialTag],
          audience: dict, description: str = "", expires_in: timedelta | None = None) -> Material:
    existing = Material.objects.filter(title=title).first()
    if existing is not None:
        return existing
    now = timezone.now()
    expires_at = now + expires_in if expires_in is not None else None
    valid_from = now - timedelta(days=30) if expires_at else None
    material = material_create(by=by, kind=kind, title=title, description=description, folder=folder, tags=tags,
                               valid_from=valid_from, expires_at=max(expires_at, now + timedelta(hours=1))
                               if expires_at else None)
    material_version_add(material=material, by=by, content=content)
    material_audience_set(material=material, by=by, **audience)
    material = material_publish(material=material, by=by)
    if expires_at is not None and expires_at <= now:  # ended early by its owner, as an operator may
        material = material_update(material=material, by=by, expires_at=expires_at)
    return material


def _usage_record(materials: list[Material]) -> int:
    """Two weeks of views, copies and shares by the staff of the stores each material reaches."""
    from materials.library.selectors import material_audience_stores
    from materials.usage.models import MaterialUse
    from materials.usage.services import material_use_record, material_uses_flush

    if MaterialUse.objects.exists():
        return 0
    rng = random.Random(20261203)  # the same demo every time
    now, recorded = time.time(), 0
    for material in materials:
        staff = list(Staff.objects.filter(store__in=material_audience_stores(material=material), status="active")
                     .values_list("pk", "store_id")[:60])
        for staff_id, store_id in staff:
            for _ in range(rng.randint(0, 6)):
                action = rng.choice(("view", "view", "view", "copy", "share", "download"))
                material_use_record(material_id=material.pk, version_id=material.current_version_id or 0,
                                    store_id=store_id, staff_id=staff_id, user_id=None, action=action,
                                    at=now - rng.uniform(0, 14 * 86400))
                recorded += 1
    material_uses_flush()
    return recorded


def materials_demo_run() -> str:
    user_model = get_user_model()
    hq = user_model.objects.filter(username="hq_operator").first()
    if hq is None:
        return "素材：跳过（没有演示总部账号）"
    east = Region.objects.filter(name="华东大区").first()
    folders = {name: Folder.objects.get_or_create(name=name, parent=None, defaults={"order": order})[0]
               for order, name in enumerate(("海报", "话术", "活动", "陈列", "朋友圈"))}
    tags = {name: MaterialTag.objects.get_or_create(name=name)[0] for name in ("新品", "会员日", "开业", "中秋")}
    made = [
        _made(hq, kind=MaterialKind.POSTER_TEMPLATE, title=POSTER_TITLE, folder=folders["海报"], tags=[tags["开业"]],
              description="每位导购一张，印着门店信息和自己的企业微信二维码",
              content=VersionContent(data=_background_png(), file_name="poster-east.png", layout=POSTER_LAYOUT),
              audience={"regions": [east] if east else []}),
        _made(hq, kind=MaterialKind.SCRIPT, title="本周新品推荐话术", folder=folders["话术"], tags=[tags["新品"]],
              content=VersionContent(text="{客户称呼}您好，我是{门店名称}的{导购姓名}。本周新品桂花拿铁上市，"
                                          "到店报我的名字第二杯半价，营业时间{营业时间}，地址{门店地址}。"),
              audience={"everyone": True}),
        _made(hq, kind=MaterialKind.SCRIPT, title="会员日邀约话术", folder=folders["话术"], tags=[tags["会员日"]],
              content=VersionContent(text="{客户称呼}，本周六是{门店名称}会员日，全场九折，我给您留座～"),
              audience={"everyone": True}),
        _made(hq, kind=MaterialKind.LINK, title="中秋礼盒预订指南", folder=folders["活动"], tags=[tags["中秋"]],
              content=VersionContent(link_url="https://example.com/mid-autumn", link_title="中秋礼盒预订指南"),
              audience={"everyone": True}),
        _made(hq, kind=MaterialKind.IMAGE, title="直营店新品陈列图", folder=folders["陈列"], tags=[tags["新品"]],
              content=VersionContent(data=_image_png("#f4d35e"), file_name="display.png"),
              audience={"store_kinds": [Store.Kind.DIRECT]}, expires_in=timedelta(days=2)),
        _made(hq, kind=MaterialKind.IMAGE, title=EXPIRED_TITLE, folder=folders["陈列"], tags=[],
              content=VersionContent(data=_image_png("#8ecae6"), file_name="summer.png"),
              audience={"everyone": True}, expires_in=timedelta(days=-1)),
    ]
    owner = Access.objects.filter(role=Role.FRANCHISEE_OWNER).select_related("user", "franchisee").first()
    if owner is not None and isinstance(owner.franchisee, Franchisee):
        made.append(_made(owner.user, kind=MaterialKind.SCRIPT, title=f"{owner.franchisee.name}·本店开业话术",
                          folder=folders["话术"], tags=[tags["开业"]],
                          content=VersionContent(text="{客户称呼}您好，{门店名称}新店开业，到店即送小食一份。"),
                          audience={"everyone": True}))
    expiry = materials_expiry_run()
    used = _usage_record([m for m in made if m.title != EXPIRED_TITLE])
    return (f"素材：{Material.objects.count()} 个（海报模板发布到华东大区），到期提醒 {expiry.warned}、"
            f"过期撤下 {expiry.expired}，使用记录 {used} 条")
