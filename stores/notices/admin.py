"""每个人自己的通知：只看得到自己的，可以标记已读。"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ScopedAdmin
from stores.notices.models import Notice
from stores.notices.services import notices_mark_read


@admin.register(Notice)
class NoticeAdmin(ScopedAdmin):
    list_display = ("title", "body", "open_link", "created_at", "read_at")
    list_filter = (("read_at", admin.EmptyFieldListFilter),)
    search_fields = ("title",)
    actions = ("mark_read",)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(user=request.user)  # even HQ reads only its own inbox

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    @admin.display(description=_("链接"))
    def open_link(self, obj: Notice):
        return format_html('<a href="{}">{}</a>', obj.link, _("查看")) if obj.link.startswith("/") else "-"

    @admin.action(description=_("标记为已读"))
    def mark_read(self, request, queryset):
        count = notices_mark_read(notices=queryset, by=request.user)
        self.message_user(request, _("已标记 %(n)d 条为已读") % {"n": count}, messages.SUCCESS)
