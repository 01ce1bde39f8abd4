"""Members: who may see and manage them, and the nightly jobs that keep them unified and scored."""

from django.utils.translation import gettext_lazy as _

from portal.schedules import Schedule, schedule_register
from stores.access.roles import ALL, READ, RoleGrants, role_permissions_extend
from stores.models import Role

# HQ manages members and runs imports; every scoped role reads the members of its stores (the
# rows are scoped by home store). Store staff work on the mobile page, not with member records.
# An integration that writes members through the API needs add+change on member for its user.
_GRANTS: RoleGrants = {
    Role.HQ_ADMIN: {"member": ALL, "memberimport": ALL},
    Role.HQ_OPERATOR: {"member": ALL, "memberimport": ("view", "add")},
    Role.HQ_FINANCE: {"member": READ},
    Role.REGION_MANAGER: {"member": READ},
    Role.FRANCHISEE_OWNER: {"member": READ},
    Role.STORE_MANAGER: {"member": READ},
}
for _role, _models in _GRANTS.items():
    for _model, _actions in _models.items():
        role_permissions_extend(role=_role, app_label="customers", model=_model, actions=_actions)

schedule_register(Schedule(name="customers.members_unify", task="customers.members.tasks.members_unify_task",
                           crontab="40 2 * * *", description=str(_("会员与企业微信客户全量匹配（unionid、手机号）"))))
schedule_register(Schedule(name="customers.members_rfm", task="customers.members.tasks.rfm_compute_task",
                           crontab="20 3 * * *", description=str(_("计算会员 RFM 分值"))))
schedule_register(Schedule(name="customers.member_imports_requeue",
                           task="customers.members.tasks.member_imports_requeue_task", every_seconds=600,
                           description=str(_("重新提交停滞的会员导入任务"))))
schedule_register(Schedule(name="customers.member_import_files_purge",
                           task="customers.members.tasks.member_import_files_purge_task", every_seconds=3600,
                           description=str(_("删除超过保留期限的会员导入文件（含明文手机号）"))))
