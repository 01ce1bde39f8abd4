"""Lifecycle stage history: insert-only, who or what moved a customer and why."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from customers.contacts.models import Stage
from stores.access.scoping import ScopedQuerySet


class StageChangeQuerySet(ScopedQuerySet["StageChange"]):
    scope_store_field = "customer__store"
    scope_staff_field = "customer__staff"


class StageChange(models.Model):
    class Cause(models.TextChoices):
        FIRST_ADD = "first_add", _("首次添加")
        TAGGED = "tagged", _("打意向标签")
        DEAL = "deal", _("成交")
        REFERRAL = "referral", _("推荐的客户成交")
        MANUAL = "manual", _("员工手动调整")

    customer = models.ForeignKey("customers.Customer", verbose_name=_("客户"), on_delete=models.CASCADE,
                                 related_name="stage_changes")
    from_stage = models.CharField(_("原阶段"), max_length=16, choices=Stage.choices, blank=True)
    to_stage = models.CharField(_("新阶段"), max_length=16, choices=Stage.choices)
    cause = models.CharField(_("原因"), max_length=16, choices=Cause.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("操作人"), null=True, blank=True,
                           on_delete=models.SET_NULL, related_name="+")
    at = models.DateTimeField(_("时间"), auto_now_add=True)

    objects = StageChangeQuerySet.as_manager()

    class Meta:
        verbose_name = _("阶段变更")
        verbose_name_plural = _("阶段变更")
        ordering = ["-at"]
        indexes = [models.Index(fields=["customer", "-at"], name="stagechange_customer")]
        # Duplicate add callbacks processed at once must not record two first adds.
        constraints = [models.UniqueConstraint(fields=["customer"], condition=models.Q(cause="first_add"),
                                               name="stagechange_one_first_add")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.from_stage} → {self.to_stage}"
