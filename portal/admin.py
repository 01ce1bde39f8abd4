from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from portal.admin_base import ReadOnlyAdminMixin
from portal.models import AuditEvent, BeatHeartbeat, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ("username", "display_name", "email", "is_staff", "is_active", "last_login")
    search_fields = ("username", "display_name", "email")
    show_full_result_count = False
    fieldsets = (*(DjangoUserAdmin.fieldsets or ()), (_("店小二"), {"fields": ("display_name",)}))


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "actor", "action", "target_type", "target_ids", "detail")
    list_filter = ("action", "target_type")
    list_select_related = ("actor",)
    search_fields = ("action",)
    date_hierarchy = "at"
    show_full_result_count = False


@admin.register(BeatHeartbeat)
class BeatHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "beat_at")
