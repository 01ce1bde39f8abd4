"""The link of a task's WeCom card: one URL per task (a card goes to 1,000 members at once), which opens the
signed-in member's own assignment of that task. A member who is not signed in goes through WeCom sign-in first
when the link opens in WeCom's browser (its user agent says wxwork), else to the sign-in page; then back here."""

from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import redirect
from django.urls import NoReverseMatch, reverse

from campaigns.tasks.models import Assignment
from stores.access.scoping import user_scope


def task_open(request, task_id: int):
    if not request.user.is_authenticated:
        in_wecom = "wxwork" in request.headers.get("User-Agent", "").lower()
        login = reverse("mobile:wecom_login" if in_wecom else "mobile:login")
        return redirect(f"{login}?{urlencode({'next': request.get_full_path()})}")
    mine = Assignment.objects.for_user(request.user).filter(task_id=task_id)
    staff_id = user_scope(request.user).staff_id
    assignment = (mine.filter(staff_id=staff_id).first() if staff_id else None) or mine.order_by("pk").first()
    if assignment is None:
        raise Http404
    try:
        return redirect(reverse("mobile:task", args=[assignment.pk]))
    except NoReverseMatch:  # the task page is not there (yet): the home page lists the member's tasks
        return redirect(reverse("mobile:home"))
