"""Writes to the material library: create, new version, restore, publish, archive, audience, expiry.

Files reach the storage *before* the database transaction that records them (a storage failure records
nothing) and are discarded if that transaction fails and no other version holds the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from materials.library.models import (
    FILE_KINDS,
    Folder,
    Material,
    MaterialKind,
    MaterialStatus,
    MaterialTag,
    MaterialVersion,
    version_fields,
)
from portal.audit import audit_record
from portal.errors import DomainError
from portal.models import User
from stores.access.scoping import ScopeKind, user_scope
from stores.org.models import Franchisee, Region, Store


class MaterialRefused(DomainError):
    """A material action refused: the message says why."""


SCRIPT_VARIABLES = ("客户称呼", "导购姓名", "门店名称", "门店地址", "营业时间")
MOMENTS_TEXT_MAX = 2000  # WeCom: Moments text ≤ 2,000 characters
MOMENTS_IMAGES_MAX = 9


def _publisher_owner(by: User) -> int | None:
    """Who publishes decides whose material it is: HQ's (None) or a franchisee's own; nobody else publishes."""
    scope = user_scope(by)
    if scope.is_hq:
        return None
    if scope.kind == ScopeKind.FRANCHISEE and scope.franchisee_id:
        return scope.franchisee_id
    raise MaterialRefused(_("只有总部和加盟商可以发布素材"))


def material_editable_check(*, material: Material, by: User) -> None:
    """HQ changes any material; a franchisee only its own; nobody else any."""
    scope = user_scope(by)
    if scope.is_hq:
        return
    if scope.kind == ScopeKind.FRANCHISEE and material.owner_franchisee_id == scope.franchisee_id:
        return
    raise MaterialRefused(_("这份素材由总部维护，你只能查看和使用"))


def _window_check(valid_from: datetime | None, expires_at: datetime | None) -> None:
    if valid_from and expires_at and expires_at <= valid_from:
        raise MaterialRefused(_("失效时间必须晚于生效时间"))


def material_create(*, by: User, kind: str, title: str, description: str = "", folder: Folder | None = None,
                    tags: Iterable[MaterialTag] = (), valid_from: datetime | None = None,
                    expires_at: datetime | None = None) -> Material:
    """A draft material with no version yet; a franchisee's is its own (local) material."""
    if kind not in MaterialKind.values:
        raise MaterialRefused(_("未知的素材类型：%(kind)s") % {"kind": kind})
    title = (title or "").strip()
    if not title:
        raise MaterialRefused(_("请填写素材标题"))
    _window_check(valid_from, expires_at)
    owner = _publisher_owner(by)
    material = Material.objects.create(kind=kind, title=title[:128], description=description, folder=folder,
                                       valid_from=valid_from, expires_at=expires_at, owner_franchisee_id=owner,
                                       created_by=by, search_text=_search_text(title, description, ""))
    if owner is not None:
        material.audience_all = True  # a franchisee's material reaches its own stores unless narrowed
        material.save(update_fields=["audience_all"])
    material.tags.set(list(tags))
    audit_record(action="material.create", target_type="materials.Material", target_ids=[material.pk], by=by,
                 detail={"kind": kind, "owner_franchisee": owner})
    return material


def material_update(*, material: Material, by: User, title: str | None = None, description: str | None = None,
                    folder: Folder | None | object = ..., tags: Iterable[MaterialTag] | None = None,
                    valid_from: datetime | None | object = ..., expires_at: datetime | None | object = ...) -> Material:
    """Change what describes a material (not its content: that is a new version)."""
    material_editable_check(material=material, by=by)
    changed: dict[str, Any] = {}
    if title is not None:
        if not title.strip():
            raise MaterialRefused(_("请填写素材标题"))
        changed["title"] = title.strip()[:128]
    if description is not None:
        changed["description"] = description
    if folder is not ...:
        changed["folder"] = folder
    if valid_from is not ...:
        changed["valid_from"] = valid_from
    if expires_at is not ...:
        changed["expires_at"] = expires_at
        changed["expiry_warned_at"] = None  # a new end date deserves a new reminder
        changed["expiry_done_at"] = None
    for name, value in changed.items():
        setattr(material, name, value)
    _window_check(material.valid_from, material.expires_at)
    current_text = material.current_version.text if material.current_version is not None else ""
    material.search_text = _search_text(material.title, material.description, current_text)
    material.save()
    if tags is not None:
        material.tags.set(list(tags))
    audit_record(action="material.update", target_type="materials.Material", target_ids=[material.pk], by=by,
                 detail={"fields": sorted(changed)})
    return material


