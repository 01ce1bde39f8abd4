"""Corp tags (企业标签), mirrored from WeCom, brand-wide."""

from __future__ import annotations

from typing import TypeVar

from django.db import models
from django.utils.translation import gettext_lazy as _

from customers.contacts.models import Stage
from stores.access.scoping import GlobalQuerySet

_M = TypeVar("_M", bound=models.Model)


class CorpTagQuerySet(GlobalQuerySet[_M]):  # groups and tags alike
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = ("corp-wide tags, as every staff member sees them in WeCom: every role reads them; "
                    "only HQ edits (permission)")


class TagGroup(models.Model):
    wecom_group_id = models.CharField(_("企业微信标签组ID"), max_length=64, unique=True, null=True, blank=True)
    name = models.CharField(_("标签组"), max_length=30)
    order = models.IntegerField(_("排序"), default=0)
    deleted = models.BooleanField(_("已删除"), default=False)

    objects = CorpTagQuerySet.as_manager()

    class Meta:
        verbose_name = _("标签组")
        verbose_name_plural = _("标签组")
        ordering = ["-order", "name"]

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A corp tag. Customers carry tag *ids* (Tag.pk) in arrays for fast segment filters."""

    wecom_tag_id = models.CharField(_("企业微信标签ID"), max_length=64, unique=True, null=True, blank=True)
    group = models.ForeignKey(TagGroup, verbose_name=_("标签组"), on_delete=models.PROTECT, related_name="tags")
    name = models.CharField(_("标签"), max_length=30)
    order = models.IntegerField(_("排序"), default=0)
    deleted = models.BooleanField(_("已删除"), default=False)
    advances_to = models.CharField(_("打上后推进到阶段"), max_length=16, blank=True, choices=Stage.choices,
                                   help_text=_("例如“意向”标签：客户被打上后进入“意向”阶段"))

    objects = CorpTagQuerySet.as_manager()

    class Meta:
        verbose_name = _("标签")
        verbose_name_plural = _("标签")
        ordering = ["group__name", "-order", "name"]
        constraints = [models.UniqueConstraint(fields=["group", "name"], condition=models.Q(deleted=False),
                                               name="tag_unique_name_in_group")]

    def __str__(self) -> str:
        return f"{self.group.name}/{self.name}" if self.group_id else self.name
