"""The lifecycle's admin: stage changes, read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from customers.models import (
    StageChange,
)
from customers.segments.admin import customer_admin_url
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin


# -- lifecycle history -----------------------------------------------------------------------------------
@admin.register(StageChange)
class StageChangeAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    list_display = ("at", "customer_link", "from_stage", "to_stage", "cause", "by")
    list_filter = ("cause", "to_stage", "from_stage")
    list_select_related = ("customer", "by")
    search_fields = ("customer__external_userid",)
    search_help_text = _("客户编号或外部联系人ID（精确匹配）")
    ordering = ("-id",)  # insert-only: id order is time order, and the primary key is indexed
    sortable_by = ()
    fields = ("customer", "from_stage", "to_stage", "cause", "by", "at")
    raw_id_fields = ("customer", "by")

    @admin.display(description=_("客户"))
    def customer_link(self, obj):
        url = customer_admin_url(obj.customer_id)
        return format_html('<a href="{}">{}</a>', url, obj.customer) if url else str(obj.customer)

    def get_search_results(self, request, queryset, search_term):
        """Exact matches only: UPPER(x) = UPPER(y) or LIKE would scan millions of rows."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(customer_id=int(term)), False
        return queryset.filter(customer__external_userid=term), False
