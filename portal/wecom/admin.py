from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path
from django.utils.decorators import method_decorator
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from portal.admin_base import ReadOnlyAdminMixin
from portal.pagination import EstimatedCountPaginator
from portal.wecom.events import callback_events_replay
from portal.wecom.models import CallbackEvent, SyncRun, WeComCall
from portal.wecom.syncs import SyncAlreadyRunning, sync_kinds, sync_start


class LogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100


@admin.register(WeComCall)
class WeComCallAdmin(LogAdmin):
    list_display = ("at", "endpoint", "errcode", "errmsg", "attempts", "duration_ms", "caller")
    list_filter = ("endpoint", "errcode")
    search_fields = ("=endpoint",)
    date_hierarchy = "at"


@admin.register(CallbackEvent)
class CallbackEventAdmin(LogAdmin):
    list_display = ("received_at", "event", "change_type", "status", "attempts", "short_error", "processed_at")
    list_filter = ("status", "event", "change_type")
    readonly_fields = ("received_at", "dedupe_key", "event", "change_type", "created_time", "payload", "status",
                       "attempts", "last_error", "claimed_at", "processed_at")
    actions = ("replay_selected",)

    @admin.display(description=_("错误"))
    def short_error(self, obj):
        return obj.last_error.strip().splitlines()[-1][:120] if obj.last_error else ""

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("wecom.change_callbackevent")

    @admin.action(description=_("重新处理所选事件"), permissions=["change"])
    def replay_selected(self, request, queryset):
        replayed = callback_events_replay(event_ids=list(queryset.values_list("pk", flat=True)[:5000]))
        self.message_user(request, _("已提交 %(n)d 个事件重新处理") % {"n": replayed})


@admin.register(SyncRun)
class SyncRunAdmin(LogAdmin):
    list_display = ("kind", "started_at", "finished_at", "status", "progress_shown", "error")
    list_filter = ("kind", "status")
    change_list_template = "admin/wecom/syncrun/change_list.html"

    @admin.display(description=_("进度与结果"))
    def progress_shown(self, obj):
        # Keys starting with "_" are a job's working state (cursors, queries): on the detail page only.
        return {k: v for k, v in (obj.progress or {}).items() if not str(k).startswith("_")}

    def get_urls(self):
        start = self.admin_site.admin_view(self.start_view)
        return [path("start/", start, name="wecom_syncrun_start"), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        can_start = request.user.has_perm("wecom.add_syncrun")
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "sync_kinds": sync_kinds() if can_start else []})

    @method_decorator(require_POST)
    def start_view(self, request):
        if not request.user.has_perm("wecom.add_syncrun"):
            raise PermissionDenied
        kind = request.POST.get("kind", "")
        if kind not in {k.kind for k in sync_kinds()}:
            raise Http404
        try:
            sync_start(kind=kind)
            self.message_user(request, _("已开始同步，刷新本页查看进度"), messages.SUCCESS)
        except SyncAlreadyRunning:
            self.message_user(request, _("同类同步正在进行中，请稍后再试"), messages.WARNING)
        return redirect("admin:wecom_syncrun_changelist")