def _search_text(title: str, description: str, text: str) -> str:
    return "\n".join(part for part in (title, description, text) if part)[:6000]


# -- audience ----------------------------------------------------------------------------------------------

def material_audience_set(*, material: Material, by: User, everyone: bool = False,
                          regions: Iterable[Region] = (), franchisees: Iterable[Franchisee] = (),
                          store_kinds: Iterable[str] = (), stores: Iterable[Store] = ()) -> Material:
    """Who the material reaches (united). A franchisee's own material: all its stores, or some of them."""
    material_editable_check(material=material, by=by)
    regions, franchisees, stores = list(regions), list(franchisees), list(stores)
    store_kinds = list(dict.fromkeys(store_kinds))
    unknown = [k for k in store_kinds if k not in Store.Kind.values]
    if unknown:
        raise MaterialRefused(_("未知的门店类型：%(kinds)s") % {"kinds": "、".join(unknown)})
    if material.owner_franchisee_id is not None:
        if regions or franchisees or store_kinds:
            raise MaterialRefused(_("加盟商素材只能选择“本加盟商全部门店”或其中的门店"))
        foreign = [s.name for s in stores if s.franchisee_id != material.owner_franchisee_id]
        if foreign:
            raise MaterialRefused(_("这些门店不属于你的加盟商：%(stores)s") % {"stores": "、".join(foreign[:5])})
    with transaction.atomic():
        material.audience_all = everyone
        material.audience_store_kinds = store_kinds
        material.save(update_fields=["audience_all", "audience_store_kinds", "updated_at"])
        material.audience_regions.set(regions)
        material.audience_franchisees.set(franchisees)
        material.audience_stores.set(stores)
        audit_record(action="material.audience", target_type="materials.Material", target_ids=[material.pk],
                     by=by, detail={"everyone": everyone, "regions": [r.pk for r in regions],
                                    "franchisees": [f.pk for f in franchisees], "store_kinds": store_kinds,
                                    "stores": [s.pk for s in stores]})
    return material


# -- versions ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VersionContent:
    """What a new version holds; which parts a kind needs is checked by ``version_content_check``."""

    data: bytes | None = None
    file_name: str = ""
    text: str = ""
    link_url: str = ""
    link_title: str = ""
    miniprogram_appid: str = ""
    miniprogram_page: str = ""
    layout: Any = None
    attachment_ids: tuple[int, ...] = ()


def version_content_check(*, kind: str, content: VersionContent) -> None:
    """The parts each kind needs, in our words, before anything is stored."""
    if kind in FILE_KINDS and not content.data:
        raise MaterialRefused(_("请上传文件"))
    if kind == MaterialKind.SCRIPT:
        if not content.text.strip():
            raise MaterialRefused(_("请填写话术内容"))
        script_variables_check(text=content.text)
    if kind == MaterialKind.LINK and not content.link_url:
        raise MaterialRefused(_("请填写链接地址"))
    if kind == MaterialKind.LINK and not content.link_url.startswith(("https://", "http://")):
        raise MaterialRefused(_("链接地址必须以 http:// 或 https:// 开头"))
    if kind == MaterialKind.MINIPROGRAM:
        if not content.miniprogram_appid or not content.miniprogram_page or not content.link_title:
            raise MaterialRefused(_("小程序卡片需要 AppID、页面路径和标题"))
        if not content.data:
            raise MaterialRefused(_("小程序卡片需要一张封面图"))
    if kind == MaterialKind.MOMENTS:
        _moments_check(content)


def script_variables_check(*, text: str) -> None:
    """Scripts name their variables as {客户称呼}; an unknown one would be sent as typed."""
    import re

    unknown = sorted({name for name in re.findall(r"\{([^{}]{1,20})\}", text) if name not in SCRIPT_VARIABLES})
    if unknown:
        raise MaterialRefused(_("话术里有未知的变量：%(names)s。可用的变量：%(known)s") % {
            "names": "、".join(f"{{{n}}}" for n in unknown), "known": "、".join(f"{{{n}}}" for n in SCRIPT_VARIABLES)})


def _moments_check(content: VersionContent) -> None:
    if len(content.text) > MOMENTS_TEXT_MAX:
        raise MaterialRefused(_("朋友圈文字最多 %(max)d 字") % {"max": MOMENTS_TEXT_MAX})
    attached = list(Material.objects.filter(pk__in=content.attachment_ids).values_list("pk", "kind"))
    if len(attached) != len(set(content.attachment_ids)):
        raise MaterialRefused(_("朋友圈模板引用了不存在的素材"))
    kinds = [kind for _pk, kind in attached]
    if not content.text.strip() and not kinds:
        raise MaterialRefused(_("朋友圈模板至少要有文字或一个附件"))
    images = kinds.count(MaterialKind.IMAGE)
    others = [k for k in kinds if k != MaterialKind.IMAGE]
    if others and (images or len(others) > 1 or others[0] not in (MaterialKind.VIDEO, MaterialKind.LINK)):
        raise MaterialRefused(_("朋友圈只能附 9 张以内图片，或 1 个视频，或 1 个链接"))
    if images > MOMENTS_IMAGES_MAX:
        raise MaterialRefused(_("朋友圈最多附 9 张图片"))


def material_version_add(*, material: Material, by: User, content: VersionContent, note: str = "") -> MaterialVersion:
    """A new version becomes the current one; the old ones stay, browsable and restorable."""
    material_editable_check(material=material, by=by)
    if material.status == MaterialStatus.ARCHIVED:
        raise MaterialRefused(_("素材已归档，请先恢复再上传新版本"))
    version_content_check(kind=material.kind, content=content)
    file_fields = _file_fields_store(kind=material.kind, content=content)
    try:
        with transaction.atomic():
            version = _version_insert(material=material, by=by, note=note, fields={
                **file_fields, "text": content.text, "link_url": content.link_url, "link_title": content.link_title,
                "miniprogram_appid": content.miniprogram_appid, "miniprogram_page": content.miniprogram_page,
                "layout": content.layout, "attachment_ids": list(content.attachment_ids)})
    except BaseException:
        _file_fields_discard(file_fields)
        raise
    return version


def _file_fields_store(*, kind: str, content: VersionContent) -> dict[str, Any]:
    """Checks and stores the uploaded file (and its thumbnail) before any row is written."""
    if not content.data:
        return {}
    from materials.library.files import file_inspect, thumbnail_make
    from materials.library.storage import file_store

    file_kind = MaterialKind.IMAGE if kind == MaterialKind.MINIPROGRAM else kind
    facts = file_inspect(data=content.data, filename=content.file_name, kind=file_kind)
    if kind == MaterialKind.POSTER_TEMPLATE:
        from materials.posters.layout import (
            layout_validate,
        )

        layout_validate(layout=content.layout, width=facts.width or 0, height=facts.height or 0)
    name = file_store(data=content.data, facts=facts)
    thumbnail = ""
    thumb = thumbnail_make(data=content.data, facts=facts)
    if thumb:
        thumb_facts = file_inspect(data=thumb, filename="thumbnail.jpg", kind=MaterialKind.IMAGE)
        thumbnail = file_store(data=thumb, facts=thumb_facts, prefix="thumbnails")
    return {"file": name, "file_name": content.file_name[:255], "mime": facts.mime, "size": facts.size,
            "sha256": facts.sha256, "width": facts.width, "height": facts.height, "pages": facts.pages,
            "duration_seconds": facts.duration_seconds, "thumbnail": thumbnail}


