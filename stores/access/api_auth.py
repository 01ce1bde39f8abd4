from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from stores.access.services import ApiTokenExpired, api_token_authenticate
from stores.models import ApiToken


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer xe_…`` (or ``Token xe_…``): the token's user decides the scope."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Authorization 头格式应为：Bearer <令牌>"))
        try:
            token = api_token_authenticate(key=header[1])
        except ApiTokenExpired as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        if token is None:
            raise exceptions.AuthenticationFailed(_("令牌无效或已吊销"))
        return token.user, token

    def authenticate_header(self, request):
        return "Bearer"


class ApiTokenScopePermission(permissions.BasePermission):
    """What a token may do besides what its user may: read-only tokens only read; a token limited to some
    resources (route basenames) reaches only those. Requests without a token are not concerned.

    ``always_applies``: portal.api keeps this permission on every API view, even one that names its own
    ``permission_classes``."""

    always_applies = True

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        if token.mode != ApiToken.Mode.READ_WRITE and request.method not in permissions.SAFE_METHODS:
            self.message = _("此令牌只读，不能修改数据")
            return False
        if not token.allows(method=request.method, resource=getattr(view, "basename", None)):
            self.message = _("此令牌无权访问该接口")
            return False
        return True


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "stores.access.api_auth.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "集成令牌（在管理后台“API 令牌”中创建）"}
