"""The REST API base: every view and serializer is scoped to the requesting user."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from rest_framework import exceptions, serializers, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings

from portal.admin_base import scoped
from portal.field_policy import field_policy_for, guarded_changes_audit, guarded_values, value_differs


class ScopedModelSerializer(serializers.ModelSerializer):
    """Related fields accept only objects inside the requesting user's scope.

    The model's field policy (portal/field_policy.py) applies: a user the policy does not let create rows is
    refused (403), a change to a field they may not change is a 400 naming the field and the reason (sending
    back the value it already has is fine), and every change of a guarded field is audited. The model's own
    constraints are checked before saving, so input the database would refuse is a 400, never a 500.
    """

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

    def _acting_user(self):
        request = self.context.get("request")
        return getattr(request, "user", None)

    def run_validation(self, data=serializers.empty):
        policy = field_policy_for(self.Meta.model)
        user = self._acting_user()
        if policy is not None and self.instance is None and user is not None:
            refusal = policy.create_refusal(user=user)
            if refusal:
                raise exceptions.PermissionDenied(refusal)
        attrs = super().run_validation(data)  # fields, validators, then the serializer's own validate()
        if policy is not None and user is not None:
            self._locked_fields_refuse(policy=policy, user=user, attrs=attrs)
        self._constraints_validate(attrs)
        return attrs

    def _locked_fields_refuse(self, *, policy, user, attrs) -> None:
        locked = policy.locked(user=user, creating=self.instance is None)
        errors = {name: [reason] for name, reason in locked.items() if name in attrs and (
            self.instance is None or value_differs(instance=self.instance, name=name, value=attrs[name]))}
        if errors:
            raise serializers.ValidationError(errors)

    def _constraints_validate(self, attrs) -> None:
        """Run the model's CHECK/unique constraints on the row as it would be saved."""
        model: type[models.Model] = self.Meta.model
        if self.instance is not None:
            candidate = model(**{f.attname: getattr(self.instance, f.attname) for f in model._meta.concrete_fields})
        else:
            candidate = model()
        candidate._state.adding = self.instance is None
        for name, value in attrs.items():
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if isinstance(field, models.Field) and field.concrete and not field.many_to_many:
                setattr(candidate, field.attname, getattr(value, "pk", value) if field.is_relation else value)
        try:
            candidate.validate_constraints()
        except DjangoValidationError as exc:
            detail = serializers.as_serializer_error(exc)
            if NON_FIELD_ERRORS in detail:
                detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
            raise serializers.ValidationError(detail) from exc

    def create(self, validated_data):
        instance = super().create(validated_data)
        guarded_changes_audit(instance=instance, before=None, by=self._acting_user(), via="api")
        return instance

    def update(self, instance, validated_data):
        policy = field_policy_for(type(instance))
        before = guarded_values(policy=policy, instance=instance) if policy is not None else None
        instance = super().update(instance, validated_data)
        if policy is not None:
            guarded_changes_audit(instance=instance, before=before, by=self._acting_user(), via="api")
        return instance


if TYPE_CHECKING:
    _ViewSetBase = viewsets.GenericViewSet
else:
    _ViewSetBase = object  # a mixin: the viewset class comes after it


class ScopedViewSetMixin(_ViewSetBase):
    """Every API view's rows come from the model's ``for_user``: ids outside the scope are 404."""

    def get_queryset(self):
        return scoped(super().get_queryset(), self.request.user)

    def get_permissions(self):
        """The view's permissions, plus every default marked ``always_applies`` (a token's own limits) that a
        view or action's ``permission_classes`` left out."""
        chosen = super().get_permissions()
        present = {type(permission) for permission in chosen}
        defaults = cast("list[type[BasePermission]]", api_settings.DEFAULT_PERMISSION_CLASSES)  # imported classes
        required = [cls() for cls in defaults
                    if getattr(cls, "always_applies", False) and cls not in present]
        return [*required, *chosen]


class ScopedModelViewSet(ScopedViewSetMixin, viewsets.ModelViewSet):
    pass


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
