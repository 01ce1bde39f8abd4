"""Weather forecasts for choosing a task's copy: one interface, a deterministic sandbox provider by default.

    weather_forecast(city="上海", on=date(2026, 12, 5)) -> Forecast(rain=True, high_c=21, low_c=15)

``settings.XIAOER_WEATHER_PROVIDER`` chooses the provider: ``"sandbox"`` (default; offline, the same answer for
the same city and day, with ``XIAOER_WEATHER_SANDBOX_FIXED`` pinning some cities) or the dotted path of a
callable with the same signature (a real forecast service; none is bundled: this machine reaches no weather API
to test one against). A dispatch asks once per city, never per store (``forecasts_for``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Forecast:
    rain: bool
    high_c: int
    low_c: int


Provider = Callable[..., Forecast]


def sandbox_forecast(*, city: str, on: date) -> Forecast:
    fixed = (getattr(settings, "XIAOER_WEATHER_SANDBOX_FIXED", None) or {}).get(city)
    if fixed is not None:
        return Forecast(rain=bool(fixed.get("rain")), high_c=int(fixed.get("high_c", 25)),
                        low_c=int(fixed.get("low_c", 18)))
    digest = hashlib.sha256(f"{city}|{on.isoformat()}".encode()).digest()
    high = 5 + digest[1] % 33  # 5..37 ℃
    return Forecast(rain=digest[0] % 3 == 0, high_c=high, low_c=high - 4 - digest[2] % 7)


def _provider() -> Provider:
    name = getattr(settings, "XIAOER_WEATHER_PROVIDER", "sandbox") or "sandbox"
    if name == "sandbox":
        return sandbox_forecast
    return import_string(name)


def weather_forecast(*, city: str, on: date) -> Forecast:
    return _provider()(city=city, on=on)


def forecasts_for(*, cities: Iterable[str], on: date) -> dict[str, Forecast]:
    """One forecast per distinct non-empty city."""
    provider = _provider()
    return {city: provider(city=city, on=on) for city in sorted({c for c in cities if c})}
