"""The Celery app of the welcome benchmark's worker: the project's app, plus two things only the benchmark needs.

    celery -A bench.welcome_worker worker ...

- XIAOER_BENCH_WELCOME=poll: the baseline. acquisition_on_add does not send; it queues the welcome code in
  Redis and the benchmark's poller sends every 5 s, the way a beat job would.
- Without the sync area's add_external_contact handler (not merged yet), a stand-in stores the relationship
  and calls acquisition_on_add, as the real handler does; the benchmark prints which one ran.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django.setup()

from bench.welcome import POLL_QUEUE  # noqa: E402
from portal.celery import app  # noqa: E402


def _stand_in_handler(fields: dict) -> None:
    from django.utils import timezone

    from customers.acquisition.attribution import acquisition_on_add
    from customers.models import Customer, Relationship
    from stores.models import Staff

    staff = Staff.objects.select_related("store").get(userid=fields["UserID"])
    at = datetime.fromtimestamp(int(fields["CreateTime"]), tz=UTC)
    customer, _ = Customer.objects.get_or_create(external_userid=fields["ExternalUserID"], defaults={
        "name": "客户", "staff": staff, "store": staff.store, "region_id": staff.store.region_id,
        "first_added_at": at})
    relationship, _ = Relationship.objects.get_or_create(customer=customer, staff=staff, defaults={
        "store": staff.store, "added_at": at, "add_way": 1, "state": fields.get("State", ""),
        "synced_at": timezone.now()})
    acquisition_on_add(relationship=relationship, state=fields.get("State") or "",
                       welcome_code=fields.get("WelcomeCode") or "", event_at=at)


def _queue_instead_of_send(*, relationship, welcome, welcome_code, event_at):
    from portal.wecom.gateway import _redis

    _redis().rpush(POLL_QUEUE, json.dumps({"relationship": relationship.pk, "welcome": welcome.pk if welcome else None,
                                           "code": welcome_code, "event_at": event_at.isoformat()}))


def _install() -> None:
    from portal.wecom.events import event_handler, handler_for

    if handler_for("change_external_contact", "add_external_contact") is None:
        event_handler("change_external_contact", "add_external_contact")(_stand_in_handler)
        os.environ["XIAOER_BENCH_HANDLER"] = "stand-in"
    if os.environ.get("XIAOER_BENCH_WELCOME") == "poll":
        import customers.acquisition.attribution as attribution

        attribution.welcome_send = _queue_instead_of_send


_install()

__all__ = ["app"]
