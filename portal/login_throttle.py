"""Login lockouts: django-axes' database handler plus a limit per client address across usernames.

Two limits, both within ``AXES_COOLOFF_TIME`` (30 minutes):

- ``AXES_FAILURE_LIMIT`` (5) failures for one username from one address lock that pair (axes'
  ``AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]``): the same user from elsewhere still
  signs in, so nobody can lock ``admin`` out for everyone.
- ``XIAOER_LOGIN_IP_FAILURE_LIMIT`` (20) failures from one address, whatever the usernames, lock the
  address: a password spray (one guess for each of many usernames) stops after 20 guesses. 20 leaves
  room for a store's shared NAT address, where several staff mistype now and then.

The address is ``portal.client_ip.client_ip`` (``AXES_CLIENT_IP_CALLABLE``), proxy-aware only for
trusted proxies. The per-address count is added here rather than as an ``"ip_address"`` entry in
``AXES_LOCKOUT_PARAMETERS``: axes uses a single failure limit for every entry (the address would lock
after 5) and deletes every matching entry's attempts on a successful login, so one good login from
an address (an attacker's own account) would wipe that address's count.
"""

from __future__ import annotations

from axes.attempts import get_cool_off_threshold
from axes.conf import settings
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.db.models import Sum


class XiaoerAxesHandler(AxesDatabaseHandler):
    def ip_failures(self, request) -> int:
        """Recent failures from the request's address, over every username."""
        address = getattr(request, "axes_ip_address", None)
        if not address:
            return 0
        attempts = AccessAttempt.objects.filter(ip_address=address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0

    def get_failures(self, request, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        ip_limit = getattr(settings, "XIAOER_LOGIN_IP_FAILURE_LIMIT", 0)
        if ip_limit and self.ip_failures(request) >= ip_limit:
            return max(failures, get_failure_limit(request, credentials))
        return failures
