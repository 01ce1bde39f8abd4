"""Contacts at startup: sync kinds (同步记录 → 立即同步), beat schedules, the 工作台 panel and what each
role may do with customers and relationships."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from customers.contacts.services import FULL_KIND, RECONCILE_KIND
from portal.dashboard import Panel, panel_register
from portal.schedules import Schedule, schedule_register
from portal.wecom.syncs import SyncKind, sync_kind_register
from stores.access.models import Role
from stores.access.roles import READ, RoleGrants, role_permissions_extend

# -- syncs and schedules ----------------------------------------------------------------------------------
sync_kind_register(SyncKind(kind=FULL_KIND, label=str(gettext_lazy("客户全量同步")),
                            task="customers.contacts.tasks.customers_sync_full_task"))
sync_kind_register(SyncKind(kind=RECONCILE_KIND, label=str(gettext_lazy("客户对账")),
                            task="customers.contacts.tasks.customers_reconcile_task"))
# After the address-book sync (02:30), so new members' customers come along the same night.
schedule_register(Schedule(name="customers.sync_full", task="customers.contacts.tasks.customers_sync_full_task",
                           crontab="10 3 * * *", description=str(gettext_lazy("企业微信客户全量同步（可续跑）"))))
schedule_register(Schedule(name="customers.reconcile", task="customers.contacts.tasks.customers_reconcile_task",
                           crontab="40 5 * * *",
                           description=str(gettext_lazy("客户对账：修复与企业微信不一致的跟进关系"))))


# -- 工作台 panel ------------------------------------------------------------------------------------------
def _when(run) -> str:
    return timezone.localtime(run.started_at).strftime("%m-%d %H:%M")


def customers_sync_panel(request) -> dict | None:
    """The last full sync and what the last reconciliation repaired (HQ: whoever may read 同步记录)."""
    from portal.wecom.models import SyncRun

    if not request.user.has_perm("wecom.view_syncrun"):
        return None
    full = SyncRun.objects.filter(kind=FULL_KIND).order_by("-started_at").first()
    reconcile = SyncRun.objects.filter(kind=RECONCILE_KIND).order_by("-started_at").first()
    url = reverse("admin:wecom_syncrun_changelist")
    stats, notes = [], []
    if full is not None:
        p = full.progress
        stats.append({"label": _("全量同步员工"), "value": f"{p.get('staff_done', 0)}/{p.get('staff_total', 0)}",
                      "url": f"{url}?kind__exact={FULL_KIND}"})
        message = _("客户全量同步：%(when)s %(status)s，新增客户 %(c)d，新增关系 %(r)d，更新 %(u)d，结束 %(e)d")
        notes.append({"text": message % {
            "when": _when(full), "status": full.get_status_display(), "c": p.get("customers_created", 0),
            "r": p.get("relationships_created", 0), "u": p.get("relationships_updated", 0),
            "e": p.get("relationships_ended", 0)}, "warn": full.status == SyncRun.Status.FAILED})
    if reconcile is not None:
        p = reconcile.progress
        repaired = p.get("added", 0) + p.get("ended", 0)
        stats.append({"label": _("对账修复"), "value": repaired, "url": f"{url}?kind__exact={RECONCILE_KIND}"})
        text = _("客户对账：%(when)s %(status)s，核对员工 %(s)d 名，补录关系 %(a)d，结束关系 %(e)d，出错 %(x)d") % {
            "when": _when(reconcile), "status": reconcile.get_status_display(), "s": p.get("staff", 0),
            "a": p.get("added", 0), "e": p.get("ended", 0), "x": p.get("errors", 0)}
        samples = (p.get("samples") or {}).get("added", [])[:3] + (p.get("samples") or {}).get("ended", [])[:3]
        if samples:
            text += _("（例：%(s)s）") % {"s": "、".join("/".join(str(x) for x in sample) for sample in samples)}
        notes.append({"text": text, "warn": bool(repaired) or reconcile.status == SyncRun.Status.FAILED})
    if not stats:
        return None
    return {"stats": stats, "notes": notes}


panel_register(Panel(key="customers_sync", title=gettext_lazy("客户同步"), order=35, build=customers_sync_panel))


# -- permissions ------------------------------------------------------------------------------------------
def _declare_permissions() -> None:
    # HQ sees every customer; managers see the customers and relationships of their scope;
    # store staff work on the mobile page only. Customers come from WeCom: nobody adds or deletes them here.
    grants: RoleGrants = {
        Role.HQ_ADMIN: {"customer": ("view", "change"), "relationship": ("view", "change")},
        Role.HQ_OPERATOR: {"customer": ("view", "change"), "relationship": ("view", "change")},
        Role.REGION_MANAGER: {"customer": READ, "relationship": READ},
        Role.FRANCHISEE_OWNER: {"customer": READ, "relationship": READ},
        Role.STORE_MANAGER: {"customer": READ, "relationship": READ},
    }
    for role, models in grants.items():
        for model, actions in models.items():
            role_permissions_extend(role=role, app_label="customers", model=model, actions=actions)


_declare_permissions()
