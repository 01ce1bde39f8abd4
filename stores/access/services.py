"""Granting roles, keeping role groups in sync, and issuing integration API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import CharField, Q, Value
from django.db.models.functions import MD5, Cast, Concat, Random
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from stores.access.models import HQ_ROLES, api_key_hash
from stores.access.roles import ROLE_GROUP_NAMES, ROLE_PERMISSIONS
from stores.models import Access, ApiToken, Franchisee, Region, Role, Staff, Store

if TYPE_CHECKING:
    from portal.models import User


class AccessError(DomainError):
    pass


def role_groups_sync() -> int:
    """Create one group per role holding exactly the declared permissions. Idempotent."""
    for role, group_name in ROLE_GROUP_NAMES.items():
        group, _created = Group.objects.get_or_create(name=group_name)
        wanted = ROLE_PERMISSIONS.get(role, set())
        q = Q(pk__in=[])
        for perm in wanted:
            app_label, codename = perm.split(".", 1)
            q |= Q(content_type__app_label=app_label, codename=codename)
        group.permissions.set(Permission.objects.filter(q))
    return len(ROLE_GROUP_NAMES)


def access_validate(*, role: str | None, regions, franchisee, store, staff) -> None:
    if role not in Role.values:
        raise AccessError(_("未知角色：%(role)s") % {"role": role})
    if role == Role.REGION_MANAGER and not regions:
        raise AccessError(_("区域经理至少要管辖一个区域"))
    if role == Role.FRANCHISEE_OWNER and franchisee is None:
        raise AccessError(_("加盟商角色必须指定加盟商"))
    if role in (Role.STORE_MANAGER, Role.STORE_STAFF) and store is None:
        raise AccessError(_("店长和店员必须指定门店"))
    if role == Role.STORE_STAFF and staff is None:
        raise AccessError(_("店员必须关联一名员工"))
    if staff is not None and store is not None and staff.store_id != store.pk:
        raise AccessError(_("关联员工不属于所选门店"))


@transaction.atomic
def access_grant(
    *,
    user,
    role: str,
    regions: list[Region] | None = None,
    franchisee: Franchisee | None = None,
    store: Store | None = None,
    staff: Staff | None = None,
    by: User | None = None,
) -> Access:
    """Give ``user`` a role and scope; they may log in to the admin unless they are store staff."""
    regions = list(regions or [])
    access_validate(role=role, regions=regions, franchisee=franchisee, store=store, staff=staff)
    access, _created = Access.objects.update_or_create(
        user=user,
        defaults={"role": role, "franchisee": franchisee if role == Role.FRANCHISEE_OWNER else None,
                  "store": store, "staff": staff},
    )
    access.regions.set(regions if role == Role.REGION_MANAGER else [])
    user.groups.set(Group.objects.filter(name=ROLE_GROUP_NAMES[Role(role)]))
    user.is_staff = role != Role.STORE_STAFF
    user.save(update_fields=["is_staff"])
    user.__dict__.pop("_xiaoer_scope", None)
    audit_record(action="access.grant", target_type="portal.user", target_ids=[user.pk], by=by,
                 detail={"role": role, "regions": sorted(r.pk for r in regions) if role == Role.REGION_MANAGER else [],
                         "franchisee": access.franchisee_id, "store": access.store_id, "staff": access.staff_id})
    return access


@transaction.atomic
def access_revoke(*, accesses, by: User | None = None) -> int:
    """Take roles away: the Access rows go, their logins lose the role groups and the admin, and their API
    tokens are revoked, in one transaction. The logins stay (history, a later grant); with no Access a login's
    scope is nothing, so its open sessions see nothing from their next request. Returns the roles removed."""
    rows = list(accesses.values_list("pk", "user_id", "role"))
    if not rows:
        return 0
    user_ids = sorted({user_id for _pk, user_id, _role in rows})
    Access.objects.filter(pk__in=[pk for pk, _user_id, _role in rows]).delete()
    user_model = get_user_model()
    user_model.groups.through.objects.filter(user_id__in=user_ids,
                                             group__name__in=list(ROLE_GROUP_NAMES.values())).delete()
    user_model.objects.filter(pk__in=user_ids, is_superuser=False).update(is_staff=False)
    api_token_revoke(tokens=ApiToken.objects.filter(user_id__in=user_ids), by=by)
    audit_record(action="access.revoke", target_type="portal.user", target_ids=user_ids, by=by,
                 detail={"roles": {str(user_id): role for _pk, user_id, role in rows}})
    return len(rows)


def access_is_hq(*, user) -> bool:
    return bool(user.is_superuser or Access.objects.filter(user=user, role__in=HQ_ROLES).exists())


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    key: str  # shown once; only the hash is kept


class ApiTokenError(DomainError):
    """A token that cannot be issued as asked (a message a user can read)."""


class ApiTokenExpired(ApiTokenError):
    """The token was valid but its expiry has passed."""


def api_token_default_expiry() -> datetime:
    return timezone.now() + timedelta(days=min(settings.XIAOER_API_TOKEN_DAYS, settings.XIAOER_API_TOKEN_MAX_DAYS))


def api_token_validate(*, mode: str, resources: Iterable[str], expires_at: datetime | None) -> list[str]:
    """Refuse an unknown mode or resource and an expiry in the past or beyond the maximum; the resources, sorted."""
    from portal.api_defaults import api_resources

    if mode not in ApiToken.Mode.values:
        raise ApiTokenError(_("未知的读写权限：%(mode)s") % {"mode": mode})
    resources = sorted(set(resources))
    unknown = sorted(set(resources) - set(api_resources()))
    if unknown:
        raise ApiTokenError(_("未知的接口：%(names)s") % {"names": "、".join(unknown)})
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ApiTokenError(_("到期时间必须晚于现在"))
    if expires_at is not None and expires_at > now + timedelta(days=settings.XIAOER_API_TOKEN_MAX_DAYS):
        raise ApiTokenError(_("令牌有效期最长 %(days)d 天") % {"days": settings.XIAOER_API_TOKEN_MAX_DAYS})
    return resources


def api_token_issue(
    *, name: str, user, by: User | None = None, mode: str = ApiToken.Mode.READ_WRITE, resources: Iterable[str] = (),
    expires_at: datetime | None = None,
) -> IssuedToken:
    """A new token acting as ``user``, limited to ``mode`` and ``resources`` (none = all), until ``expires_at``
    (default ``XIAOER_API_TOKEN_DAYS`` from now, at most ``XIAOER_API_TOKEN_MAX_DAYS``)."""
    resources = api_token_validate(mode=mode, resources=resources, expires_at=expires_at)
    expires_at = expires_at or api_token_default_expiry()
    key = ApiToken.key_generate()
    token = ApiToken.objects.create(name=name, user=user, prefix=key[:8], key_hash=api_key_hash(key), mode=mode,
                                    resources=resources, expires_at=expires_at)
    audit_record(action="api_token.issue", target_type="stores.apitoken", target_ids=[token.pk], by=by,
                 detail={"user_id": user.pk, "mode": mode, "resources": resources,
                         "expires_at": expires_at.isoformat()})
    return IssuedToken(token=token, key=key)


def api_token_revoke(*, tokens, by: User | None = None) -> int:
    ids = list(tokens.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    ApiToken.objects.filter(pk__in=ids).update(revoked_at=timezone.now())
    audit_record(action="api_token.revoke", target_type="stores.apitoken", target_ids=ids, by=by)
    return len(ids)


def api_token_authenticate(*, key: str) -> ApiToken | None:
    """The live token with this key, or None (unknown, revoked, inactive user); raises ApiTokenExpired."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=api_key_hash(key), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is not None and token.state() == ApiToken.State.EXPIRED:
        raise ApiTokenExpired(_("令牌已于 %(at)s 过期，请在管理后台签发新令牌") % {
            "at": timezone.localtime(token.expires_at).strftime("%Y-%m-%d %H:%M")})
    if token is not None:
        # At most one write a minute per token: integrations call often.
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def user_for_wecom_member(*, userid: str):
    """Who a WeCom sign-in is: the active login HQ bound (Access.staff) to this active, in-store member, or None.

    The chain is WeCom's userid → Staff (its userid is written only by the address-book sync) → Access (granted
    by HQ only). A member who left, a member without a store (HQ members sign in with a password) or an
    inactive login signs nobody in.
    """
    access = (Access.objects.select_related("user")
              .filter(staff__userid=userid, staff__status=Staff.Status.ACTIVE, staff__store__isnull=False,
                      user__is_active=True)
              .first())
    return access.user if access else None


