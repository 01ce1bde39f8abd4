"""DRF defaults named in settings (kept free of view imports to avoid an import cycle)."""

from rest_framework import permissions
from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    """Keyset pagination on the primary key: constant cost at any depth, no COUNT(*)."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ScopedModelPermissions(permissions.DjangoModelPermissions):
    """Django model permissions, including ``view`` for reads (DRF's default lets any reader in)."""

    perms_map = {
        **permissions.DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }
