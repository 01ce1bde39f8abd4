from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeComConfig(AppConfig):
    name = "portal.wecom"
    label = "wecom"
    verbose_name = _("企业微信")

    def ready(self) -> None:
        from portal.dashboard import Panel, panel_register
        from portal.schedules import Schedule, schedule_register
        from portal.wecom.dashboard import wecom_panel

        panel_register(Panel(key="wecom", title=_("企业微信"), order=20, build=wecom_panel))
        schedule_register(Schedule(name="wecom.callbacks_requeue", task="portal.wecom.tasks.callbacks_requeue_task",
                                   every_seconds=60, description=str(_("重新处理卡住或失败待重试的回调事件"))))
        schedule_register(Schedule(name="wecom.calls_purge", task="portal.wecom.tasks.calls_purge_task",
                                   crontab="17 3 * * *", description=str(_("清理过期的企业微信调用记录"))))
