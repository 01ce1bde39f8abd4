"""Fields only some roles may change: declared once per model, applied by every write path.

An app registers a policy for a model (stores does it for the fields that decide identity and scope: see
stores/access/field_policy.py). The admin base (``ScopedAdmin``), the API base (``ScopedModelSerializer``) and the
import resources ask it which fields the acting user may not set and why, whether the user may create rows
of the model at all, and they record every change of a guarded field in the audit log. A model without a
policy is unaffected.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from django.db import models

from portal.audit import audit_record
from portal.registry import registry_add

if TYPE_CHECKING:
    from portal.models import User


class FieldPolicy(Protocol):
    @property
    def guarded(self) -> frozenset[str]:
        """Field names whose every change is audited."""

    def locked(self, *, user, creating: bool) -> dict[str, str]:
        """Fields ``user`` may not set (on a new row if ``creating``), each with the reason shown to them."""

    def create_refusal(self, *, user) -> str | None:
        """Why ``user`` may not create rows of the model, or None if they may."""


_POLICIES: dict[type[models.Model], FieldPolicy] = {}


def field_policy_register(*, model: type[models.Model], policy: FieldPolicy) -> None:
    registry_add(_POLICIES, model._meta.concrete_model, policy, what="field policy")


def field_policy_for(model: type[models.Model]) -> FieldPolicy | None:
    concrete = model._meta.concrete_model
    return _POLICIES.get(concrete) if concrete is not None else None


def concrete_field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """``model``'s field ``name``, which the caller knows to be a field of its own (not a reverse relation)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{model._meta.label}.{name} is not a field of the model's own")
    return field


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, str)) else str(value)


def guarded_values(*, policy: FieldPolicy, instance: models.Model) -> dict[str, Any]:
    """The guarded fields' stored values (ids for relations) of ``instance`` as it is in memory."""
    values = {}
    for name in sorted(policy.guarded):
        field = instance._meta.get_field(name)
        if isinstance(field, models.Field) and field.concrete and not field.many_to_many:
            values[name] = _plain(getattr(instance, field.attname))
    return values


def guarded_values_stored(*, policy: FieldPolicy, instance: models.Model) -> dict[str, Any] | None:
    """The guarded fields' values of ``instance``'s row in the database, or None for a row not saved yet."""
    if instance.pk is None:
        return None
    stored = type(instance)._base_manager.filter(pk=instance.pk).first()
    return guarded_values(policy=policy, instance=stored) if stored is not None else None


def value_differs(*, instance: models.Model, name: str, value: Any) -> bool:
    """Would setting field ``name`` of a saved ``instance`` to ``value`` (a form's or serializer's) change it?"""
    field = concrete_field(type(instance), name)
    if field.many_to_many:
        current = set(getattr(instance, name).values_list("pk", flat=True))
        return current != {getattr(item, "pk", item) for item in value or []}
    if field.is_relation:
        return getattr(instance, field.attname) != getattr(value, "pk", value)
    return field.to_python(getattr(instance, field.attname)) != field.to_python(value)


def guarded_changes_audit(*, instance: models.Model, before: dict[str, Any] | None, by: User | None, via: str) -> None:
    """Record the guarded fields ``instance`` changed (all of them when ``before`` is None: a new row)."""
    policy = field_policy_for(type(instance))
    if policy is None:
        return
    after = guarded_values(policy=policy, instance=instance)
    changes = {name: [None if before is None else before.get(name), value] for name, value in after.items()
               if before is None or before.get(name) != value}
    if not changes:
        return
    audit_record(action="guarded_fields.change", target_type=instance._meta.label_lower, target_ids=[instance.pk],
                 by=by, detail={"via": via, "created": before is None, "changes": changes})
