"""Acquisition jobs (thin: the services do the work)."""

from portal.tasks import xiaoer_task
from portal.wecom.gateway import WeComRateLimited, WeComUnavailable


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def contact_ways_provision_task(*, run_id: int) -> dict:
    """Create a region's pending codes in WeCom; a retry continues with the codes still pending."""
    from customers.acquisition.services import contact_ways_provision_run

    run = contact_ways_provision_run(run_id=run_id)
    return {"status": run.status, **run.progress}


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def contact_way_members_refresh_task(*, store_id: int) -> int:
    from customers.acquisition.services import contact_way_members_refresh
    from stores.models import Store

    store = Store.objects.filter(pk=store_id).first()
    return contact_way_members_refresh(store=store) if store else 0
