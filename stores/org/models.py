"""The organisation: regions (a tree), franchisees, stores and staff (WeCom members)."""

from typing import Self

from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import FranchiseeQuerySet, RegionQuerySet, ScopedQuerySet, StoreQuerySet


def upper_trigram_index(field: str, name: str) -> GinIndex:
    """Django's icontains compares UPPER(field) LIKE UPPER(%term%): index exactly that."""
    return GinIndex(OpClass(Upper(field), name="gin_trgm_ops"), name=name)


class Region(models.Model):
    class Level(models.TextChoices):
        AREA = "area", _("大区")
        CITY = "city", _("城市")
        DISTRICT = "district", _("片区")

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("名称"), max_length=64)
    level = models.CharField(_("层级"), max_length=16, choices=Level.choices, default=Level.AREA)
    parent = models.ForeignKey(
        "self", verbose_name=_("上级区域"), null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )

    objects = RegionQuerySet.as_manager()

    class Meta:
        verbose_name = _("区域")
        verbose_name_plural = _("区域")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=~Q(parent=models.F("id")), name="region_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name


class Franchisee(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("合作中")
        SUSPENDED = "suspended", _("暂停")
        TERMINATED = "terminated", _("已解约")

    code = models.CharField(_("编码"), max_length=32, unique=True)
    name = models.CharField(_("公司名称"), max_length=128)
    contact_name = models.CharField(_("联系人"), max_length=64, blank=True)
    contact_phone = models.CharField(_("联系电话"), max_length=32, blank=True)
    contract_start = models.DateField(_("合同开始"), null=True, blank=True)
    contract_end = models.DateField(_("合同结束"), null=True, blank=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)

    objects = FranchiseeQuerySet.as_manager()

    class Meta:
        verbose_name = _("加盟商")
        verbose_name_plural = _("加盟商")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contract_end__isnull=True)
                | Q(contract_start__isnull=True)
                | Q(contract_end__gte=models.F("contract_start")),
                name="franchisee_contract_dates_ordered",
            ),
        ]
        indexes = [upper_trigram_index("name", "franchisee_name_trgm")]

    def __str__(self) -> str:
        return self.name


class Store(models.Model):
    class Kind(models.TextChoices):
        DIRECT = "direct", _("直营")
        FRANCHISE = "franchise", _("加盟")

    class Status(models.TextChoices):
        OPEN = "open", _("营业中")
        CLOSED = "closed", _("已关店")

    code = models.CharField(_("门店编码"), max_length=32, unique=True)
    name = models.CharField(_("门店名称"), max_length=128)
    city = models.CharField(_("城市"), max_length=64, blank=True)
    address = models.CharField(_("地址"), max_length=255, blank=True)
    opening_hours = models.CharField(_("营业时间"), max_length=64, blank=True,
                                     help_text=_("例如 10:00-22:00，印在门店海报上"))
    latitude = models.DecimalField(_("纬度"), max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(_("经度"), max_digits=9, decimal_places=6, null=True, blank=True)
    kind = models.CharField(_("类型"), max_length=16, choices=Kind.choices, default=Kind.DIRECT)
    franchisee = models.ForeignKey(
        Franchisee, verbose_name=_("加盟商"), null=True, blank=True, on_delete=models.PROTECT, related_name="stores"
    )
    region = models.ForeignKey(Region, verbose_name=_("区域"), on_delete=models.PROTECT, related_name="stores")
    wecom_department_id = models.BigIntegerField(_("企业微信部门ID"), null=True, blank=True, unique=True)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_on = models.DateField(_("开业日期"), null=True, blank=True)
    closed_on = models.DateField(_("关店日期"), null=True, blank=True)

    objects = StoreQuerySet.as_manager()

    class Meta:
        verbose_name = _("门店")
        verbose_name_plural = _("门店")
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="franchise", franchisee__isnull=False) | Q(kind="direct", franchisee__isnull=True),
                name="store_franchisee_iff_franchise",
                violation_error_message=_("加盟店必须填写加盟商，直营店不能填写加盟商"),
            ),
            models.CheckConstraint(
                condition=Q(status="open", closed_on__isnull=True) | Q(status="closed"),
                name="store_open_has_no_close_date",
            ),
            models.CheckConstraint(
                condition=(Q(latitude__gte=-90) & Q(latitude__lte=90)) | Q(latitude__isnull=True),
                name="store_latitude_range",
            ),
            models.CheckConstraint(
                condition=(Q(longitude__gte=-180) & Q(longitude__lte=180)) | Q(longitude__isnull=True),
                name="store_longitude_range",
            ),
        ]
        indexes = [
            upper_trigram_index("name", "store_name_trgm"),
            models.Index(fields=["region", "status"], name="store_region_status"),
            models.Index(fields=["franchisee", "status"], name="store_franchisee_status"),
        ]

    def __str__(self) -> str:
        return f"{self.name}（{self.code}）"


class StaffQuerySet(ScopedQuerySet["Staff"]):
    scope_store_field = "store"
    scope_staff_field = "pk"

    def active(self) -> Self:
        return self.filter(status=Staff.Status.ACTIVE)


class Staff(models.Model):
    class Position(models.TextChoices):
        STORE_MANAGER = "store_manager", _("店长")
        GUIDE = "guide", _("导购")
        SERVICE = "service", _("客服")
        HQ = "hq", _("总部")

    class Status(models.TextChoices):
        ACTIVE = "active", _("在职")
        DEPARTED = "departed", _("已离职")

    userid = models.CharField(_("企业微信账号"), max_length=64, unique=True)
    name = models.CharField(_("姓名"), max_length=64)
    mobile = models.CharField(_("手机号"), max_length=20, blank=True)
    store = models.ForeignKey(
        Store, verbose_name=_("门店"), null=True, blank=True, on_delete=models.PROTECT, related_name="staff"
    )
    position = models.CharField(_("岗位"), max_length=16, choices=Position.choices, default=Position.GUIDE)
    status = models.CharField(_("状态"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    joined_on = models.DateField(_("入职日期"), null=True, blank=True)
    departed_at = models.DateTimeField(_("离职时间"), null=True, blank=True)
    customer_count = models.PositiveIntegerField(_("客户数"), default=0)
    inheritance_pending = models.BooleanField(
        _("待分配客户"), default=False, help_text=_("已离职，名下客户尚待离职继承")
    )
    wecom_synced_at = models.DateTimeField(_("最近同步"), null=True, blank=True)

    objects = StaffQuerySet.as_manager()

    class Meta:
        verbose_name = _("员工")
        verbose_name_plural = _("员工")
        ordering = ["store_id", "userid"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="active", departed_at__isnull=True)
                | Q(status="departed", departed_at__isnull=False),
                name="staff_departed_iff_departed_at",
            ),
            models.CheckConstraint(
                condition=Q(position="hq") | Q(store__isnull=False),
                name="staff_store_unless_hq",
                violation_error_message=_("除总部员工外，员工必须属于一个门店"),
            ),
        ]
        indexes = [
            upper_trigram_index("name", "staff_name_trgm"),
            models.Index(fields=["store", "status"], name="staff_store_status"),
            models.Index(fields=["mobile"], name="staff_mobile"),
            models.Index(fields=["departed_at"], name="staff_inheritance_pending",
                         condition=Q(inheritance_pending=True)),
        ]

    def __str__(self) -> str:
        return f"{self.name}（{self.userid}）"
