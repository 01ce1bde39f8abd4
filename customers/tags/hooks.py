"""Tags at startup: who may manage the corp tag library, and the job that resumes interrupted bulk tagging."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import ALL, role_permissions_extend

# HQ manages the corp tag library (brand-wide); everyone else sees tags on the customers of their scope.
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR):
    for _model in ("taggroup", "tag"):
        role_permissions_extend(role=_role, app_label="customers", model=_model, actions=ALL)

schedule_register(Schedule(name="customers.tagging_resume", task="customers.tags.tasks.customers_tagging_resume_task",
                           every_seconds=600, description=str(gettext_lazy("继续中断的批量打标签任务"))))
