"""What the gateway records: every outbound call, every inbound callback, every sync run."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class WeComCall(models.Model):
    """One outbound API call (after its retries). Kept WECOM_CALL_LOG_DAYS days."""

    at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    endpoint = models.CharField(_("接口"), max_length=96, db_index=True)
    caller = models.CharField(_("调用方"), max_length=96, blank=True)
    errcode = models.IntegerField(_("错误码"), null=True, blank=True)
    errmsg = models.CharField(_("错误信息"), max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(_("尝试次数"), default=1)
    duration_ms = models.PositiveIntegerField(_("耗时(毫秒)"), default=0)
    request_summary = models.TextField(_("请求摘要"), blank=True)

    class Meta:
        verbose_name = _("企业微信调用")
        verbose_name_plural = _("企业微信调用")
        ordering = ["-at"]
        indexes = [models.Index(fields=["errcode", "at"], name="wecomcall_errcode_at",
                                condition=models.Q(errcode__isnull=False) & ~models.Q(errcode=0))]

    def __str__(self) -> str:
        return f"{self.endpoint} → {self.errcode}"


class CallbackEvent(models.Model):
    """An inbound WeCom callback: stored once (dedupe_key), processed by a task, replayable."""

    class Status(models.TextChoices):
        PENDING = "pending", _("待处理")
        PROCESSING = "processing", _("处理中")
        DONE = "done", _("已处理")
        FAILED = "failed", _("失败")
        IGNORED = "ignored", _("无需处理")

    received_at = models.DateTimeField(_("接收时间"), auto_now_add=True, db_index=True)
    dedupe_key = models.CharField(_("去重键"), max_length=64, unique=True)
    event = models.CharField(_("事件"), max_length=64)
    change_type = models.CharField(_("变更类型"), max_length=64, blank=True)
    created_time = models.BigIntegerField(_("企业微信事件时间"), null=True)
    payload = models.JSONField(_("内容"))
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(_("处理次数"), default=0)
    last_error = models.TextField(_("最近错误"), blank=True)
    claimed_at = models.DateTimeField(_("开始处理"), null=True, blank=True)
    processed_at = models.DateTimeField(_("处理时间"), null=True, blank=True)

    class Meta:
        verbose_name = _("回调事件")
        verbose_name_plural = _("回调事件")
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["status", "received_at"], name="callback_open",
                         condition=models.Q(status__in=["pending", "processing", "failed"])),
            models.Index(fields=["event", "change_type"], name="callback_event_type"),
        ]

    def __str__(self) -> str:
        return f"{self.event}/{self.change_type} #{self.pk}"


class SyncRun(models.Model):
    """A full or incremental sync with WeCom: progress while running, the result after."""

    class Status(models.TextChoices):
        RUNNING = "running", _("进行中")
        DONE = "done", _("完成")
        FAILED = "failed", _("失败")

    kind = models.CharField(_("类型"), max_length=64, db_index=True)
    started_at = models.DateTimeField(_("开始时间"), auto_now_add=True)
    finished_at = models.DateTimeField(_("结束时间"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    progress = models.JSONField(_("进度与结果"), default=dict)
    error = models.TextField(_("错误"), blank=True)

    class Meta:
        verbose_name = _("同步记录")
        verbose_name_plural = _("同步记录")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M}"


class AppMessageReceipt(models.Model):
    """A caller's key sent to one member as an app message: at most once (unique key + userid).

    A table, not a Redis key: a notification twice is what members complain about, and this promise must
    survive a Redis flush or failover (Redis holds only the rate budget, which a loss merely resets, as
    WeCom's own windows would have long passed). One INSERT … ON CONFLICT DO NOTHING claims a whole batch
    of 1,000. Kept WECOM_APP_MESSAGE_RECEIPT_DAYS days.
    """

    key = models.CharField(_("幂等键"), max_length=128)
    userid = models.CharField(_("成员账号"), max_length=64)
    purpose = models.CharField(_("用途"), max_length=64, blank=True)
    msgid = models.CharField(_("消息ID"), max_length=128, blank=True)
    response_code = models.CharField(_("卡片更新码"), max_length=128, blank=True)
    sent_at = models.DateTimeField(_("发送时间"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("应用消息回执")
        verbose_name_plural = _("应用消息回执")
        constraints = [models.UniqueConstraint(fields=["key", "userid"], name="appmessagereceipt_once")]

    def __str__(self) -> str:
        return f"{self.key} → {self.userid}"
