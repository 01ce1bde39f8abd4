"""The client's IP address, the one definition login lockouts (django-axes) and API throttles share.

``X-Forwarded-For`` is read only when the deployment says it sits behind reverse proxies
(``XIAOER_TRUSTED_PROXY_COUNT`` > 0) and, if ``XIAOER_TRUSTED_PROXY_NETWORKS`` is set, only when the
request came from one of those networks. Each proxy appends the address it saw, so the client is the
address just before the last ``count`` hops of ``X-Forwarded-For, REMOTE_ADDR`` (the same address DRF's
``NUM_PROXIES`` picks). Everything a client wrote further left is ignored: a forged header changes
nothing. Without trusted proxies the answer is ``REMOTE_ADDR``.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _valid(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address.strip())
    except ValueError:
        return None


def client_ip(request) -> str:
    """The address of whoever sent ``request`` (a Django ``HttpRequest`` or a DRF ``Request``)."""
    meta = request.META
    remote = meta.get("REMOTE_ADDR", "") or ""
    count = int(getattr(settings, "XIAOER_TRUSTED_PROXY_COUNT", 0) or 0)
    if count <= 0:
        return remote
    networks = _networks(tuple(getattr(settings, "XIAOER_TRUSTED_PROXY_NETWORKS", ()) or ()))
    remote_address = _valid(remote)
    if networks and (remote_address is None or not any(remote_address in net for net in networks)):
        return remote  # not from our proxy: a header the client wrote itself
    forwarded = [hop.strip() for hop in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    chain = [*forwarded, remote]
    candidate = _valid(chain[max(0, len(chain) - 1 - count)])
    return str(candidate) if candidate is not None else remote
