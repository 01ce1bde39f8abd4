from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WeComConfig(AppConfig):
    name = "portal.wecom"
    label = "wecom"
    verbose_name = _("企业微信")

    def ready(self) -> None:
        from celery import signals as celery_signals

        from portal.dashboard import Panel, panel_register
        from portal.schedules import Schedule, schedule_register
        from portal.wecom import app_messages  # noqa: F401  (registers the template_card_event handler)
        from portal.wecom.dashboard import wecom_panel

        panel_register(Panel(key="wecom", title=_("企业微信"), order=20, build=wecom_panel))
        schedule_register(Schedule(name="wecom.callbacks_requeue", task="portal.wecom.tasks.callbacks_requeue_task",
                                   every_seconds=60, description=str(_("重新处理卡住或失败待重试的回调事件"))))
        schedule_register(Schedule(name="wecom.calls_purge", task="portal.wecom.tasks.calls_purge_task",
                                   crontab="17 3 * * *", description=str(_("清理过期的企业微信调用记录"))))
        schedule_register(Schedule(name="wecom.callbacks_purge", task="portal.wecom.tasks.callbacks_purge_task",
                                   crontab="37 3 * * *", description=str(_("清理保留期已过的企业微信回调事件"))))
        schedule_register(Schedule(name="wecom.app_message_receipts_purge",
                                   task="portal.wecom.tasks.app_message_receipts_purge_task",
                                   crontab="47 3 * * *", description=str(_("清理保留期已过的应用消息回执"))))
        # A Celery worker replaces the root logger's handlers with its own: they get the redacting filter too.
        celery_signals.after_setup_logger.connect(_redact_celery_logs, weak=False)
        celery_signals.after_setup_task_logger.connect(_redact_celery_logs, weak=False)


def _redact_celery_logs(logger=None, **kwargs) -> None:
    from portal.wecom.redaction import redacting_filter_install

    if logger is not None:
        redacting_filter_install(logger.handlers)
