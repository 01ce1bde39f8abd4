"""Segments (分层/人群): a saved rule compiled to one SQL query; snapshots freeze it for a campaign."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import GlobalQuerySet


class SegmentQuerySet(GlobalQuerySet["Segment"]):
    scope_readers = GlobalQuerySet.EVERY_SCOPE
    scope_global = ("HQ's marketing rules, read by the roles given view permission (region managers): counts, "
                    "samples and the rule's description are evaluated in the viewer's scope; only HQ edits")


class SegmentSnapshotQuerySet(GlobalQuerySet["SegmentSnapshot"]):
    scope_readers = GlobalQuerySet.HQ_ONLY
    scope_global = "a customer list frozen by HQ across the brand: HQ roles only"


class SegmentSnapshotMemberQuerySet(GlobalQuerySet["SegmentSnapshotMember"]):
    scope_readers = GlobalQuerySet.HQ_ONLY
    scope_global = "rows of a snapshot, never listed on their own: HQ roles only"


class Segment(models.Model):
    name = models.CharField(_("名称"), max_length=64)
    rule = models.JSONField(_("规则"), default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("创建人"), null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    last_count = models.PositiveIntegerField(_("最近人数"), null=True, blank=True)
    last_counted_at = models.DateTimeField(_("最近计算"), null=True, blank=True)

    objects = SegmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("客户分层")
        verbose_name_plural = _("客户分层")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class SegmentSnapshot(models.Model):
    """The customers a segment matched at one moment (for a campaign); its members are insert-only.

    Big segments are filled by a Celery task: the snapshot exists at once (queued), its members
    appear in one INSERT … SELECT when it is done, and never change afterwards.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("生成中")
        DONE = "done", _("已完成")
        FAILED = "failed", _("失败")

    segment = models.ForeignKey(Segment, verbose_name=_("客户分层"), on_delete=models.CASCADE,
                                related_name="snapshots")
    rule = models.JSONField(_("当时的规则"))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("创建人"), null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    size = models.PositiveIntegerField(_("人数"), default=0)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    error = models.CharField(_("错误"), max_length=255, blank=True)

    objects = SegmentSnapshotQuerySet.as_manager()

    class Meta:
        verbose_name = _("分层快照")
        verbose_name_plural = _("分层快照")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.segment} @ {self.created_at:%Y-%m-%d %H:%M}"


class SegmentSnapshotMember(models.Model):
    snapshot = models.ForeignKey(SegmentSnapshot, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")

    objects = SegmentSnapshotMemberQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["snapshot", "customer"], name="snapshot_member_unique")]

    def __str__(self) -> str:
        return f"{self.snapshot_id}:{self.customer_id}"
