"""Scoping: one mechanism deciding which rows a user may see and change.

Every scoped model's manager is a ``ScopedQuerySet``; ``Model.objects.for_user(user)`` is the
only way the admin, the API, exports and the mobile page read scoped rows. ``user_scope``
is computed once per user object (request) from the user's ``Access`` role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self, TypeVar

from django.apps import apps
from django.db import connection, models
from django.db.models import Q

_M = TypeVar("_M", bound=models.Model)
_QS = TypeVar("_QS", bound=models.QuerySet[Any])


class ScopeKind(models.TextChoices):
    ALL = "all"  # HQ roles and superusers
    REGIONS = "regions"  # region manager: the stores of their regions and sub-regions
    FRANCHISEE = "franchisee"  # franchisee owner: all its stores
    STORE = "store"  # store manager: one store
    SELF = "self"  # store staff: one store, and only their own customers and work
    NONE = "none"  # logged in but given no role: sees nothing


@dataclass(frozen=True)
class UserScope:
    kind: str
    region_ids: frozenset[int] = field(default_factory=frozenset)
    franchisee_id: int | None = None
    store_id: int | None = None
    staff_id: int | None = None

    @property
    def is_hq(self) -> bool:
        return self.kind == ScopeKind.ALL

    def store_q(self) -> Q:
        """Filter on Store selecting the stores this scope covers."""
        if self.kind == ScopeKind.ALL:
            return Q()
        if self.kind == ScopeKind.REGIONS:
            return Q(region_id__in=self.region_ids)
        if self.kind == ScopeKind.FRANCHISEE:
            return Q(franchisee_id=self.franchisee_id)
        if self.kind in (ScopeKind.STORE, ScopeKind.SELF) and self.store_id:
            return Q(pk=self.store_id)
        return Q(pk__in=[])

    def store_ids(self) -> models.QuerySet:
        """A subquery of the covered store ids (stays inside SQL, never a Python list)."""
        return apps.get_model("stores", "Store").objects.filter(self.store_q()).values("pk")


NO_SCOPE = UserScope(kind=ScopeKind.NONE)
HQ_SCOPE = UserScope(kind=ScopeKind.ALL)

REGION_DESCENDANTS_SQL = """
WITH RECURSIVE tree(id) AS (
    SELECT id FROM stores_region WHERE id = ANY(%s)
    UNION
    SELECT r.id FROM stores_region r JOIN tree t ON r.parent_id = t.id
)
SELECT id FROM tree
"""


def region_ids_with_descendants(*, region_ids: list[int]) -> frozenset[int]:
    if not region_ids:
        return frozenset()
    with connection.cursor() as cursor:
        cursor.execute(REGION_DESCENDANTS_SQL, [list(region_ids)])
        return frozenset(row[0] for row in cursor.fetchall())


def user_scope(user) -> UserScope:
    """The scope of a user, cached on the user object for the rest of the request."""
    cached = getattr(user, "_xiaoer_scope", None)
    if cached is not None:
        return cached
    scope = _scope_compute(user)
    if user is not None and getattr(user, "pk", None):
        user._xiaoer_scope = scope
    return scope


def _scope_compute(user) -> UserScope:
    if user is None or not user.is_authenticated or not user.is_active:
        return NO_SCOPE
    if user.is_superuser:
        return HQ_SCOPE
    access_model = apps.get_model("stores", "Access")
    # An Access bound to a member who left grants nothing, whatever path left the login active.
    active = apps.get_model("stores", "Staff").Status.ACTIVE
    access = access_model.objects.filter(Q(staff__isnull=True) | Q(staff__status=active), user=user).first()
    if access is None:
        return NO_SCOPE
    return access.scope()


class ScopedQuerySet(models.QuerySet[_M]):
    """Base queryset of every scoped model. Subclasses say how the model reaches a store."""

    scope_store_field: str = "store"  # lookup from this model to Store's pk
    scope_staff_field: str | None = None  # lookup to Staff's pk, for the SELF scope

    def for_user(self, user) -> Self:
        return self.for_scope(user_scope(user))

    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.NONE:
            return self.none()
        if scope.kind == ScopeKind.SELF and self.scope_staff_field:
            return self.filter(**{self.scope_staff_field: scope.staff_id})
        return self.filter(**{f"{self.scope_store_field}__in": scope.store_ids()})


class StoreQuerySet(ScopedQuerySet[_M]):
    scope_store_field = "pk"

    def open(self) -> Self:
        return self.filter(status="open")


class RegionQuerySet(ScopedQuerySet[_M]):
    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.REGIONS:
            return self.filter(pk__in=scope.region_ids)
        store_model = apps.get_model("stores", "Store")
        return self.filter(pk__in=store_model.objects.filter(scope.store_q()).values("region_id"))


class FranchiseeQuerySet(ScopedQuerySet[_M]):
    def for_scope(self, scope: UserScope) -> Self:
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.FRANCHISEE:
            return self.filter(pk=scope.franchisee_id)
        store_model = apps.get_model("stores", "Store")
        return self.filter(pk__in=store_model.objects.filter(scope.store_q()).values("franchisee_id"))


class OwnRowsQuerySet(ScopedQuerySet[_M]):
    """Rows that belong to a user (access, API tokens): HQ sees all, others their own, no scope nothing."""

    scope_user_field = "user"

    def for_user(self, user) -> Self:
        scope = user_scope(user)
        if scope.is_hq:
            return self
        if scope.kind == ScopeKind.NONE or user is None or not user.pk:
            return self.none()
        return self.filter(**{self.scope_user_field: user.pk})

    def for_scope(self, scope: UserScope) -> Self:
        return self if scope.is_hq else self.none()


class GlobalQuerySet(ScopedQuerySet[_M]):
    """Rows that belong to no store: the model DECLARES who reads them and why (a decision, never a default).

    ``scope_readers``:
    * ``HQ_ONLY`` — HQ roles see the rows; every other viewer gets nothing, whatever permission it is given.
    * ``EVERY_SCOPE`` — every viewer with a scope reads every row: brand-wide inventory (channels, corp tags,
      welcome copy). Who may *change* the rows is the admin's permission, not this.
    ``scope_global`` is the reason, repeated in tests/scoping_registry.GLOBAL. A viewer with no scope (no role,
    inactive, departed) sees nothing either way.
    """

    HQ_ONLY = "hq_only"
    EVERY_SCOPE = "every_scope"

    scope_readers: str = HQ_ONLY
    scope_global: str = ""

    def for_scope(self, scope: UserScope) -> Self:
        return global_rows(self, scope=scope, readers=self.scope_readers)


def global_rows(queryset: _QS, *, scope: UserScope, readers: str) -> _QS:
    """What a declared-global model shows to ``scope`` (also used for models whose manager is not ours)."""
    if scope.is_hq:
        return queryset
    if scope.kind == ScopeKind.NONE or readers != GlobalQuerySet.EVERY_SCOPE:
        return queryset.none()
    return queryset


def scope_global_declaration(model) -> tuple[str, str] | None:
    """(readers, reason) if ``model``'s default manager is a declared-global queryset, else None."""
    queryset_class = getattr(model._default_manager, "_queryset_class", None)
    if queryset_class is not None and issubclass(queryset_class, GlobalQuerySet) and queryset_class.scope_global:
        return queryset_class.scope_readers, queryset_class.scope_global
    return None


