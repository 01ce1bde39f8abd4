"""Material usage (素材使用): every view, download, copy, share and send of a material, and the daily rollup.

``MaterialUse`` is one event, insert-only (a database trigger refuses UPDATE and DELETE), written in batches by
``material_uses_flush`` from the Redis queue the hot path pushes to; its ``event_id`` (made when the event
happened) makes a replayed batch insert nothing twice. ``MaterialUseDaily`` is the rollup the charts read: one
row per day × material × store × action, counted from the rows a flush actually inserted.

Both are scoped by store through the one mechanism: a store manager sees their store's use, store staff their
own events (the daily rollup, which names no staff, their store's), HQ everything.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pgtrigger
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import ScopedQuerySet

_M = TypeVar("_M", bound=models.Model)


class UseAction(models.TextChoices):
    VIEW = "view", _("查看")
    DOWNLOAD = "download", _("下载")
    COPY = "copy", _("复制")
    SHARE = "share", _("转发")
    SEND = "send", _("发送")


class MaterialUseQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "store"
    scope_staff_field = "staff"


class MaterialUse(models.Model):
    """One use of one version of a material, by a staff member of a store (or an HQ login, store empty)."""

    event_id = models.UUIDField(_("事件编号"), unique=True, editable=False)
    material = models.ForeignKey("materials.Material", verbose_name=_("素材"), on_delete=models.PROTECT,
                                 related_name="+")
    version = models.ForeignKey("materials.MaterialVersion", verbose_name=_("版本"), on_delete=models.PROTECT,
                                related_name="+")
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), null=True, blank=True,
                              on_delete=models.PROTECT, related_name="+")
    staff = models.ForeignKey("stores.Staff", verbose_name=_("员工"), null=True, blank=True,
                              on_delete=models.PROTECT, related_name="+")
    # A login may be removed later; the event stays as it was (no constraint, never updated).
    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("登录账号"), null=True, blank=True,
                             on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    action = models.CharField(_("动作"), max_length=16, choices=UseAction.choices)
    at = models.DateTimeField(_("时间"))

    objects = MaterialUseQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材使用记录")
        verbose_name_plural = _("素材使用记录")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["material", "-at"], name="material_use_material_at"),
            models.Index(fields=["store", "-at"], name="material_use_store_at"),
            models.Index(fields=["staff", "-at"], name="material_use_staff_at"),
            models.Index(fields=["-at"], name="material_use_at"),
        ]
        triggers = [
            pgtrigger.Protect(name="material_use_insert_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.material_id} {self.action} {self.at:%Y-%m-%d %H:%M}"


class MaterialUseDailyQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "store"


class MaterialUseDaily(models.Model):
    """Uses per day (Asia/Shanghai) × material × store × action; store empty for uses outside any store."""

    day = models.DateField(_("日期"))
    material = models.ForeignKey("materials.Material", verbose_name=_("素材"), on_delete=models.PROTECT,
                                 related_name="+")
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), null=True, blank=True,
                              on_delete=models.PROTECT, related_name="+")
    action = models.CharField(_("动作"), max_length=16, choices=UseAction.choices)
    count = models.PositiveIntegerField(_("次数"), default=0)

    objects = MaterialUseDailyQuerySet.as_manager()

    class Meta:
        verbose_name = _("素材每日使用")
        verbose_name_plural = _("素材每日使用")
        constraints = [
            models.UniqueConstraint(fields=["day", "material", "store", "action"], nulls_distinct=False,
                                    name="material_use_daily_unique"),
        ]
        indexes = [
            models.Index(fields=["day", "store"], name="material_use_daily_day_store"),
            models.Index(fields=["material", "day"], name="material_use_daily_material"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.material_id} {self.action} {self.count}"


__all__: list[Any] = ["MaterialUse", "MaterialUseDaily", "UseAction"]
