"""Segments at startup: who may build and freeze segments, and the nightly recount of segment sizes."""

from django.utils.translation import gettext_lazy

from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import ALL, READ, role_permissions_extend

# HQ builds and freezes segments; region managers look (their counts are scoped to their regions).
for _role in (Role.HQ_ADMIN, Role.HQ_OPERATOR):
    role_permissions_extend(role=_role, app_label="customers", model="segment", actions=ALL)
    # A snapshot is made, then never edited or deleted.
    role_permissions_extend(role=_role, app_label="customers", model="segmentsnapshot", actions=("view", "add"))
role_permissions_extend(role=Role.REGION_MANAGER, app_label="customers", model="segment", actions=READ)


schedule_register(Schedule(name="customers.segments_recount", crontab="30 3 * * *",
                           task="customers.segments.tasks.segments_recount_task",
                           description=str(gettext_lazy("客户分层：重新统计各分层的人数"))))
