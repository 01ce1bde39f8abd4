"""One error type for a refused business rule: ``DomainError``.

A service raises a subclass of it (``TagError``, ``OrgError``…) with a message a user can read, in
Chinese through gettext. It is shown in one place per surface: the admin turns it into an error message
on the page it came from (``portal.admin_base.ScopedAdmin``), the REST API into a 400
``{"detail": "…"}`` (``portal.api_errors.exception_handler``). It derives from ValueError, which the
refusals were before, so existing ``except ValueError`` code keeps working.

Not DomainErrors: failures of infrastructure (WeCom unreachable or refusing a call — ``WeComError``,
which has its own retry and redaction rules; a broken environment — ``EnvError``; a demo seed step).
"""

from __future__ import annotations


class DomainError(ValueError):
    """A business rule refused the input; ``str(exc)`` is the reason, for the user who asked."""

    @property
    def message(self) -> str:
        return str(self)
