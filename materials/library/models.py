"""The material library (素材库): materials, their versions (kept forever), folders, tags and audiences.

A material is what people name and find ("618 门店海报"); each upload or edit of its content is a new
``MaterialVersion`` (insert-only, enforced by a database trigger), and ``Material.current_version`` points at
the one in use. Tasks and sends point at the material and record the version that went out.

Who sees a material is its *audience* (everyone / regions with their sub-regions / franchisees / store kinds /
stores, any combination, united), read through the one scoping mechanism: ``MaterialQuerySet.for_scope``.
A franchisee's own (local) material reaches only that franchisee's stores, whatever its audience says.
"""

from __future__ import annotations

from typing import Any, Self, TypeVar

import pgtrigger
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import GlobalQuerySet, ScopedQuerySet, ScopeKind, UserScope
from stores.org.models import Franchisee, Region, Store, upper_trigram_index

_M = TypeVar("_M", bound=models.Model)


class MaterialKind(models.TextChoices):
    IMAGE = "image", _("图片/海报")
    POSTER_TEMPLATE = "poster_template", _("海报模板")
    VIDEO = "video", _("视频")
    FILE = "file", _("文件")
    LINK = "link", _("图文链接")
    MINIPROGRAM = "miniprogram", _("小程序卡片")
    SCRIPT = "script", _("话术")
    MOMENTS = "moments", _("朋友圈模板")


FILE_KINDS = frozenset({MaterialKind.IMAGE, MaterialKind.POSTER_TEMPLATE, MaterialKind.VIDEO, MaterialKind.FILE})


class FolderQuerySet(GlobalQuerySet[_M]):
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = ("the library's folder tree is brand-wide navigation, as every store browses it: every role "
                    "reads it; only HQ edits (permission)")


class Folder(models.Model):
    name = models.CharField(_("名称"), max_length=64)
    parent = models.ForeignKey("self", verbose_name=_("上级文件夹"), null=True, blank=True,
                               on_delete=models.PROTECT, related_name="children")
    order = models.IntegerField(_("排序"), default=0)

    objects = FolderQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材文件夹")
        verbose_name_plural = _("素材文件夹")
        ordering = ["-order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="folder_unique_name", nulls_distinct=False),
            models.CheckConstraint(condition=~Q(parent=models.F("pk")), name="folder_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name


class MaterialTagQuerySet(GlobalQuerySet[_M]):
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = "material tags are brand-wide labels to filter by: every role reads them; only HQ edits"


class MaterialTag(models.Model):
    name = models.CharField(_("标签"), max_length=32, unique=True)

    objects = MaterialTagQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材标签")
        verbose_name_plural = _("素材标签")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


REGION_ANCESTORS_SQL = """
WITH RECURSIVE up(id, parent_id) AS (
    SELECT r.id, r.parent_id FROM stores_region r WHERE r.id = ANY(%s)
    UNION
    SELECT r.id, r.parent_id FROM stores_region r JOIN up ON r.id = up.parent_id
)
SELECT id FROM up
"""


class MaterialQuerySet(ScopedQuerySet[_M]):
    """A viewer sees a material when its audience reaches at least one store of the viewer's scope.

    Audience parts are united, so "reaches a store of the scope" is one cheap test per part against the scope's
    stores (exact, because OR distributes over EXISTS). A franchisee's own material reaches that franchisee's
    stores only: all of them, or the ones chosen (its audience offers nothing else; the service refuses more).
    """

    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.NONE:
            return self.none()
        stores = Store.objects.filter(scope.store_q())
        return self.filter(audience_reaches_q(stores=stores))

    def usable(self, *, at=None) -> Self:
        """Published and inside its validity window: what may be used, attached or sent now."""
        now = at or timezone.now()
        return self.filter(Q(valid_from__isnull=True) | Q(valid_from__lte=now),
                           Q(expires_at__isnull=True) | Q(expires_at__gt=now),
                           status=MaterialStatus.PUBLISHED, current_version__isnull=False)


def region_ancestor_ids(*, region_ids: list[int]) -> list[int]:
    """The regions given and every region above them: a material for 华东 reaches a store in 上海."""
    if not region_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(REGION_ANCESTORS_SQL, [region_ids])
        return [row[0] for row in cursor.fetchall()]


def audience_reaches_q(*, stores: models.QuerySet[Store]) -> Q:
    """Q on Material: its audience reaches at least one of ``stores`` (kept in SQL, but for the few regions).

    Every part is an uncorrelated ``id IN (…)`` that PostgreSQL runs once as a hashed subplan, so a list ordered
    by recency walks its index and probes each row in a hash. Correlated EXISTS parts cost a subquery per row:
    a store manager's first page over 200,000 materials took 200 ms that way (bench material_search).
    """
    stores = stores.order_by()
    store_ids = stores.values("pk")
    region_ids = region_ancestor_ids(region_ids=list(stores.values_list("region_id", flat=True).distinct()))
    franchisee_ids = stores.filter(franchisee__isnull=False).values("franchisee_id")
    brand = (Q(audience_all=True)
             | Q(pk__in=Material.audience_regions.through.objects.filter(region_id__in=region_ids)
                 .values("material_id"))
             | Q(pk__in=Material.audience_franchisees.through.objects.filter(franchisee_id__in=franchisee_ids)
                 .values("material_id"))
             | Q(audience_store_kinds__overlap=list(stores.values_list("kind", flat=True).distinct()))
             | Q(pk__in=Material.audience_stores.through.objects.filter(store_id__in=store_ids)
                 .values("material_id")))
    # A local material picks its stores among its owner's own: a chosen store counts only if it is the owner's.
    local = ((Q(audience_all=True) & Q(owner_franchisee_id__in=franchisee_ids))
             | Q(pk__in=Material.audience_stores.through.objects.filter(
                 store_id__in=store_ids, store__franchisee_id=F("material__owner_franchisee_id"))
                 .values("material_id")))
    return (Q(owner_franchisee__isnull=True) & brand) | (Q(owner_franchisee__isnull=False) & local)


class MaterialStatus(models.TextChoices):
    DRAFT = "draft", _("草稿")
    PUBLISHED = "published", _("已发布")
    ARCHIVED = "archived", _("已归档")


class Material(models.Model):
    Kind = MaterialKind
    Status = MaterialStatus

    kind = models.CharField(_("类型"), max_length=16, choices=MaterialKind.choices)
    title = models.CharField(_("标题"), max_length=128)
    description = models.TextField(_("说明"), blank=True, max_length=2000)
    folder = models.ForeignKey(Folder, verbose_name=_("文件夹"), null=True, blank=True, on_delete=models.PROTECT,
                               related_name="materials")
    tags = models.ManyToManyField(MaterialTag, verbose_name=_("标签"), blank=True, related_name="materials")
    status = models.CharField(_("状态"), max_length=16, choices=MaterialStatus.choices, default=MaterialStatus.DRAFT)
    valid_from = models.DateTimeField(_("生效时间"), null=True, blank=True)
    expires_at = models.DateTimeField(_("失效时间"), null=True, blank=True, db_index=True)
    expiry_warned_at = models.DateTimeField(_("到期提醒时间"), null=True, blank=True, editable=False)
    expiry_done_at = models.DateTimeField(_("过期处理时间"), null=True, blank=True, editable=False)
    current_version = models.ForeignKey("MaterialVersion", verbose_name=_("当前版本"), null=True, blank=True,
                                        on_delete=models.PROTECT, related_name="+", editable=False)
    # Audience: united. Nothing chosen reaches nobody (a draft being prepared); HQ still sees it.
    audience_all = models.BooleanField(_("全品牌可见"), default=False)
    audience_regions = models.ManyToManyField(Region, verbose_name=_("可见区域（含下级）"), blank=True,
                                              related_name="+")
    audience_franchisees = models.ManyToManyField(Franchisee, verbose_name=_("可见加盟商"), blank=True,
                                                  related_name="+")
    audience_store_kinds = ArrayField(models.CharField(max_length=16, choices=Store.Kind.choices),
                                      verbose_name=_("可见门店类型"), default=list, blank=True)
    audience_stores = models.ManyToManyField(Store, verbose_name=_("可见门店"), blank=True, related_name="+")
    owner_franchisee = models.ForeignKey(Franchisee, verbose_name=_("所属加盟商"), null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="local_materials",
                                         help_text=_("加盟商自己发布的本地素材，只对该加盟商的门店可见"))
    # What search compares: title, description and the current version's text (scripts, Moments copy).
    search_text = models.TextField(editable=False, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("创建人"), null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+", editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = MaterialQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材")
        verbose_name_plural = _("素材")
        ordering = ["-updated_at", "-id"]
        indexes = [
            upper_trigram_index("search_text", "material_search_trgm"),
            models.Index(fields=["-updated_at", "-id"], name="material_recent"),  # the lists' order, walked
            models.Index(fields=["status", "kind", "-updated_at"], name="material_status_kind"),
            models.Index(fields=["folder", "-updated_at"], name="material_folder"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(valid_from__isnull=True) | Q(expires_at__isnull=True)
                                   | Q(expires_at__gt=models.F("valid_from")), name="material_window_ordered"),
            models.CheckConstraint(condition=~Q(status="published") | Q(current_version__isnull=False),
                                   name="material_published_has_version"),
        ]

    def __str__(self) -> str:
        return self.title

    def is_usable(self, *, at=None) -> bool:
        now = at or timezone.now()
        return (self.status == MaterialStatus.PUBLISHED and self.current_version_id is not None
                and (self.valid_from is None or self.valid_from <= now)
                and (self.expires_at is None or self.expires_at > now))


class MaterialVersionQuerySet(ScopedQuerySet[_M]):
    """A version is seen by whoever sees its material."""

    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        return self.filter(material__in=Material.objects.for_scope(scope).values("pk"))


class MaterialVersion(models.Model):
    """One state of a material's content, kept forever: rows are only ever inserted (database trigger)."""

    material = models.ForeignKey(Material, verbose_name=_("素材"), on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(_("版本号"))
    note = models.CharField(_("版本说明"), max_length=200, blank=True)
    restored_from = models.ForeignKey("self", verbose_name=_("恢复自"), null=True, blank=True,
                                      on_delete=models.PROTECT, related_name="+")
    # A file (image, poster template background, video, document), in the storage (content-addressed name).
    file = models.CharField(_("文件"), max_length=255, blank=True)
    file_name = models.CharField(_("原文件名"), max_length=255, blank=True)
    mime = models.CharField(_("文件类型"), max_length=100, blank=True)
    size = models.BigIntegerField(_("大小（字节）"), null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    width = models.PositiveIntegerField(_("宽"), null=True, blank=True)
    height = models.PositiveIntegerField(_("高"), null=True, blank=True)
    pages = models.PositiveIntegerField(_("页数"), null=True, blank=True)
    duration_seconds = models.FloatField(_("时长（秒）"), null=True, blank=True)
    thumbnail = models.CharField(_("缩略图"), max_length=255, blank=True)
    # Text: a script (话术, with {变量}), Moments copy, or a link's / card's description.
    text = models.TextField(_("文字内容"), blank=True, max_length=4000)
    link_url = models.URLField(_("链接地址"), max_length=1000, blank=True)
    link_title = models.CharField(_("链接标题"), max_length=128, blank=True)
    miniprogram_appid = models.CharField(_("小程序 AppID"), max_length=32, blank=True)
    miniprogram_page = models.CharField(_("小程序页面路径"), max_length=255, blank=True)
    # A poster template's placeholders (materials/posters/layout.py); a Moments template's attached materials.
    layout = models.JSONField(_("版式"), null=True, blank=True)
    attachment_ids = ArrayField(models.IntegerField(), verbose_name=_("附带素材"), default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("上传人"), null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = MaterialVersionQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材版本")
        verbose_name_plural = _("素材版本")
        ordering = ["material", "-number"]
        constraints = [models.UniqueConstraint(fields=["material", "number"], name="material_version_number")]
        triggers = [
            pgtrigger.Protect(name="material_version_insert_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.material_id} v{self.number}"


def version_fields() -> list[str]:
    """The content fields a new version copies from an older one (restore)."""
    skip = {"id", "material", "number", "note", "restored_from", "created_by", "created_at"}
    return [f.name for f in MaterialVersion._meta.concrete_fields if f.name not in skip]


__all__: list[Any] = ["FILE_KINDS", "Folder", "Material", "MaterialKind", "MaterialStatus", "MaterialTag",
                      "MaterialVersion", "audience_reaches_q", "version_fields"]
