"""The add-fan dashboard's history: one row per day × staff × channel, built set-based by beat."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import ScopedQuerySet


class AcquisitionDailyQuerySet(ScopedQuerySet["AcquisitionDaily"]):
    scope_store_field = "store"
    scope_staff_field = "staff"


class AcquisitionDaily(models.Model):
    day = models.DateField(_("日期"))
    staff = models.ForeignKey("stores.Staff", verbose_name=_("员工"), on_delete=models.CASCADE, related_name="+")
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), null=True, on_delete=models.CASCADE,
                              related_name="+")
    region = models.ForeignKey("stores.Region", verbose_name=_("区域"), null=True, on_delete=models.SET_NULL,
                               related_name="+")
    franchisee = models.ForeignKey("stores.Franchisee", verbose_name=_("加盟商"), null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    channel = models.ForeignKey("customers.Channel", verbose_name=_("渠道"), null=True, on_delete=models.SET_NULL,
                                related_name="+")
    adds = models.PositiveIntegerField(_("新增"), default=0)
    deleted_by_customer = models.PositiveIntegerField(_("客户删除"), default=0)
    deleted_by_staff = models.PositiveIntegerField(_("员工删除"), default=0)

    objects = AcquisitionDailyQuerySet.as_manager()

    class Meta:
        verbose_name = _("每日加粉")
        verbose_name_plural = _("每日加粉")
        constraints = [models.UniqueConstraint(fields=["day", "staff", "channel"], nulls_distinct=False,
                                               name="acquisition_daily_unique")]
        indexes = [models.Index(fields=["day", "store"], name="acquisition_day_store")]

    def __str__(self) -> str:
        return f"{self.day} {self.staff_id}"
