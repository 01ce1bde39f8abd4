"""Material usage at startup: the flush beat job and who may read the analytics."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import READ, role_permissions_extend

# Everyone who reads dashboards reads material use, each in their own scope (the queryset decides what).
VIEWERS = (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.HQ_FINANCE, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER,
           Role.STORE_MANAGER)

for _role in VIEWERS:
    role_permissions_extend(role=_role, app_label="materials", model="materialuse", actions=READ)

schedule_register(Schedule(name="materials.uses_flush", task="materials.usage.tasks.material_uses_flush_task",
                           every_seconds=10, description=str(gettext_lazy("素材使用记录：批量写入数据库"))))
