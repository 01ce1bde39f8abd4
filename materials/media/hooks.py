"""WeCom media at startup: the beat job that re-uploads media ids before their 3 days are over."""

from __future__ import annotations

from django.utils.translation import gettext_lazy

from portal.schedules import Schedule, schedule_register

# Hourly: the job re-uploads what expires within 12 hours, senders take nothing with less than 6 hours left.
schedule_register(Schedule(name="materials.media_refresh", task="materials.media.tasks.media_refresh_task",
                           every_seconds=3600, description=str(gettext_lazy("刷新即将过期的企业微信素材"))))