def _file_fields_discard(fields: dict[str, Any]) -> None:
    from materials.library.storage import file_discard

    for key in ("file", "thumbnail"):
        name = fields.get(key)
        if name and not MaterialVersion.objects.filter(Q(file=name) | Q(thumbnail=name)).exists():
            file_discard(name=name)


def _version_insert(*, material: Material, by: User | None, note: str, fields: dict[str, Any],
                    restored_from: MaterialVersion | None = None) -> MaterialVersion:
    Material.objects.select_for_update().filter(pk=material.pk).first()  # numbers are given one at a time
    number = (material.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    try:
        version = MaterialVersion.objects.create(material=material, number=number, note=note[:200], created_by=by,
                                                 restored_from=restored_from, **fields)
    except IntegrityError as exc:  # pragma: no cover - the row lock above makes this a bug, not a race
        raise MaterialRefused(_("版本号冲突，请重试")) from exc
    material.current_version = version
    material.search_text = _search_text(material.title, material.description, version.text)
    material.save(update_fields=["current_version", "search_text", "updated_at"])
    audit_record(action="material.version", target_type="materials.Material", target_ids=[material.pk], by=by,
                 detail={"version": number, "restored_from": restored_from.number if restored_from else None})
    version_changed_notify(material_ids=[material.pk])
    return version


def material_version_restore(*, version: MaterialVersion, by: User, note: str = "") -> MaterialVersion:
    """An older version becomes current again, as a new version (history only grows)."""
    material = version.material
    material_editable_check(material=material, by=by)
    if material.status == MaterialStatus.ARCHIVED:
        raise MaterialRefused(_("素材已归档，请先恢复再切换版本"))
    if material.current_version_id == version.pk:
        raise MaterialRefused(_("这已经是当前版本"))
    with transaction.atomic():
        return _version_insert(material=material, by=by, restored_from=version,
                               note=note or _("恢复自第 %(n)d 版") % {"n": version.number},
                               fields={name: getattr(version, name) for name in version_fields()})


# -- lifecycle ---------------------------------------------------------------------------------------------

def material_publish(*, material: Material, by: User) -> Material:
    material_editable_check(material=material, by=by)
    if material.current_version_id is None:
        raise MaterialRefused(_("请先上传内容（第一个版本）再发布"))
    if material.expires_at and material.expires_at <= timezone.now():
        raise MaterialRefused(_("素材已过失效时间，请先修改失效时间再发布"))
    if material.status == MaterialStatus.PUBLISHED:
        return material
    material.status = MaterialStatus.PUBLISHED
    material.save(update_fields=["status", "updated_at"])
    audit_record(action="material.publish", target_type="materials.Material", target_ids=[material.pk], by=by)
    return material


def material_archive(*, material: Material, by: User) -> Material:
    """Retired: gone from stores' views, attachable to nothing new; pending uses are withdrawn."""
    material_editable_check(material=material, by=by)
    if material.status == MaterialStatus.ARCHIVED:
        return material
    material.status = MaterialStatus.ARCHIVED
    material.save(update_fields=["status", "updated_at"])
    audit_record(action="material.archive", target_type="materials.Material", target_ids=[material.pk], by=by)
    materials_withdrawn_notify(material_ids=[material.pk], reason="archived")
    return material


def material_unarchive(*, material: Material, by: User) -> Material:
    """Back to a draft (publish it again on purpose)."""
    material_editable_check(material=material, by=by)
    if material.status != MaterialStatus.ARCHIVED:
        raise MaterialRefused(_("只有已归档的素材可以恢复"))
    material.status = MaterialStatus.DRAFT
    material.save(update_fields=["status", "updated_at"])
    audit_record(action="material.unarchive", target_type="materials.Material", target_ids=[material.pk], by=by)
    return material


def materials_bulk_archive(*, materials, by: User) -> int:
    """The admin's bulk action: archives those the user may change, one audited UPDATE."""
    scope = user_scope(by)
    editable = materials.exclude(status=MaterialStatus.ARCHIVED)
    if not scope.is_hq:
        editable = editable.filter(owner_franchisee_id=scope.franchisee_id or -1)
    ids = list(editable.values_list("pk", flat=True))
    if not ids:
        return 0
    Material.objects.filter(pk__in=ids).update(status=MaterialStatus.ARCHIVED, updated_at=timezone.now())
    audit_record(action="material.archive", target_type="materials.Material", target_ids=ids, by=by)
    materials_withdrawn_notify(material_ids=ids, reason="archived")
    return len(ids)


# -- what others do when a material changes (campaigns register; materials imports nothing of theirs) ----------

WithdrawnListener = Callable[[list[int], str], None]
_withdrawn_listeners: dict[str, WithdrawnListener] = {}
_version_listeners: dict[str, Callable[[list[int]], None]] = {}


def materials_withdrawn_listen(*, name: str, listener: WithdrawnListener) -> None:
    """``listener(material_ids, reason)`` runs (after commit) when materials are archived or expire: pending
    tasks and sends that attach them take them out and tell their owners."""
    from portal.registry import registry_add

    registry_add(_withdrawn_listeners, name, listener, what="materials_withdrawn listener")


def material_version_listen(*, name: str, listener: Callable[[list[int]], None]) -> None:
    from portal.registry import registry_add

    registry_add(_version_listeners, name, listener, what="material_version listener")


def materials_withdrawn_notify(*, material_ids: list[int], reason: str) -> None:
    for listener in _withdrawn_listeners.values():
        transaction.on_commit(functools.partial(listener, list(material_ids), reason))


def version_changed_notify(*, material_ids: list[int]) -> None:
    for version_listener in _version_listeners.values():
        transaction.on_commit(functools.partial(version_listener, list(material_ids)))


# -- expiry (beat) -----------------------------------------------------------------------------------------

EXPIRY_WARN_DAYS = 3

WARN_SQL = """
UPDATE materials_material SET expiry_warned_at = %(now)s
WHERE status = 'published' AND expires_at > %(now)s AND expires_at <= %(until)s AND expiry_warned_at IS NULL
RETURNING id, title, expires_at, created_by_id
"""

EXPIRE_SQL = """
UPDATE materials_material SET expiry_done_at = %(now)s
WHERE status = 'published' AND expires_at <= %(now)s AND expiry_done_at IS NULL
RETURNING id, title, created_by_id
"""


@dataclass(frozen=True)
class ExpiryResult:
    warned: int
    expired: int


def materials_expiry_run(*, now: datetime | None = None, warn_days: int = EXPIRY_WARN_DAYS) -> ExpiryResult:
    """Tell owners a few days ahead; when the time comes, withdraw the material from pending uses.

    Expired materials already vanish from every view by the ``usable`` filter; this is the telling and the
    withdrawing, once each (the UPDATE … RETURNING claims the rows, so two runs never tell twice).
    """
    from django.db import connection

    from stores.notices.services import notices_send

    now = now or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WARN_SQL, {"now": now, "until": now + timedelta(days=warn_days)})
        warned = cursor.fetchall()
        cursor.execute(EXPIRE_SQL, {"now": now})
        expired = cursor.fetchall()
        for pk, title, expires_at, owner_id in warned:
            if owner_id:
                notices_send(user_ids=[owner_id], title=_("素材即将过期：%(title)s") % {"title": title},
                             body=_("将于 %(at)s 失效，届时门店将看不到它，未开始的任务和群发也会撤下它。"
                                    "如需继续使用，请延长失效时间。") % {
                                 "at": timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M")},
                             link=f"/admin/materials/material/{pk}/change/")
        for pk, title, owner_id in expired:
            if owner_id:
                notices_send(user_ids=[owner_id], title=_("素材已过期：%(title)s") % {"title": title},
                             body=_("门店已看不到它，未开始的任务和群发已撤下它。"),
                             link=f"/admin/materials/material/{pk}/change/")
        if expired:
            materials_withdrawn_notify(material_ids=[row[0] for row in expired], reason="expired")
    return ExpiryResult(warned=len(warned), expired=len(expired))
