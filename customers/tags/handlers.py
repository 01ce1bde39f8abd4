"""WeCom's change_external_tag event: the corp tag library changed in WeCom."""

from __future__ import annotations

from customers.tags.services import tag_event_apply
from portal.wecom.events import event_handler


@event_handler("change_external_tag")
def customers_tag_changed(fields: dict) -> None:
    tag_event_apply(fields=fields)
