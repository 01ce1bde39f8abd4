"""The task engine at startup: who may do what in the admin, and its beat jobs."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from materials.library.services import materials_withdrawn_listen
from portal.dashboard import Panel, panel_register
from portal.demo import demo_seeder_register
from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import READ, role_permissions_extend

EDIT = ("view", "add", "change")  # never delete: tasks are cancelled, their history stays
WORK = ("storetask", "assignment", "assignmentevent", "evidence", "followup")

# HQ operators and franchisee owners (their own stores; the services check) write and dispatch tasks; everyone
# else reads what reaches their scope. Store roles act on the mobile page, through the services.
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.FRANCHISEE_OWNER):
    role_permissions_extend(role=_role, app_label="campaigns", model="campaign", actions=EDIT)
    role_permissions_extend(role=_role, app_label="campaigns", model="task", actions=EDIT)
for _role in (Role.HQ_FINANCE, Role.REGION_MANAGER, Role.STORE_MANAGER):
    role_permissions_extend(role=_role, app_label="campaigns", model="campaign", actions=READ)
    role_permissions_extend(role=_role, app_label="campaigns", model="task", actions=READ)
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.HQ_FINANCE, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER,
              Role.STORE_MANAGER):
    for _model in WORK:
        role_permissions_extend(role=_role, app_label="campaigns", model=_model, actions=READ)

schedule_register(Schedule(name="campaigns.tasks.beat", task="campaigns.tasks.beat", every_seconds=60,
                           description=str(gettext_lazy("定时任务下发与重复任务生成"))))
schedule_register(Schedule(name="campaigns.tasks.redispatch", task="campaigns.tasks.redispatch",
                           every_seconds=900, description=str(gettext_lazy("未截止任务补发给新开门店和新员工"))))
schedule_register(Schedule(name="campaigns.tasks.overdue", task="campaigns.tasks.overdue", every_seconds=300,
                           description=str(gettext_lazy("标记逾期的任务"))))
schedule_register(Schedule(name="campaigns.tasks.reminders", task="campaigns.tasks.reminders", every_seconds=60,
                           description=str(gettext_lazy("任务提醒、逾期升级与限额后补发通知"))))
role_permissions_extend(role=Role.HQ_ADMIN, app_label="campaigns", model="reminderlog", actions=READ)
for _role in (Role.HQ_OPERATOR, Role.HQ_FINANCE, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER, Role.STORE_MANAGER):
    role_permissions_extend(role=_role, app_label="campaigns", model="reminderlog", actions=READ)


def _materials_withdrawn(material_ids: list[int], reason: str) -> None:
    from campaigns.tasks.services import task_materials_withdraw

    task_materials_withdraw(material_ids=material_ids, reason=reason)


# campaigns is right of materials: it listens for withdrawn materials instead of materials calling it.
materials_withdrawn_listen(name="campaigns.tasks", listener=_materials_withdrawn)

# -- rollups (campaigns/tasks/rollups.py, reconcile.py, dashboard.py) ---------------------------------------
schedule_register(Schedule(name="campaigns.tasks.rollups_reconcile", task="campaigns.tasks.rollups_reconcile",
                           crontab="40 3 * * *", description=str(gettext_lazy("任务统计：核对并修复门店计数"))))


def tasks_panel(request) -> dict | None:
    """The 工作台: today's open tasks, stores with overdue work and escalations waiting for the viewer, live, in
    the viewer's scope, linking to the task dashboard and the overdue work."""
    from urllib.parse import urlencode

    from django.urls import reverse
    from django.utils.translation import gettext as _

    from campaigns.tasks.rollups import workbench

    if not request.user.has_perm("campaigns.view_task"):
        return None
    figures = workbench(viewer=request.user)
    dashboard = reverse("admin:campaigns_task_dashboard")
    overdue = reverse("admin:campaigns_assignment_changelist") + "?" + urlencode({"status__exact": "overdue"})
    return {
        "stats": [
            {"label": _("今日进行中任务"), "value": figures.open_today, "url": dashboard},
            {"label": _("今日截止"), "value": figures.due_today, "url": dashboard},
            {"label": _("逾期门店"), "value": figures.overdue_stores, "url": overdue},
            {"label": _("待我处理的升级"), "value": figures.escalations, "url": overdue},
        ],
        "notes": [{"text": _("有 %(n)d 家门店的任务已逾期并按计划升级给你") % {"n": figures.escalations},
                   "warn": True}] if figures.escalations else [],
    }


panel_register(Panel(key="tasks", title=gettext_lazy("门店任务"), order=12, build=tasks_panel))


def _demo_run() -> str:
    from campaigns.tasks.demo import tasks_demo_run

    return tasks_demo_run()


demo_seeder_register(name="tasks", seed=_demo_run)
