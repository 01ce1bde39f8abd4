"""Notices (通知): what the portal tells one person — a material about to expire, a task withdrawn.

Shown to its reader in the admin and on the mobile page; each reader sees only their own.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import OwnRowsQuerySet


class Notice(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("接收人"), on_delete=models.CASCADE,
                             related_name="notices")
    title = models.CharField(_("标题"), max_length=200)
    body = models.TextField(_("内容"), blank=True, max_length=2000)
    link = models.CharField(_("链接"), max_length=500, blank=True)
    created_at = models.DateTimeField(_("时间"), auto_now_add=True)
    read_at = models.DateTimeField(_("已读时间"), null=True, blank=True)

    objects = OwnRowsQuerySet.as_manager()

    class Meta:
        verbose_name = _("通知")
        verbose_name_plural = _("通知")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="notice_user_created",
                                condition=models.Q(read_at__isnull=True))]

    def __str__(self) -> str:
        return self.title