# Models whose manager is not a ScopedQuerySet (Django's auth, django-celery-beat, django-axes, and the portal's
# own technical logs): HQ only, registered with the admin base's ``scope_declare`` at startup (stores/apps.py).
# Their admin pages are further limited by permission: no non-HQ role holds any permission on them.
HQ_ONLY_MODELS: dict[str, str] = {
    "portal.User": "logins are managed by HQ admins (permission); what a login sees comes from its Access",
    "portal.AuditEvent": "the audit trail names every scope's rows: HQ admins only",
    "portal.BeatHeartbeat": "a single technical row, HQ admins only",
    "wecom.WeComCall": "technical log of outbound calls, HQ roles only",
    "wecom.CallbackEvent": "technical inbox of callbacks, HQ roles only",
    "wecom.AppMessageReceipt": "technical record of who got which app message (idempotency), HQ roles only",
    "wecom.SyncRun": "technical sync and job log, HQ roles only",
    "auth.Group": "role groups are kept by role_groups_sync; superusers only",
    "auth.Permission": "permissions are granted through roles; superusers only",
    "django_celery_beat.PeriodicTask": "schedules are HQ admins' (permission)",
    "django_celery_beat.CrontabSchedule": "schedules are HQ admins' (permission)",
    "django_celery_beat.IntervalSchedule": "schedules are HQ admins' (permission)",
    "django_celery_beat.SolarSchedule": "schedules are HQ admins' (permission)",
    "django_celery_beat.ClockedSchedule": "schedules are HQ admins' (permission)",
    "axes.AccessAttempt": "login throttling records name every user: superusers only",
    "axes.AccessLog": "login throttling records name every user: superusers only",
    "axes.AccessFailureLog": "login throttling records name every user: superusers only",
}


def hq_only_rows(queryset: models.QuerySet, user) -> models.QuerySet:
    return global_rows(queryset, scope=user_scope(user), readers=GlobalQuerySet.HQ_ONLY)