@transaction.atomic
def access_end_for_departed(*, staff_ids: Iterable[int], by: User | None = None) -> int:
    """The logins bound to members who left lose access, in the caller's (the departure's) transaction.

    Each login is deactivated (Django then authenticates none of its sessions) and its password made unusable,
    which changes its session hash: every existing session is dead for good, even if HQ reactivates the login
    later (a rehire gets a new password or signs in through WeCom). Its API tokens are revoked. The login and
    its Access stay, as history; scope ignores an Access whose member left. Returns the logins locked out.
    """
    staff_ids = list(staff_ids)
    if not staff_ids:
        return 0
    user_ids = list(Access.objects.filter(staff_id__in=staff_ids).values_list("user_id", flat=True))
    if not user_ids:
        return 0
    scrambled = Concat(Value(UNUSABLE_PASSWORD_PREFIX),
                       MD5(Concat(Cast(Random(), CharField()), Cast("pk", CharField()))))
    get_user_model().objects.filter(pk__in=user_ids).update(is_active=False, password=scrambled)
    api_token_revoke(tokens=ApiToken.objects.filter(user_id__in=user_ids), by=by)
    audit_record(action="access.end_for_departed", target_type="portal.user", target_ids=user_ids, by=by,
                 detail={"staff_ids": staff_ids[:1000]})
    return len(user_ids)
