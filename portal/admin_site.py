from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from portal.dashboard import panels_for


class XiaoerAdminSite(admin.AdminSite):
    site_header = _("店小二 · 运营平台")
    site_title = _("店小二")
    index_title = _("工作台")
    index_template = "admin/xiaoer_index.html"

    def index(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "panels": panels_for(request)}
        return super().index(request, extra_context)
