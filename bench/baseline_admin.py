"""The baseline customer changelist: a stock Django ModelAdmin on its own admin site.

What a first version would write: the default Paginator (a COUNT(*) for the page count) and
show_full_result_count=True (another COUNT(*) over the whole table), ``search_fields`` with
``icontains`` on the name and ``=external_userid`` (Django compares ``UPPER(x) = UPPER(y)``: no index
applies), and the region filter through the relationships (customer → relationship → store → region),
which makes the changelist wrap its queryset in ``EXISTS`` to avoid duplicate rows.

Kept equal to ours so that only those choices differ: the columns, ``list_select_related`` (stock
admin would otherwise query each row's store and staff) and 50 rows a page (stock: 100). The tag
column shows the ids (ours shows names, one query per page): the baseline is, if anything, favoured.
"""

from django.contrib import admin
from django.core.paginator import Paginator

from customers.models import Customer

baseline_site = admin.AdminSite(name="baseline_admin")


@admin.register(Customer, site=baseline_site)
class StockCustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "store", "staff", "stage", "tag_ids", "first_added_at", "active")
    list_filter = ("stage", "active", "relationships__store__region", "relationships__store__region__parent")
    list_select_related = ("store", "staff")
    list_per_page = 50
    search_fields = ("name", "=external_userid")
    raw_id_fields = ("staff", "store", "region", "franchisee", "channel", "member")
    paginator = Paginator
    show_full_result_count = True
