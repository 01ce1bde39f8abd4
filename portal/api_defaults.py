"""DRF defaults named in settings (kept free of view imports to avoid an import cycle)."""

from rest_framework import permissions, serializers, throttling
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.settings import api_settings

from portal.client_ip import client_ip


class IdCursorPagination(CursorPagination):
    """Keyset pagination on the primary key: constant cost at any depth, no COUNT(*).

    ``page_size`` is a whole number from 1 (400 otherwise; above ``max_page_size`` it is capped); a cursor
    this API did not hand out is DRF's 404 "无效游标", also when its position is not an id.
    """

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = serializers.IntegerField(min_value=1).run_validation(raw)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({self.page_size_query_param: exc.detail}) from exc
        return min(size, self.max_page_size)

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except ValueError:
                raise NotFound(self.invalid_cursor_message) from None
        return cursor

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
        return parameters


class ScopedModelPermissions(permissions.DjangoModelPermissions):
    """Django model permissions, including ``view`` for reads (DRF's default lets any reader in)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class _RuntimeRateThrottle(throttling.SimpleRateThrottle):
    """Rates read when a request comes (DRF reads them once at import), client addresses from ``client_ip``."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope) if self.scope is not None else None

    def get_ident(self, request):
        return client_ip(request)


class TokenRateThrottle(_RuntimeRateThrottle):
    """Requests authenticated by an API token, counted per token (rate ``token``)."""

    scope = "token"

    def get_cache_key(self, request, view):
        token_id = getattr(request.auth, "pk", None)
        return self.cache_format % {"scope": self.scope, "ident": token_id} if token_id else None


class UserRateThrottle(_RuntimeRateThrottle):
    """Signed-in users without a token (session: the browsable docs, the admin's own calls), per user."""

    scope = "user"

    def get_cache_key(self, request, view):
        if getattr(request.auth, "pk", None) or not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonRateThrottle(_RuntimeRateThrottle):
    """Anonymous requests, per client address (proxy-aware only for trusted proxies)."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def api_resources() -> dict[str, str]:
    """The API's resources a token can be limited to: route basename → a name to show (from the URLconf)."""
    from django.urls import get_resolver

    found: dict[str, str] = {}

    def walk(patterns) -> None:
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
                continue
            basename = (getattr(pattern.callback, "initkwargs", None) or {}).get("basename")
            if basename and basename not in found:
                queryset = getattr(pattern.callback.cls, "queryset", None)
                label = queryset.model._meta.verbose_name_plural if queryset is not None else basename
                found[basename] = f"{label}（{basename}）"

    walk(get_resolver().url_patterns)
    return dict(sorted(found.items()))
