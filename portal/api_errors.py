"""How the REST API refuses a request, in one place: the answers and their OpenAPI declaration.

Every refusal is JSON, also when Django answers before DRF does (an unknown URL, a malformed request):
``{"detail": "…"}``, or for invalid input DRF's ``{"field": ["…"], "non_field_errors": ["…"]}``.

``error_responses_declare`` (a drf-spectacular postprocessing hook, SPECTACULAR_SETTINGS) adds the
refusals every operation can answer to the schema, so no view lists them: 401 (no or a bad token),
403 (role, token scope or CSRF), 429 (throttled, with Retry-After), 400 where there is input to refuse
(a body or query parameters), 404 where a path id or a list's cursor can be unknown, 415 for a body in a
media type the API does not read. A view that documents one of those codes itself keeps its own.
"""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import DomainError

API_PREFIX = "/api/"

ERROR_COMPONENT = "Error"
VALIDATION_ERROR_COMPONENT = "ValidationError"


# ``{"detail": "…"}``, the component ``Error``: for a view that declares such a refusal itself.
class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="可读的原因")


_ERROR_SCHEMA = {
    "type": "object",
    "description": "拒绝原因",
    "properties": {"detail": {"type": "string", "description": "可读的原因"}},
    "required": ["detail"],
}
_VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "description": "输入错误：字段名 → 该字段的错误信息（non_field_errors 为整体错误，detail 为无法解析的请求体）",
    "additionalProperties": {
        "anyOf": [
            {"type": "array", "items": {}},
            {"type": "object"},
            {"type": "string"},
        ],
    },
}
_RETRY_AFTER = {
    "Retry-After": {"description": "多少秒后可以重试", "schema": {"type": "integer"}},
}
_WWW_AUTHENTICATE = {
    "WWW-Authenticate": {"description": "认证方式（Bearer）", "schema": {"type": "string"}},
}
_RESPONSES = {
    "400": ("输入无效（原因见各字段）", VALIDATION_ERROR_COMPONENT, None),
    "401": ("未认证：缺少令牌，或令牌无效、已过期、已吊销", ERROR_COMPONENT, _WWW_AUTHENTICATE),
    "403": ("无权执行：角色、令牌范围或 CSRF 校验不允许", ERROR_COMPONENT, None),
    "404": ("不存在或不在权限范围内（列表：游标无效）", ERROR_COMPONENT, None),
    "415": ("请求体的媒体类型不受支持", ERROR_COMPONENT, None),
    "429": ("请求过于频繁", ERROR_COMPONENT, _RETRY_AFTER),
}
_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


def _error_codes(operation: dict) -> list[str]:
    parameters = operation.get("parameters", [])
    query = {p["name"] for p in parameters if p.get("in") == "query"}
    has_path_id = any(p.get("in") == "path" for p in parameters)
    has_body = "requestBody" in operation
    codes = ["401", "403", "429"]
    if has_body or query:
        codes.append("400")
    if has_path_id or "cursor" in query:
        codes.append("404")
    if has_body:
        codes.append("415")
    return sorted(codes)


def _response(code: str) -> dict:
    description, component, headers = _RESPONSES[code]
    response = {"description": description,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}}}
    if headers:
        response["headers"] = headers
    return response


def error_responses_declare(result, generator, request, public):
    """drf-spectacular postprocessing hook: the refusals of every operation, declared once."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, _ERROR_SCHEMA)
    schemas.setdefault(VALIDATION_ERROR_COMPONENT, _VALIDATION_ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in _error_codes(operation):
                responses.setdefault(code, _response(code))
    return result


# Django's own error views (urls.handler400/403/404/500) answer HTML; under /api/ they answer JSON.

def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request, exception, *args, **kwargs):
    if _is_api(request):
        return JsonResponse({"detail": str(exceptions.ParseError.default_detail)}, status=400)
    return defaults.bad_request(request, exception, *args, **kwargs)


def permission_denied(request, exception, *args, **kwargs):
    if _is_api(request):
        return JsonResponse({"detail": str(exceptions.PermissionDenied.default_detail)}, status=403)
    return defaults.permission_denied(request, exception, *args, **kwargs)


def page_not_found(request, exception, *args, **kwargs):
    if _is_api(request):
        return JsonResponse({"detail": str(exceptions.NotFound.default_detail)}, status=404)
    return defaults.page_not_found(request, exception, *args, **kwargs)


def server_error(request, *args, **kwargs):
    if _is_api(request):
        return JsonResponse({"detail": str(exceptions.APIException.default_detail)}, status=500)
    return defaults.server_error(request, *args, **kwargs)


def exception_handler(exc, context):
    """DRF's handler, and a service's DomainError as a 400 ``{"detail": reason}`` (one place for the API)."""
    if isinstance(exc, DomainError):
        exc = exceptions.ValidationError({"detail": exc.message})
    return drf_exception_handler(exc, context)
