"""The library at startup: who may curate it, and the beat job that warns of and withdraws expiring materials."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from portal.demo import demo_seeder_register
from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import ALL, READ, role_permissions_extend

EDIT = ("view", "add", "change")  # never delete: materials are archived, their history and usage stay

# HQ curates the brand's library; a franchisee keeps its own local materials (the service checks ownership);
# a region manager reads what reaches their stores. Store roles use the library on the mobile page.
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR):
    role_permissions_extend(role=_role, app_label="materials", model="material", actions=EDIT)
    role_permissions_extend(role=_role, app_label="materials", model="materialversion", actions=READ)
    role_permissions_extend(role=_role, app_label="materials", model="folder", actions=ALL)
    role_permissions_extend(role=_role, app_label="materials", model="materialtag", actions=ALL)
role_permissions_extend(role=Role.FRANCHISEE_OWNER, app_label="materials", model="material", actions=EDIT)
role_permissions_extend(role=Role.FRANCHISEE_OWNER, app_label="materials", model="materialversion", actions=READ)
role_permissions_extend(role=Role.REGION_MANAGER, app_label="materials", model="material", actions=READ)
role_permissions_extend(role=Role.REGION_MANAGER, app_label="materials", model="materialversion", actions=READ)

schedule_register(Schedule(name="materials.expiry", task="materials.library.tasks.materials_expiry_task",
                           every_seconds=900, description=str(gettext_lazy("素材到期提醒与过期撤下"))))


def _demo_run() -> str:
    from materials.library.demo import materials_demo_run

    return materials_demo_run()


demo_seeder_register(name="materials", seed=_demo_run)
