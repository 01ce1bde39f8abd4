"""Helpers for the acquisition tests: members loaded into the sandbox, a code as WeCom holds it, the relationship
the sync stores before attribution. Fixtures (the org in the sandbox, a channel with its welcome) are in conftest.py."""

from __future__ import annotations

from django.utils import timezone

from customers.models import Customer, Relationship
from portal.wecom.gateway import wecom_call
from stores.models import Staff, Store


def sandbox_members_load(sandbox, staff: list[Staff]) -> None:
    """WeCom knows these members (codes can only be made for members it knows)."""
    departments = {s.store_id for s in staff}
    sandbox.do("addressbook/load", departments=[{"id": 1000 + d, "name": f"门店{d}"} for d in departments],
               members=[{"userid": s.userid, "name": s.name, "department": [1000 + s.store_id]} for s in staff])


def way_in_sandbox(config_id: str) -> dict:
    return wecom_call("externalcontact/get_contact_way", data={"config_id": config_id})["contact_way"]


def relationship_store(*, external_userid: str, name: str, staff: Staff, state: str = "") -> Relationship:
    """What the sync developer's add handler stores before it calls acquisition_on_add."""
    store: Store = staff.store
    customer, _ = Customer.objects.get_or_create(external_userid=external_userid, defaults={
        "name": name, "staff": staff, "store": store, "region": store.region, "franchisee": store.franchisee,
        "first_added_at": timezone.now()})
    relationship, _ = Relationship.objects.get_or_create(customer=customer, staff=staff, defaults={
        "store": store, "added_at": timezone.now(), "add_way": 1, "state": state})
    return relationship
