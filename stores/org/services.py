"""Business actions on the organisation: closing stores, moving staff, departures."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.audit import audit_record
from portal.errors import DomainError
from stores.access.field_policy import user_edits_for_hq
from stores.access.services import access_end_for_departed
from stores.models import Staff, Store

if TYPE_CHECKING:
    from portal.models import User


class OrgError(DomainError):
    pass


@transaction.atomic
def store_close(*, stores: QuerySet[Store], on: date | None = None, by: User | None = None) -> int:
    """Close the given open stores as of ``on`` (today by default). One UPDATE; returns stores closed."""
    on = on or timezone.localdate()
    ids = list(stores.filter(status=Store.Status.OPEN).values_list("pk", flat=True))
    closed = Store.objects.filter(pk__in=ids).update(status=Store.Status.CLOSED, closed_on=on)
    audit_record(action="store.close", target_type="stores.store", target_ids=ids, by=by,
                 detail={"closed_on": on.isoformat()})
    return closed


@transaction.atomic
def store_reopen(*, stores: QuerySet[Store], by: User | None = None) -> int:
    ids = list(stores.filter(status=Store.Status.CLOSED).values_list("pk", flat=True))
    reopened = Store.objects.filter(pk__in=ids).update(status=Store.Status.OPEN, closed_on=None)
    audit_record(action="store.reopen", target_type="stores.store", target_ids=ids, by=by)
    return reopened


@transaction.atomic
def staff_move(*, staff: QuerySet[Staff], to_store: Store, by: User | None = None) -> int:
    """Move staff members to another (open) store. One UPDATE; returns members moved.

    A member's store decides what they see: only HQ editors move members (``by`` None is the system)."""
    if by is not None and not user_edits_for_hq(by):
        raise OrgError(_("只有总部可以调动员工"))
    if to_store.status != Store.Status.OPEN:
        raise OrgError(_("不能把员工调往已关店的门店：%(store)s") % {"store": to_store})
    ids = list(staff.exclude(store=to_store).values_list("pk", flat=True))
    moved = Staff.objects.filter(pk__in=ids).update(store=to_store)
    audit_record(action="staff.move", target_type="stores.staff", target_ids=ids, by=by,
                 detail={"to_store": to_store.pk})
    return moved


@transaction.atomic
def staff_depart(*, staff: QuerySet[Staff], at=None, by: User | None = None) -> int:
    """Mark members departed (their customers then await inheritance) and lock their logins out. Idempotent.

    By hand only HQ editors do it (``by`` None is the system): a departure ends a login, whatever its role."""
    if by is not None and not user_edits_for_hq(by):
        raise OrgError(_("只有总部可以标记员工离职"))
    at = at or timezone.now()
    ids = list(staff.filter(status=Staff.Status.ACTIVE).values_list("pk", flat=True))
    departed = Staff.objects.filter(pk__in=ids).update(status=Staff.Status.DEPARTED, departed_at=at,
                                                       inheritance_pending=True)
    staff_departures_apply(staff_ids=ids, by=by, via="manual")
    return departed


def staff_departures_apply(*, staff_ids: list[int], by: User | None = None, via: str) -> None:
    """What every departure does once the rows are marked (by hand or by the address-book sync): it is audited
    and the members' logins lose access, sessions and tokens in the same transaction."""
    if not staff_ids:
        return
    audit_record(action="staff.depart", target_type="stores.staff", target_ids=staff_ids, by=by,
                 detail={"via": via})
    access_end_for_departed(staff_ids=staff_ids, by=by)
