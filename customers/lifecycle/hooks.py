"""The lifecycle at startup: who may read the stage history."""

from __future__ import annotations

from stores.access.models import Role
from stores.access.roles import READ, role_permissions_extend

# The stage history is read-only for everyone; each role sees its own scope's customers.
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER, Role.STORE_MANAGER):
    role_permissions_extend(role=_role, app_label="customers", model="stagechange", actions=READ)
