from datetime import timedelta

from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.wecom.models import CallbackEvent, SyncRun, WeComCall


def wecom_panel(request) -> dict | None:
    if not request.user.has_perm("wecom.view_callbackevent"):
        return None
    since = timezone.now() - timedelta(hours=24)
    calls = WeComCall.objects.filter(at__gte=since).aggregate(
        total=Count("pk"), failed=Count("pk", filter=~Q(errcode=0)))
    events = CallbackEvent.objects.filter(status__in=["pending", "processing", "failed"]).aggregate(
        pending=Count("pk", filter=Q(status__in=["pending", "processing"])),
        failed=Count("pk", filter=Q(status="failed")))
    events_url = reverse("admin:wecom_callbackevent_changelist")
    notes = []
    last_sync = SyncRun.objects.filter(kind="addressbook.full").first()
    if last_sync:
        notes.append({"text": _("通讯录同步：%(when)s %(status)s %(detail)s") % {
            "when": timezone.localtime(last_sync.started_at).strftime("%m-%d %H:%M"),
            "status": last_sync.get_status_display(), "detail": last_sync.progress or ""},
            "warn": last_sync.status == SyncRun.Status.FAILED})
    return {
        "stats": [
            {"label": _("24小时调用"), "value": calls["total"], "url": reverse("admin:wecom_wecomcall_changelist")},
            {"label": _("调用失败"), "value": calls["failed"],
             "url": reverse("admin:wecom_wecomcall_changelist")},
            {"label": _("待处理事件"), "value": events["pending"], "url": f"{events_url}?status__exact=pending"},
            {"label": _("失败事件"), "value": events["failed"], "url": f"{events_url}?status__exact=failed"},
        ],
        "notes": notes,
    }
