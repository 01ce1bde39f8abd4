from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy as _


class PortalAdminConfig(AdminConfig):
    default_site = "portal.admin_site.XiaoerAdminSite"


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("平台")

    def ready(self) -> None:
        from portal import (
            celery_signals,  # noqa: F401  (connects close_old_connections)
            checks,  # noqa: F401  (registers the production settings checks)
        )
        from portal.schedules import Schedule, schedule_register

        schedule_register(Schedule(name="platform.beat_heartbeat", task="portal.tasks.beat_heartbeat_task",
                                   every_seconds=60, description=str(_("调度心跳：工作台据此显示调度是否在运行"))))
