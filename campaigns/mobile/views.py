"""The mobile task page (store owners and staff, in WeCom's in-app browser). Thin views over selectors."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from stores.models import Staff, Store
from stores.scoping import user_scope


@login_required
def home(request):
    scope = user_scope(request.user)
    stores = Store.objects.for_scope(scope).select_related("region").order_by("code")[:20]
    staff = Staff.objects.for_scope(scope).active().select_related("store").order_by("store_id", "name")[:200]
    return render(request, "mobile/home.html", {"scope": scope, "stores": stores, "staff": staff})


@login_required
def staff_detail(request, pk: int):
    member = get_object_or_404(Staff.objects.for_user(request.user).select_related("store"), pk=pk)
    return render(request, "mobile/staff.html", {"member": member})
