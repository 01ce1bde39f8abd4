"""The task engine at startup: who may do what in the admin, and its beat jobs."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

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

# -- rollups (campaigns/tasks/rollups.py, reconcile.py, dashboard.py) ---------------------------------------
schedule_register(Schedule(name="campaigns.tasks.rollups_reconcile", task="campaigns.tasks.rollups_reconcile",
                           crontab="40 3 * * *", description=str(gettext_lazy("任务统计：核对并修复门店计数"))))
