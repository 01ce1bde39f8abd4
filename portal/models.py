from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A portal login. What it may see is decided by its stores.Access (role and scope)."""

    display_name = models.CharField(_("显示名"), max_length=64, blank=True)

    class Meta:  # AbstractUser.Meta adds only the verbose names, given here
        verbose_name = _("用户")
        verbose_name_plural = _("用户")
        swappable = "AUTH_USER_MODEL"

    def __str__(self) -> str:
        return self.display_name or self.get_full_name() or self.username


class BeatHeartbeat(models.Model):
    """One row, touched by a beat-scheduled task, so the 工作台 can show the scheduler is alive."""

    name = models.CharField(max_length=64, unique=True)
    beat_at = models.DateTimeField()

    class Meta:
        verbose_name = _("调度心跳")
        verbose_name_plural = _("调度心跳")

    def __str__(self) -> str:
        return f"{self.name} {self.beat_at:%Y-%m-%d %H:%M:%S}"


class AuditEvent(models.Model):
    """Insert-only record of a business action (who did what to which rows)."""

    at = models.DateTimeField(_("时间"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        "portal.User", verbose_name=_("操作人"), null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(_("操作"), max_length=64, db_index=True)
    target_type = models.CharField(_("对象类型"), max_length=64)
    target_ids = models.JSONField(_("对象ID"), default=list)
    detail = models.JSONField(_("详情"), default=dict)

    class Meta:
        verbose_name = _("操作审计")
        verbose_name_plural = _("操作审计")
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"
