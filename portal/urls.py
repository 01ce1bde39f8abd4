from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import include, path, reverse
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated

from portal.wecom.views import wecom_callback


def healthz(request):
    return JsonResponse({"status": "ok"})


class ApiDocsView(SpectacularSwaggerView):
    """The API docs (a login is needed, as for the schema: SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]).
    A browser without a session is sent to the sign-in page and back."""

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("stores.urls_api")),
    path("api/v1/", include("customers.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("m/", include("campaigns.mobile.urls")),
    path("wecom/callback/", wecom_callback, name="wecom-callback"),
    path("healthz", healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
]

# Under /api/ Django's own refusals answer JSON like the API's (portal/api_errors.py).
handler400 = "portal.api_errors.bad_request"
handler403 = "portal.api_errors.permission_denied"
handler404 = "portal.api_errors.page_not_found"
handler500 = "portal.api_errors.server_error"
