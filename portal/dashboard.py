"""The admin home (工作台): each app contributes panels computed for the viewer's scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

from portal.registry import registry_add

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


@dataclass(frozen=True)
class Panel:
    key: str
    title: StrOrPromise  # a lazy translation, said in the viewer's language
    order: int
    build: Callable[[HttpRequest], dict[str, Any] | None]  # None hides the panel


_PANELS: dict[str, Panel] = {}


def panel_register(panel: Panel) -> None:
    registry_add(_PANELS, panel.key, panel, what="工作台 panel")


def panels_for(request: HttpRequest) -> list[dict[str, Any]]:
    shown = []
    for panel in sorted(_PANELS.values(), key=lambda p: p.order):
        data = panel.build(request)
        if data is not None:
            shown.append({"key": panel.key, "title": panel.title, **data})
    return shown
