"""Demo data from the apps to the right of ``stores``: ``seed_demo`` (in stores) builds the organisation, then
runs what each app registered here, in registration order, so stores never imports the apps built on it.

Apps register in their hooks (imported at startup): ``demo_seeder_register(name=…, seed=…)``. A seeder is
idempotent, returns a one-line summary and raises DemoSeedError with a plain reason when WeCom is unreachable
or refuses something (the demo then runs without that part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from portal.registry import registry_add


class DemoSeedError(Exception):
    pass


@dataclass(frozen=True)
class DemoSeeder:
    name: str
    seed: Callable[[], str]


_SEEDERS: dict[str, DemoSeeder] = {}


def demo_seeder_register(*, name: str, seed: Callable[[], str]) -> None:
    registry_add(_SEEDERS, name, DemoSeeder(name=name, seed=seed), what="demo seeder")


def demo_seeders() -> list[DemoSeeder]:
    return list(_SEEDERS.values())
