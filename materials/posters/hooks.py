"""Posters at startup: who reads the rendered posters in the admin (staff fetch their own on the mobile page),
and the beat job that continues poster jobs whose worker died."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import READ, role_permissions_extend

for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER, Role.STORE_MANAGER):
    role_permissions_extend(role=_role, app_label="materials", model="renderedposter", actions=READ)

schedule_register(Schedule(name="materials.posters_resume", task="materials.posters.tasks.posters_job_resume_task",
                           every_seconds=600, description=str(gettext_lazy("继续中断的海报生成任务"))))
