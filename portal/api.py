"""The REST API base: every view and serializer is scoped to the requesting user."""

from __future__ import annotations

from rest_framework import serializers, viewsets
from rest_framework.settings import api_settings

from portal.admin_base import scoped


class ScopedModelSerializer(serializers.ModelSerializer):
    """Related fields accept only objects inside the requesting user's scope."""

    def get_fields(self):
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None:
            return fields
        for field in fields.values():
            target = getattr(field, "child_relation", field)
            if isinstance(target, serializers.RelatedField) and target.queryset is not None:
                target.queryset = scoped(target.queryset, request.user)
        return fields


class ScopedViewSetMixin:
    """Every API view's rows come from the model's ``for_user``: ids outside the scope are 404."""

    def get_queryset(self):
        return scoped(super().get_queryset(), self.request.user)

    def get_permissions(self):
        """The view's permissions, plus every default marked ``always_applies`` (a token's own limits) that a
        view or action's ``permission_classes`` left out."""
        chosen = super().get_permissions()
        present = {type(permission) for permission in chosen}
        required = [cls() for cls in api_settings.DEFAULT_PERMISSION_CLASSES
                    if getattr(cls, "always_applies", False) and cls not in present]
        return [*required, *chosen]


class ScopedModelViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    pass


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
