"""Roles map onto Django groups so the admin's own permission system applies.

Each app extends ``ROLE_PERMISSIONS`` for its models in AppConfig.ready(); ``role_groups_sync``
(run after migrate) makes the groups match. Scope (which rows) is separate: stores/access/scoping.py.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from django.core.exceptions import ImproperlyConfigured

from stores.access.models import Role

ALL = ("view", "add", "change", "delete")
READ = ("view",)
# role → model name → actions granted on it, as each app declares them
RoleGrants = dict[str, dict[str, tuple[str, ...]]]

ROLE_PERMISSIONS: dict[str, set[str]] = defaultdict(set)
ROLE_GROUP_NAMES = {role: f"角色：{role.label}" for role in Role}


_DECLARED_IN: dict[tuple[str, str, str], str] = {}  # (role, app_label, model) -> the module that grants it


def role_permissions_extend(*, role: str, app_label: str, model: str, actions: tuple[str, ...]) -> None:
    """Grant ``role`` these actions on a model. Grants only add up (nothing can replace or take one back), and
    a role's grants on a model come from one module, the model's subject: that module may grant more (e.g.
    "add" after "view"); another module granting the same role on the same model is refused at startup,
    naming both, so what a role may do on a model is read in one place."""
    declaring = sys._getframe(1).f_globals.get("__name__", "?")
    declared = _DECLARED_IN.setdefault((str(role), app_label, model), declaring)
    if declared != declaring:
        raise ImproperlyConfigured(f"role permissions {role}: {app_label}.{model} are granted by {declared} "
                                   f"and again by {declaring}")
    ROLE_PERMISSIONS[role].update(f"{app_label}.{action}_{model}" for action in actions)


def _declare_stores_permissions() -> None:
    grants: RoleGrants = {
        Role.HQ_ADMIN: {"region": ALL, "franchisee": ALL, "store": ALL, "staff": ALL, "access": ALL,
                        "apitoken": ALL},
        Role.HQ_OPERATOR: {"region": ALL, "franchisee": ALL, "store": ALL, "staff": ALL},
        Role.HQ_FINANCE: {"region": READ, "franchisee": READ, "store": READ, "staff": READ},
        Role.REGION_MANAGER: {"region": READ, "franchisee": READ, "store": ("view", "change"),
                              "staff": ("view", "change")},
        Role.FRANCHISEE_OWNER: {"franchisee": READ, "store": READ, "staff": ("view", "change")},
        Role.STORE_MANAGER: {"store": READ, "staff": ("view", "change")},
        Role.STORE_STAFF: {"store": READ, "staff": READ},
    }
    for role, models in grants.items():
        for model, actions in models.items():
            role_permissions_extend(role=role, app_label="stores", model=model, actions=actions)
    for model in ("user", "auditevent"):
        role_permissions_extend(role=Role.HQ_ADMIN, app_label="portal", model=model, actions=ALL)
    for model in ("periodictask", "crontabschedule", "intervalschedule"):
        role_permissions_extend(role=Role.HQ_ADMIN, app_label="django_celery_beat", model=model, actions=ALL)


_declare_stores_permissions()


def _declare_wecom_permissions() -> None:
    for model in ("wecomcall", "syncrun"):
        for role in (Role.HQ_ADMIN, Role.HQ_OPERATOR):
            role_permissions_extend(role=role, app_label="wecom", model=model, actions=READ)
    role_permissions_extend(role=Role.HQ_ADMIN, app_label="wecom", model="callbackevent", actions=("view", "change"))
    role_permissions_extend(role=Role.HQ_OPERATOR, app_label="wecom", model="callbackevent", actions=READ)
    role_permissions_extend(role=Role.HQ_ADMIN, app_label="wecom", model="syncrun", actions=("add",))  # 立即同步


_declare_wecom_permissions()
