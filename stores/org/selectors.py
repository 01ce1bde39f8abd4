"""Reads of the organisation within a viewer's scope: the stores and the active staff the mobile task page
lists (the first few of each, in a stable order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import QuerySet

from stores.access.scoping import UserScope, user_scope
from stores.models import Staff, Store

if TYPE_CHECKING:
    from portal.models import User

STORES_SHOWN = 20
STAFF_SHOWN = 200


@dataclass(frozen=True)
class OrgInScope:
    scope: UserScope
    stores: QuerySet[Store]  # by code, at most STORES_SHOWN
    staff: QuerySet[Staff]  # active members only, by store then name, at most STAFF_SHOWN


def org_in_scope(*, viewer: User) -> OrgInScope:
    """The stores ``viewer`` may see and the active staff in them (a departed member is not listed)."""
    scope = user_scope(viewer)
    stores = Store.objects.for_scope(scope).select_related("region").order_by("code")[:STORES_SHOWN]
    staff = Staff.objects.for_scope(scope).active().select_related("store").order_by("store_id", "name")[:STAFF_SHOWN]
    return OrgInScope(scope=scope, stores=stores, staff=staff)
