"""Rendered posters: one current image per poster template and staff member (or per template and store, for a
store's own poster), re-rendered when an input changes.

``inputs_key`` is a hash of everything that changes the image (the template version, the store's and the staff
member's printed details, the QR payload, the font and the engine's version, ``poster_inputs_key``): the same
key, the same image, no render. A staff member has one poster per template, wherever they work: when they move
to another store it is re-rendered there (its store changes with it), so their old store no longer sees it.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from materials.library.models import Material, MaterialVersion
from stores.access.scoping import ScopedQuerySet
from stores.org.models import Staff, Store

_M = TypeVar("_M", bound=models.Model)


class RenderedPosterQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "store"
    scope_staff_field = "staff"


class RenderedPoster(models.Model):
    material = models.ForeignKey(Material, verbose_name=_("海报模板"), on_delete=models.CASCADE,
                                 related_name="rendered_posters")
    version = models.ForeignKey(MaterialVersion, verbose_name=_("模板版本"), on_delete=models.PROTECT,
                                related_name="+")
    store = models.ForeignKey(Store, verbose_name=_("门店"), on_delete=models.CASCADE, related_name="+")
    staff = models.ForeignKey(Staff, verbose_name=_("员工"), null=True, blank=True, on_delete=models.CASCADE,
                              related_name="+")
    inputs_key = models.CharField(_("输入指纹"), max_length=64, editable=False)
    file = models.CharField(_("文件"), max_length=255, editable=False)
    rendered_at = models.DateTimeField(_("生成时间"))

    objects = RenderedPosterQuerySet.as_manager()

    class Meta:
        verbose_name = _("门店/导购海报")
        verbose_name_plural = _("门店/导购海报")
        ordering = ["-rendered_at", "-id"]
        constraints = [
            # The bulk job upserts ON CONFLICT (material_id, staff_id) WHERE staff_id IS NOT NULL.
            models.UniqueConstraint(fields=["material", "staff"], condition=Q(staff__isnull=False),
                                    name="rendered_poster_one_per_staff"),
            models.UniqueConstraint(fields=["material", "store"], condition=Q(staff__isnull=True),
                                    name="rendered_poster_one_per_store"),
        ]
        indexes = [models.Index(fields=["store", "material"], name="rendered_poster_store")]

    def __str__(self) -> str:
        return f"{self.material_id}/{self.store_id}/{self.staff_id or '-'}"
