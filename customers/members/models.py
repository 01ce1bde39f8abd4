"""Members from the brand's CRM/POS, unified with WeCom customers by unionid (or a bound mobile)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import HashIndex
from django.db import models
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import GlobalQuerySet, ScopedQuerySet


class MemberQuerySet(ScopedQuerySet["Member"]):
    scope_store_field = "home_store"


class Member(models.Model):
    # Indexed in Meta, not with unique=/db_index=: those add a varchar_pattern_ops twin per column on
    # PostgreSQL, never used (no LIKE on these) and costing ~40% of a bulk import's insert time.
    member_no = models.CharField(_("会员号"), max_length=32)
    mobile_hash = models.CharField(_("手机号哈希"), max_length=64, blank=True)
    mobile_masked = models.CharField(_("手机号"), max_length=16, blank=True)
    unionid = models.CharField(_("UnionID"), max_length=64, blank=True)
    name = models.CharField(_("姓名"), max_length=64, blank=True)
    level = models.CharField(_("会员等级"), max_length=16, blank=True)
    points = models.IntegerField(_("积分"), default=0)
    lifetime_spend = models.DecimalField(_("累计消费"), max_digits=14, decimal_places=2, default=0)
    order_count = models.PositiveIntegerField(_("消费次数"), default=0)
    last_purchase_on = models.DateField(_("最近消费日"), null=True, blank=True)
    home_store = models.ForeignKey("stores.Store", verbose_name=_("归属门店"), null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    rfm_r = models.PositiveSmallIntegerField(_("R"), null=True, blank=True)
    rfm_f = models.PositiveSmallIntegerField(_("F"), null=True, blank=True)
    rfm_m = models.PositiveSmallIntegerField(_("M"), null=True, blank=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = MemberQuerySet.as_manager()

    class Meta:
        verbose_name = _("会员")
        verbose_name_plural = _("会员")
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["member_no"], name="member_member_no_unique")]
        indexes = [
            # Most CRM members have no unionid, some no mobile: partial indexes skip the blanks.
            # mobile_hash is only ever compared with = / IN, and its values are random 64-char hex: a
            # hash index keeps a 4-byte code per row instead of the 65-byte key (37 MB vs 91 MB at
            # 1 M members), so it stays cached while a file of new members inserts at random places in
            # it. Measured at 1 M new members (bench/members.py): the btree cost 2.4 s more PostgreSQL
            # CPU and, with 128 MB of shared_buffers, more than half of the insert's wall time in I/O.
            HashIndex(fields=["mobile_hash"], name="member_mobile_hash_hash", condition=~models.Q(mobile_hash="")),
            models.Index(fields=["unionid"], name="member_unionid", condition=~models.Q(unionid="")),
            models.Index(fields=["level"], name="member_level"),
        ]

    def __str__(self) -> str:
        return f"{self.member_no} {self.mobile_masked}"


class MemberImportQuerySet(GlobalQuerySet["MemberImport"]):
    scope_readers = GlobalQuerySet.HQ_ONLY
    scope_global = ("member files hold every store's members and mobiles: HQ roles only; the job itself "
                    "runs only for a creator who still has HQ scope")


class MemberImport(models.Model):
    """A member file imported by the fast path (COPY + set-based upsert), with its progress and row errors."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("排队中")
        RUNNING = "running", _("导入中")
        DONE = "done", _("完成")
        FAILED = "failed", _("失败")

    file = models.FileField(_("文件"), upload_to="member-imports/%Y/%m/")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, verbose_name=_("导入人"), null=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.PositiveIntegerField(_("总行数"), default=0)
    rows_done = models.PositiveIntegerField(_("已处理"), default=0)
    rows_created = models.PositiveIntegerField(_("新增"), default=0)
    rows_updated = models.PositiveIntegerField(_("更新"), default=0)
    errors = models.JSONField(_("错误行"), default=list, blank=True)
    finished_at = models.DateTimeField(_("完成时间"), null=True, blank=True)
    # The uploaded file holds plaintext mobiles: deleted when the import ends (or after the retention
    # period, XIAOER_MEMBER_FILE_RETENTION_HOURS); ``file`` keeps its name as the record of what was imported.
    file_removed_at = models.DateTimeField(_("文件删除时间"), null=True, blank=True)

    objects = MemberImportQuerySet.as_manager()

    class Meta:
        verbose_name = _("会员导入")
        verbose_name_plural = _("会员导入")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.file.name} {self.get_status_display()}"
