"""WeCom media for material versions (企业微信素材): one row per (version, purpose), the id WeCom gave and until when.

``message``   media/upload (type image / video / file by the version's file): mass-send and message attachments,
              a miniprogram card's pic_media_id. Valid 3 days from WeCom's ``created_at``.
``moments``   media/upload_attachment, attachment_type 1: the only ids add_moment_task takes (41072 otherwise).
              Valid 3 days too.
``image_url`` media/uploadimg: a permanent URL (shown inside WeCom only), uploaded once ever, under a daily quota.

The rows are technical: they name no store, and only the services read them (materials/media/services.py).
"""

from __future__ import annotations

from typing import TypeVar

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from materials.library.models import MaterialVersion
from stores.access.scoping import GlobalQuerySet

_M = TypeVar("_M", bound=models.Model)


class MediaPurpose(models.TextChoices):
    MESSAGE = "message", _("消息附件（临时素材）")
    MOMENTS = "moments", _("朋友圈附件")
    IMAGE_URL = "image_url", _("永久图片链接")


TEMPORARY_PURPOSES = (MediaPurpose.MESSAGE, MediaPurpose.MOMENTS)


class WeComMediaQuerySet(GlobalQuerySet[_M]):
    scope_readers = GlobalQuerySet.HQ_ONLY
    scope_global = ("technical cache of the WeCom media ids and image URLs of material versions, across the "
                    "brand: HQ roles only (senders get an id from the service, never from the rows)")


class WeComMedia(models.Model):
    Purpose = MediaPurpose

    version = models.ForeignKey(MaterialVersion, verbose_name=_("素材版本"), on_delete=models.PROTECT,
                                related_name="wecom_media")
    purpose = models.CharField(_("用途"), max_length=16, choices=MediaPurpose.choices)
    media_type = models.CharField(_("媒体类型"), max_length=8)  # image / video / file, as WeCom names them
    media_id = models.CharField(_("企业微信 media_id"), max_length=128, blank=True)
    url = models.URLField(_("永久图片链接"), max_length=1000, blank=True)
    uploaded_at = models.DateTimeField(_("上传时间"), null=True, blank=True)
    expires_at = models.DateTimeField(_("失效时间"), null=True, blank=True,
                                      help_text=_("企业微信返回的上传时间加 3 天；永久图片链接没有失效时间"))
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True)
    last_error = models.CharField(_("最近错误"), max_length=255, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = WeComMediaQuerySet.as_manager()

    class Meta:
        verbose_name = _("企业微信素材")
        verbose_name_plural = _("企业微信素材")
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["version", "purpose"], name="wecom_media_version_purpose"),
            models.CheckConstraint(condition=Q(purpose="image_url") | Q(url=""), name="wecom_media_url_only_image"),
        ]
        indexes = [
            # the refresh job: temporary ids that expire soon
            models.Index(fields=["expires_at"], name="wecom_media_expiring",
                         condition=Q(purpose__in=["message", "moments"]) & ~Q(media_id="")),
            # the quota of permanent image URLs: uploads of a day
            models.Index(fields=["uploaded_at"], name="wecom_media_image_url_day",
                         condition=Q(purpose="image_url") & ~Q(url="")),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.purpose}"
