"""Acquisition: the brand's channel inventory, contact-way codes (渠道活码 / 一人一码) and welcome messages."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import GlobalQuerySet, ScopedQuerySet


class ChannelQuerySet(GlobalQuerySet["Channel"]):
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = ("the brand's channel inventory: every role reads it (codes and customers name their channel); "
                    "only HQ edits (permission); the counts shown beside it are the viewer's own")


class WelcomeMessageQuerySet(GlobalQuerySet["WelcomeMessage"]):
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = ("brand welcome copy: every role reads it (codes and deliveries name it); "
                    "only HQ edits (permission)")


class Channel(models.Model):
    """An acquisition source from the brand's inventory (尘锋's 渠道库存)."""

    class Kind(models.TextChoices):
        POSTER = "poster", _("门店海报")
        TABLE_CARD = "table_card", _("桌贴/台卡")
        RECEIPT = "receipt", _("小票")
        PARCEL_CARD = "parcel_card", _("电商包裹卡")
        LIVE = "live", _("直播")
        ADS = "ads", _("广告投放")
        MINI_PROGRAM = "mini_program", _("小程序")
        EVENT = "event", _("线下活动")
        REFERRAL = "referral", _("老带新")
        OTHER = "other", _("其他")

    code = models.CharField(_("渠道编码"), max_length=8, unique=True,
                            help_text=_("短编码，写入活码的 state，最多 8 位字母数字"))
    name = models.CharField(_("渠道名称"), max_length=64)
    kind = models.CharField(_("渠道类型"), max_length=16, choices=Kind.choices, default=Kind.POSTER)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("负责人"), null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    goal = models.PositiveIntegerField(_("加粉目标"), default=0)
    auto_tags = models.ManyToManyField("customers.Tag", verbose_name=_("自动打标签"), blank=True, related_name="+")
    welcome = models.ForeignKey("customers.WelcomeMessage", verbose_name=_("欢迎语"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        verbose_name = _("渠道")
        verbose_name_plural = _("渠道")
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"


class WelcomeMessage(models.Model):
    """Text with {客户昵称} {员工姓名} {门店名称} plus one optional attachment."""

    class Attachment(models.TextChoices):
        NONE = "", _("无")
        IMAGE = "image", _("图片")
        LINK = "link", _("链接")
        MINIPROGRAM = "miniprogram", _("小程序")

    name = models.CharField(_("名称"), max_length=64)
    text = models.TextField(_("欢迎语"), max_length=4000)
    attachment = models.CharField(_("附件类型"), max_length=16, choices=Attachment.choices, blank=True)
    attachment_data = models.JSONField(_("附件内容"), default=dict, blank=True,
                                       help_text=_('图片: {"pic_url"}；链接: {"title","url","picurl","desc"}；'
                                                   '小程序: {"title","appid","page","pic_media_id"}'))
    active = models.BooleanField(_("启用"), default=True)

    objects = WelcomeMessageQuerySet.as_manager()

    class Meta:
        verbose_name = _("欢迎语")
        verbose_name_plural = _("欢迎语")

    def __str__(self) -> str:
        return self.name


class ContactWayQuerySet(ScopedQuerySet["ContactWay"]):
    scope_store_field = "store"
    scope_staff_field = "staff"


class ContactWay(models.Model):
    """A WeCom contact way (QR code) whose ``state`` decodes back to channel, store, staff and campaign."""

    class Kind(models.TextChoices):
        STAFF = "staff", _("员工码（一人一码）")
        STORE = "store", _("门店码（店员轮流）")
        CHANNEL_STORE = "channel_store", _("渠道门店码")

    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices)
    name = models.CharField(_("名称"), max_length=64)
    config_id = models.CharField(_("企业微信 config_id"), max_length=64, unique=True, null=True, blank=True)
    state = models.CharField(_("state"), max_length=30, unique=True)
    qr_code = models.URLField(_("二维码地址"), max_length=512, blank=True)
    # What the code's QR image encodes, read once from WeCom's image (portal.qr.qr_payload_read): posters draw it
    # crisp at any size without fetching images. Emptied whenever qr_code changes.
    qr_payload = models.CharField(_("二维码内容"), max_length=512, blank=True, editable=False)
    channel = models.ForeignKey(Channel, verbose_name=_("渠道"), null=True, blank=True, on_delete=models.PROTECT,
                                related_name="contact_ways")
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), on_delete=models.PROTECT, related_name="+")
    staff = models.ForeignKey("stores.Staff", verbose_name=_("员工"), null=True, blank=True,
                              on_delete=models.PROTECT, related_name="+")
    members = models.ManyToManyField("stores.Staff", verbose_name=_("接待成员"), blank=True, related_name="+")
    campaign_ref = models.CharField(_("活动编码"), max_length=16, blank=True)
    welcome = models.ForeignKey(WelcomeMessage, verbose_name=_("欢迎语"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    active = models.BooleanField(_("启用"), default=True)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    last_error = models.CharField(_("最近错误"), max_length=255, blank=True)

    objects = ContactWayQuerySet.as_manager()

    class Meta:
        verbose_name = _("渠道活码")
        verbose_name_plural = _("渠道活码")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(kind="staff") | models.Q(staff__isnull=False),
                                   name="contactway_staff_code_has_staff"),
            models.CheckConstraint(condition=~models.Q(kind="channel_store") | models.Q(channel__isnull=False),
                                   name="contactway_channel_code_has_channel"),
        ]

    def __str__(self) -> str:
        return self.name


class WelcomeDeliveryQuerySet(ScopedQuerySet["WelcomeDelivery"]):
    scope_store_field = "relationship__store"
    scope_staff_field = "relationship__staff"


class WelcomeDelivery(models.Model):
    """Each welcome message we tried to send: sent, or why not (the peers' welcome messages fail silently)."""

    class Status(models.TextChoices):
        SENT = "sent", _("已发送")
        FAILED = "failed", _("发送失败")
        SKIPPED = "skipped", _("未发送")

    relationship = models.OneToOneField("customers.Relationship", verbose_name=_("跟进关系"),
                                        on_delete=models.CASCADE, related_name="welcome_delivery")
    welcome = models.ForeignKey(WelcomeMessage, verbose_name=_("欢迎语"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices)
    reason = models.CharField(_("原因"), max_length=255, blank=True)
    event_at = models.DateTimeField(_("添加事件时间"))
    sent_at = models.DateTimeField(_("处理时间"), auto_now_add=True)
    latency_ms = models.PositiveIntegerField(_("耗时(毫秒)"), null=True, blank=True)

    objects = WelcomeDeliveryQuerySet.as_manager()

    class Meta:
        verbose_name = _("欢迎语发送记录")
        verbose_name_plural = _("欢迎语发送记录")
        ordering = ["-sent_at"]
        indexes = [models.Index(fields=["status", "-sent_at"], name="welcome_delivery_status")]

    def __str__(self) -> str:
        return f"{self.relationship_id} {self.status}"
