"""The registries apps fill at startup (WeCom event handlers, beat schedules, 工作台 panels, demo seeders,
sync kinds, field policies) refuse a second entry under a key: a second handler for the same WeCom event
must never silently replace the first. Registering the very same entry again (a module imported twice)
is harmless and allowed."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured


def _origin(value: Any) -> str:
    target = getattr(value, "build", None) or getattr(value, "seed", None) or value
    module = getattr(target, "__module__", type(value).__module__)
    return f"{module}.{getattr(target, '__qualname__', repr(value))}"


def _same(old: Any, new: Any) -> bool:
    return old is new or old == new or (callable(old) and callable(new) and _origin(old) == _origin(new))


def registry_add(registry: dict, key: Any, value: Any, *, what: str) -> None:
    """``registry[key] = value``, unless another entry holds ``key``: then ImproperlyConfigured naming both."""
    if key in registry and not _same(registry[key], value):
        raise ImproperlyConfigured(f"{what} {key!r} is registered twice: by {_origin(registry[key])} "
                                   f"and by {_origin(value)}")
    registry[key] = value
