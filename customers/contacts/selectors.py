"""Reads about customers: the customer page's sections, in the viewer's scope."""

from __future__ import annotations

from customers.contacts.events import TRANSFER_FAIL
from customers.models import Customer, Member, Relationship, StageChange
from portal.models import AuditEvent, User
from stores.org.models import Staff


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


def customer_address_for(*, viewer: User, customer_id: int, staff: Staff | None) -> str:
    """How ``staff`` addresses a customer in a script: the remark they gave the customer in WeCom, else the
    customer's nickname. Empty when ``viewer``'s scope does not hold the customer (another store's, another
    guide's for store staff, or no such customer): the caller cannot tell those apart, so nothing leaks."""
    customer = Customer.objects.for_user(viewer).filter(pk=customer_id).values("pk", "name").first()
    if customer is None:
        return ""
    if staff is not None:
        remark = (Relationship.objects.filter(customer_id=customer["pk"], staff=staff).exclude(remark="")
                  .values_list("remark", flat=True).first())
        if remark:
            return remark
    return customer["name"]
