"""门店/导购海报：按门店、导购查看已生成的海报（只读，随模板和门店、员工信息变化自动重新生成）。"""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from materials.posters.models import RenderedPoster
from portal.admin_base import ReadOnlyAdminMixin, ScopedAdmin


@admin.register(RenderedPoster)
class RenderedPosterAdmin(ReadOnlyAdminMixin, ScopedAdmin):
    list_display = ("preview", "material", "store", "staff", "version", "rendered_at")
    list_filter = ("store__region",)
    list_select_related = ("material", "store", "staff", "version")
    search_fields = ("material__title", "store__name", "=store__code", "staff__name")
    raw_id_fields = ("material", "store", "staff", "version")

    @admin.display(description=_("海报"))
    def preview(self, obj: RenderedPoster):
        url = reverse("admin:materials_renderedposter_image", args=[obj.pk])
        return format_html('<a href="{0}"><img src="{0}" alt="" style="max-height:64px" loading="lazy"></a>', url)

    def get_urls(self):
        return [path("<int:pk>/image/", self.admin_site.admin_view(self.image_view),
                     name="materials_renderedposter_image"), *super().get_urls()]

    def image_view(self, request, pk: int):
        poster = self.get_queryset(request).filter(pk=pk).first()  # scoped: another store's is not found
        if poster is None or not self.has_view_permission(request, poster):
            raise Http404
        from materials.library.storage import file_response

        return file_response(name=poster.file, download_name=f"poster-{poster.pk}.jpg", content_type="image/jpeg",
                             inline=True)
