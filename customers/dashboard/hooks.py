"""The add-fan dashboard's registrations: beat jobs, the 工作台 panel, who may view it."""

from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from customers.dashboard.selectors import acquisition_today
from portal.dashboard import Panel, panel_register
from portal.schedules import Schedule, schedule_register
from stores.access.models import Role
from stores.access.roles import READ, role_permissions_extend

VIEWERS = (Role.HQ_ADMIN, Role.HQ_OPERATOR, Role.HQ_FINANCE, Role.REGION_MANAGER, Role.FRANCHISEE_OWNER,
           Role.STORE_MANAGER)


def acquisition_panel(request) -> dict | None:
    """Today's adds / deletions / net in the viewer's scope, live, linking to the dashboard."""
    if not request.user.has_perm("customers.view_acquisitiondaily"):
        return None
    today = acquisition_today(viewer=request.user)
    url = reverse("admin:customers_acquisitiondaily_dashboard")
    return {
        "stats": [
            {"label": _("今日新增"), "value": today.adds, "url": url},
            {"label": _("今日删除"), "value": today.deletions, "url": url},
            {"label": _("今日净增"), "value": today.net, "url": url},
        ],
        "notes": [{"text": _("客户删除 %(by_customer)d · 员工删除 %(by_staff)d · 删除率 %(rate)s%%") % {
            "by_customer": today.deleted_by_customer, "by_staff": today.deleted_by_staff,
            "rate": today.deletion_rate}}],
    }


panel_register(Panel(key="acquisition", title=gettext_lazy("今日加粉"), order=15, build=acquisition_panel))

schedule_register(Schedule(name="customers.acquisition_yesterday", crontab="5 0 * * *",
                           task="customers.dashboard.tasks.acquisition_yesterday_build_task",
                           description=str(gettext_lazy("加粉看板：生成昨日统计"))))
schedule_register(Schedule(name="customers.acquisition_today", every_seconds=600,
                           task="customers.dashboard.tasks.acquisition_today_build_task",
                           description=str(gettext_lazy("加粉看板：刷新今日统计"))))

for _role in VIEWERS:
    role_permissions_extend(role=_role, app_label="customers", model="acquisitiondaily", actions=READ)
