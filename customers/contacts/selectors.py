"""Reads about customers: the customer page's sections, in the viewer's scope."""

from __future__ import annotations

from customers.contacts.events import TRANSFER_FAIL
from customers.models import Customer, Member, StageChange
from portal.models import AuditEvent, User


def customer_sections(*, customer: Customer, viewer: User) -> dict:
    """What the customer page shows beyond its fields: only sections that have something in them, each read
    in ``viewer``'s scope (a member homed in another store is that store's: not shown, as if there were none)."""
    sections: dict = {}
    if customer.member_id:
        member = Member.objects.for_user(viewer).filter(pk=customer.member_id).select_related("home_store").first()
        if member is not None:
            sections["member"] = member
    changes = list(StageChange.objects.for_user(viewer).filter(customer=customer).select_related("by")
                   .order_by("-at")[:50])
    if changes:
        sections["stage_changes"] = changes
    failures = list(AuditEvent.objects.filter(action=TRANSFER_FAIL, target_type="customers.customer",
                                              target_ids__contains=[customer.pk]).order_by("-at")[:20])
    if failures:
        sections["transfer_failures"] = failures
    return sections
