"""WeCom's change_external_contact events (add, edit, delete, transfer_fail), each applied by a service."""

from __future__ import annotations

from customers.contacts.events import contact_event_apply, transfer_failed_record
from portal.wecom.events import event_handler


# -- callbacks (change_external_contact, change_external_tag) -------------------------------------------
def _contact_handler(change_type: str):
    def handle(fields: dict) -> None:
        contact_event_apply(change_type=change_type, fields=fields)

    handle.__name__ = handle.__qualname__ = f"customers_{change_type}"  # named apart in registry errors
    return handle


for _change_type in ("add_external_contact", "add_half_external_contact", "edit_external_contact",
                     "del_external_contact", "del_follow_user"):
    event_handler("change_external_contact", _change_type)(_contact_handler(_change_type))


@event_handler("change_external_contact", "transfer_fail")
def customers_transfer_fail(fields: dict) -> None:
    transfer_failed_record(fields=fields)
