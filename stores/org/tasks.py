from portal.tasks import xiaoer_task
from portal.wecom.gateway import WeComRateLimited, WeComUnavailable


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def addressbook_sync_task(*, force: bool = False) -> dict:
    from stores.org.addressbook import addressbook_sync_full

    run = addressbook_sync_full(force=force)
    return {"status": run.status, **run.progress}
