"""Tasks of WeCom media: the refresh of temporary media ids before they expire (beat)."""

from __future__ import annotations

from portal.tasks import xiaoer_task
from portal.wecom.gateway import WeComRateLimited, WeComUnavailable


@xiaoer_task(autoretry_for=(WeComRateLimited, WeComUnavailable))
def media_refresh_task() -> int:
    from materials.media.services import media_refresh_due

    return media_refresh_due()
