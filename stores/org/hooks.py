from django.db.models import Count, Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from stores.access.scoping import user_scope
from stores.models import Staff, Store


def org_panel(request) -> dict | None:
    scope = user_scope(request.user)
    if scope.kind == "none":
        return None
    stores = Store.objects.for_scope(scope).aggregate(
        open=Count("pk", filter=Q(status=Store.Status.OPEN)),
        closed=Count("pk", filter=Q(status=Store.Status.CLOSED)),
        franchise=Count("pk", filter=Q(kind=Store.Kind.FRANCHISE)),
    )
    staff = Staff.objects.for_scope(scope).aggregate(
        active=Count("pk", filter=Q(status=Staff.Status.ACTIVE)),
        departed=Count("pk", filter=Q(status=Staff.Status.DEPARTED)),
    )
    store_url = reverse("admin:stores_store_changelist")
    staff_url = reverse("admin:stores_staff_changelist")
    return {
        "stats": [
            {"label": _("营业门店"), "value": stores["open"], "url": f"{store_url}?status__exact=open"},
            {"label": _("其中加盟"), "value": stores["franchise"], "url": f"{store_url}?kind__exact=franchise"},
            {"label": _("已关店"), "value": stores["closed"], "url": f"{store_url}?status__exact=closed"},
            {"label": _("在职员工"), "value": staff["active"], "url": f"{staff_url}?status__exact=active"},
            {"label": _("离职员工"), "value": staff["departed"], "url": f"{staff_url}?status__exact=departed"},
        ],
        "notes": [],
    }
