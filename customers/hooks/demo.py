"""The customers' part of the demo (tags, channels, welcome messages, codes in WeCom), run by seed_demo."""

from __future__ import annotations

from portal.demo import DemoSeedError, demo_seeder_register
from portal.wecom.gateway import WeComError


def _seed() -> str:
    from customers.services.acquisition import AcquisitionError
    from customers.services.demo import customers_demo_seed
    from customers.services.tags import TagError

    try:
        return customers_demo_seed().summary()
    except WeComError as exc:
        raise DemoSeedError(f"WeCom sandbox not reachable ({exc}); run seed_demo again once it is up to create "
                            "the demo tags, channels and codes") from exc
    except (TagError, AcquisitionError) as exc:  # WeCom refused something: the demo runs without it
        raise DemoSeedError(f"demo tags/channels/codes incomplete: {exc}") from exc


demo_seeder_register(name="customers", seed=_seed)
