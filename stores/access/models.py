"""Portal roles and the scope each role grants; integration API tokens bound to a user."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import OwnRowsQuerySet, ScopeKind, UserScope, region_ids_with_descendants


class Role(models.TextChoices):
    HQ_ADMIN = "hq_admin", _("总部管理员")
    HQ_OPERATOR = "hq_operator", _("总部运营")
    HQ_FINANCE = "hq_finance", _("总部财务")
    REGION_MANAGER = "region_manager", _("区域经理")
    FRANCHISEE_OWNER = "franchisee_owner", _("加盟商")
    STORE_MANAGER = "store_manager", _("店长")
    STORE_STAFF = "store_staff", _("店员")


HQ_ROLES = {Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.HQ_FINANCE}
STORE_ROLES = {Role.STORE_MANAGER, Role.STORE_STAFF}


class Access(models.Model):
    """A portal user's role and the part of the organisation it covers."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("用户"), on_delete=models.CASCADE, related_name="access"
    )
    role = models.CharField(_("角色"), max_length=32, choices=Role.choices)
    regions = models.ManyToManyField("stores.Region", verbose_name=_("管辖区域"), blank=True)
    franchisee = models.ForeignKey(
        "stores.Franchisee", verbose_name=_("加盟商"), null=True, blank=True, on_delete=models.PROTECT
    )
    store = models.ForeignKey("stores.Store", verbose_name=_("门店"), null=True, blank=True, on_delete=models.PROTECT)
    staff = models.OneToOneField(
        "stores.Staff", verbose_name=_("对应员工"), null=True, blank=True, on_delete=models.SET_NULL,
        related_name="access",
    )

    objects = OwnRowsQuerySet.as_manager()

    class Meta:
        verbose_name = _("角色授权")
        verbose_name_plural = _("角色授权")
        constraints = [
            models.CheckConstraint(
                condition=~Q(role="franchisee_owner") | Q(franchisee__isnull=False),
                name="access_franchisee_owner_has_franchisee",
            ),
            models.CheckConstraint(
                condition=~Q(role__in=["store_manager", "store_staff"]) | Q(store__isnull=False),
                name="access_store_roles_have_store",
            ),
            models.CheckConstraint(
                condition=~Q(role="store_staff") | Q(staff__isnull=False),
                name="access_store_staff_is_staff",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_role_display()}"

    def scope(self) -> UserScope:
        if self.role in HQ_ROLES:
            return UserScope(kind=ScopeKind.ALL)
        if self.role == Role.REGION_MANAGER:
            ids = list(self.regions.values_list("pk", flat=True))
            return UserScope(kind=ScopeKind.REGIONS, region_ids=region_ids_with_descendants(region_ids=ids))
        if self.role == Role.FRANCHISEE_OWNER:
            return UserScope(kind=ScopeKind.FRANCHISEE, franchisee_id=self.franchisee_id)
        kind = ScopeKind.STORE if self.role == Role.STORE_MANAGER else ScopeKind.SELF
        return UserScope(kind=kind, store_id=self.store_id, staff_id=self.staff_id)


def api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiToken(models.Model):
    """A token for an integration (POS, mini-program). Only its hash is stored; the key is shown once.

    It acts as its user (the scope), limited further by its mode (read-only or read-write), the API
    resources it may reach (route basenames, e.g. ``member``; none listed = all) and its expiry.
    """

    class Mode(models.TextChoices):
        READ_ONLY = "read_only", _("只读")
        READ_WRITE = "read_write", _("读写")

    class State(models.TextChoices):
        ACTIVE = "active", _("有效")
        EXPIRED = "expired", _("已过期")
        REVOKED = "revoked", _("已吊销")

    name = models.CharField(_("名称"), max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("代表用户（决定权限范围）"), on_delete=models.CASCADE,
        related_name="api_tokens",
    )
    prefix = models.CharField(_("前缀"), max_length=8, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("创建时间"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("最近使用"), null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("吊销时间"), null=True, blank=True)
    mode = models.CharField(_("读写权限"), max_length=16, choices=Mode.choices, default=Mode.READ_WRITE)
    resources = ArrayField(
        models.CharField(max_length=64), verbose_name=_("可访问的接口"), default=list, blank=True,
        help_text=_("留空表示全部接口"),
    )
    expires_at = models.DateTimeField(_("到期时间"))

    objects = OwnRowsQuerySet.as_manager()

    class Meta:
        verbose_name = _("API 令牌")
        verbose_name_plural = _("API 令牌")

    def __str__(self) -> str:
        return f"{self.name}（{self.prefix}…）"

    def state(self, *, at: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at <= (at or timezone.now()):
            return self.State.EXPIRED
        return self.State.ACTIVE

    def allows(self, *, method: str, resource: str | None) -> bool:
        """May this token make a ``method`` request to ``resource`` (a route basename; None = not a resource)?"""
        if self.mode != self.Mode.READ_WRITE and method.upper() not in ("GET", "HEAD", "OPTIONS"):
            return False
        return not self.resources or resource in self.resources

    @staticmethod
    def key_generate() -> str:
        return "xe_" + secrets.token_urlsafe(32)
