from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdminMixin
from portal.pagination import EstimatedCountPaginator
from portal.wecom.events import callback_events_replay
from portal.wecom.models import CallbackEvent, SyncRun, WeComCall


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
    list_display = ("kind", "started_at", "finished_at", "status", "progress", "error")
    list_filter = ("kind", "status")
