"""Customers (WeCom external contacts), the staff who follow them, and the corp's tags.

At 10 M customers the customer row carries what lists filter on (primary store, region,
franchisee, stage, tag ids), so the admin never joins through relationships to filter or count.
A customer followed by staff of several stores belongs to the store of its primary relationship
(the earliest still active); each store sees its own relationships.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models import Value
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import ScopedQuerySet
from stores.org.models import upper_trigram_index


class Stage(models.TextChoices):
    """客户阶段: 粉丝 → 意向 → 线索 → 到店 → 成交 → 转介绍."""

    FAN = "fan", _("粉丝")
    INTERESTED = "interested", _("意向")
    LEAD = "lead", _("线索")
    VISITED = "visited", _("到店")
    CUSTOMER = "customer", _("成交")
    REFERRER = "referrer", _("转介绍")


STAGE_ORDER = [s.value for s in Stage]


class CustomerQuerySet(ScopedQuerySet["Customer"]):
    scope_store_field = "store"
    scope_staff_field = "staff"


class Customer(models.Model):
    class Kind(models.IntegerChoices):
        WECHAT = 1, _("微信用户")
        WECOM = 2, _("企业微信用户")

    class Gender(models.IntegerChoices):
        UNKNOWN = 0, _("未知")
        MALE = 1, _("男")
        FEMALE = 2, _("女")

    external_userid = models.CharField(_("外部联系人ID"), max_length=64, unique=True)
    unionid = models.CharField(_("UnionID"), max_length=64, blank=True, db_index=True)
    name = models.CharField(_("昵称"), max_length=128)
    kind = models.PositiveSmallIntegerField(_("类型"), choices=Kind.choices, default=Kind.WECHAT)
    gender = models.PositiveSmallIntegerField(_("性别"), choices=Gender.choices, default=Gender.UNKNOWN)
    avatar = models.URLField(_("头像"), max_length=512, blank=True)
    corp_name = models.CharField(_("企业名称"), max_length=128, blank=True)
    # The primary relationship's staff, store and the store's region/franchisee: what lists filter on.
    staff = models.ForeignKey("stores.Staff", verbose_name=_("主跟进员工"), null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    store = models.ForeignKey("stores.Store", verbose_name=_("所属门店"), null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    region = models.ForeignKey("stores.Region", verbose_name=_("区域"), null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+")
    franchisee = models.ForeignKey("stores.Franchisee", verbose_name=_("加盟商"), null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    channel = models.ForeignKey("customers.Channel", verbose_name=_("首次来源渠道"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="+")
    stage = models.CharField(_("客户阶段"), max_length=16, choices=Stage.choices, default=Stage.FAN)
    tag_ids = ArrayField(models.IntegerField(), verbose_name=_("标签"), default=list, blank=True)
    active = models.BooleanField(_("仍是好友"), default=True)  # at least one active relationship
    first_added_at = models.DateTimeField(_("首次添加"), null=True, blank=True)
    last_touch_at = models.DateTimeField(_("最近触达"), null=True, blank=True)
    member = models.OneToOneField("customers.Member", verbose_name=_("会员"), null=True, blank=True,
                                  on_delete=models.SET_NULL, related_name="customer")
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    updated_at = models.DateTimeField(_("更新时间"), auto_now=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        verbose_name = _("客户")
        verbose_name_plural = _("客户")
        ordering = ["-id"]
        indexes = [
            upper_trigram_index("name", "customer_name_trgm"),
            # Prefix search for short Chinese names (张伟 has no trigram): UPPER(name) LIKE '张伟%'.
            models.Index(OpClass(Upper("name"), name="text_pattern_ops"), name="customer_name_prefix"),
            GinIndex(fields=["tag_ids"], name="customer_tag_ids"),
            models.Index(fields=["store", "-id"], name="customer_store_id"),
            models.Index(fields=["region", "-id"], name="customer_region_id"),
            models.Index(fields=["staff", "-id"], name="customer_staff_id"),
            # Segments (customers/segments/): a rule on stage/region with tags, activity and member
            # conditions — and a store-scoped viewer — is answered by an index-only scan of this index (one
            # parallel pass over the matching (stage, region) entries) instead of ANDing millions of TIDs from
            # the tag GIN, stage and region indexes. It also serves every stage lookup (no separate index).
            # Index-only scans need a fresh visibility map: see the autovacuum settings in migration 0004.
            models.Index(fields=["stage", "region"], include=["member", "store", "id", "active", "tag_ids"],
                         name="customer_segment_cover"),
        ]

    def __str__(self) -> str:
        return self.name or self.external_userid


class RelationshipQuerySet(ScopedQuerySet["Relationship"]):
    scope_store_field = "store"
    scope_staff_field = "staff"

    def active(self):
        return self.filter(status=Relationship.Status.ACTIVE)


class Relationship(models.Model):
    """A customer followed by a staff member (WeCom follow_user)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("正常")
        DELETED_BY_STAFF = "deleted_by_staff", _("员工删除客户")
        DELETED_BY_CUSTOMER = "deleted_by_customer", _("客户删除/拉黑员工")
        TRANSFERRED = "transferred", _("已转接")

    customer = models.ForeignKey(Customer, verbose_name=_("客户"), on_delete=models.CASCADE,
                                 related_name="relationships")
    staff = models.ForeignKey("stores.Staff", verbose_name=_("员工"), on_delete=models.PROTECT,
                              related_name="relationships")
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    added_at = models.DateTimeField(_("添加时间"))
    add_way = models.PositiveSmallIntegerField(_("添加方式"), default=0)
    state = models.CharField(_("渠道参数"), max_length=30, blank=True)
    channel = models.ForeignKey("customers.Channel", verbose_name=_("渠道"), null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="relationships")
    contact_way = models.ForeignKey("customers.ContactWay", verbose_name=_("渠道活码"), null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="relationships")
    campaign_ref = models.CharField(_("活动编码"), max_length=16, blank=True)  # campaigns live to our right
    remark = models.CharField(_("备注"), max_length=30, blank=True)
    description = models.CharField(_("描述"), max_length=150, blank=True)
    remark_mobiles = ArrayField(models.CharField(max_length=32), verbose_name=_("备注手机号"), default=list,
                                blank=True)
    # HMAC hashes (customers.members.services.remark_mobile_hashes) of the normalised remark mobiles, written
    # with remark_mobiles: unification finds a member's customers by index (Member.mobile_hash) instead of
    # hashing every relationship. db_default: raw INSERT/COPY that leave it out (no mobiles) stay valid.
    remark_mobile_hashes = ArrayField(models.CharField(max_length=64), verbose_name=_("备注手机号哈希"),
                                      default=list, db_default=Value([], output_field=ArrayField(
                                          models.CharField(max_length=64))), blank=True, editable=False)
    tag_ids = ArrayField(models.IntegerField(), verbose_name=_("标签"), default=list, blank=True)
    status = models.CharField(_("状态"), max_length=24, choices=Status.choices, default=Status.ACTIVE)
    ended_at = models.DateTimeField(_("结束时间"), null=True, blank=True)
    synced_at = models.DateTimeField(_("最近同步"), null=True, blank=True)

    objects = RelationshipQuerySet.as_manager()

    class Meta:
        verbose_name = _("跟进关系")
        verbose_name_plural = _("跟进关系")
        ordering = ["-added_at"]
        constraints = [
            models.UniqueConstraint(fields=["staff", "customer"], name="relationship_staff_customer"),
            models.CheckConstraint(condition=models.Q(status="active", ended_at__isnull=True)
                                   | (~models.Q(status="active") & models.Q(ended_at__isnull=False)),
                                   name="relationship_ended_iff_not_active"),
        ]
        indexes = [
            models.Index(fields=["customer", "status"], name="relationship_customer"),
            models.Index(fields=["store", "added_at"], name="relationship_store_added"),
            models.Index(fields=["staff", "status"], name="relationship_staff_status"),
            models.Index(fields=["ended_at"], name="relationship_ended", condition=models.Q(ended_at__isnull=False)),
            # Only the few relationships with a remark mobile: small, and no GIN entry per empty array.
            GinIndex(fields=["remark_mobile_hashes"], name="relationship_mobile_hashes",
                     condition=~models.Q(remark_mobile_hashes=[])),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id} → {self.customer_id}"
