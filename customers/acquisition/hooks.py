"""Acquisition at startup: what each role may do with channels, codes and welcome messages; the 工作台 panel."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal.dashboard import Panel, panel_register
from stores.access.models import Role
from stores.access.roles import ALL, READ, RoleGrants, role_permissions_extend
from stores.access.scoping import user_scope


def _declare_permissions() -> None:
    # HQ runs the channel inventory, the welcome copy and every code; region managers create codes for
    # their regions; store managers and franchisees view (and download) their stores' codes.
    grants: RoleGrants = {
        Role.HQ_ADMIN: {"channel": ALL, "welcomemessage": ALL, "contactway": ALL, "welcomedelivery": READ},
        Role.HQ_OPERATOR: {"channel": ALL, "welcomemessage": ALL, "contactway": ALL, "welcomedelivery": READ},
        Role.HQ_FINANCE: {"channel": READ, "contactway": READ},
        Role.REGION_MANAGER: {"channel": READ, "welcomemessage": READ, "contactway": ("view", "add"),
                              "welcomedelivery": READ},
        Role.FRANCHISEE_OWNER: {"contactway": READ, "welcomedelivery": READ},
        Role.STORE_MANAGER: {"contactway": READ, "welcomedelivery": READ},
        Role.STORE_STAFF: {"contactway": READ},
    }
    for role, models in grants.items():
        for model, actions in models.items():
            role_permissions_extend(role=role, app_label="customers", model=model, actions=actions)


def welcome_failures_panel(request) -> dict | None:
    """Today's welcome messages that did not go out, in the viewer's scope (they used to fail silently)."""
    from customers.models import WelcomeDelivery

    if not request.user.has_perm("customers.view_welcomedelivery"):
        return None
    scope = user_scope(request.user)
    since = timezone.make_aware(datetime.combine(timezone.localdate(), time.min))
    deliveries = WelcomeDelivery.objects.for_scope(scope).filter(sent_at__gte=since)
    failed = deliveries.filter(status=WelcomeDelivery.Status.FAILED).count()
    sent = deliveries.filter(status=WelcomeDelivery.Status.SENT).count()
    url = reverse("admin:customers_welcomedelivery_changelist")
    today = {"sent_at__gte": str(since), "sent_at__lt": str(since + timedelta(days=1))}  # the "today" filter
    return {
        "stats": [
            {"label": _("今日欢迎语失败"), "value": failed,
             "url": f"{url}?{urlencode({'status__exact': 'failed', **today})}"},
            {"label": _("今日已发送"), "value": sent, "url": f"{url}?{urlencode({'status__exact': 'sent', **today})}"},
        ],
        "notes": [{"text": _("有欢迎语发送失败，点击查看原因"), "warn": True}] if failed else [],
    }


_declare_permissions()
panel_register(Panel(key="welcome", title=gettext_lazy("欢迎语"), order=40, build=welcome_failures_panel))


def _poster_qr_register() -> None:
    """Every guide's poster carries their own 一人一码: customers hands materials each staff member's payload."""
    from customers.acquisition.services import staff_qr_payloads
    from materials.posters.services import poster_qr_provider_register

    poster_qr_provider_register(name="customers.contact_way", provider=staff_qr_payloads)


_poster_qr_register()
