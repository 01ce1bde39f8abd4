"""The mobile task page (store owners and staff, in WeCom's in-app browser). Thin views over selectors."""

import secrets

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _

from campaigns.mobile.selectors import my_open_assignments, store_tasks_progress
from portal.wecom.gateway import WeComError
from portal.wecom.oauth import OAuthFailed, oauth_authorize_url, oauth_userid
from stores.access.services import user_for_wecom_member
from stores.models import Staff
from stores.org.selectors import org_in_scope

OAUTH_SESSION_KEY = "wecom_oauth"


@login_required
def home(request):
    """Today's and overdue work first; a store manager also sees the store's tasks with their progress."""
    org = org_in_scope(viewer=request.user)
    return render(request, "mobile/home.html", {"scope": org.scope, "stores": org.stores, "staff": org.staff,
                                                "my_tasks": my_open_assignments(viewer=request.user),
                                                "store_tasks": store_tasks_progress(viewer=request.user)})


@login_required
def staff_detail(request, pk: int):
    member = get_object_or_404(Staff.objects.for_user(request.user).select_related("store"), pk=pk)
    return render(request, "mobile/staff.html", {"member": member})


def wecom_login(request):
    """Start WeCom sign-in: remember a one-time state (against forged returns) and go to WeCom."""
    state = secrets.token_urlsafe(16)
    next_url = request.GET.get("next", "")
    request.session[OAUTH_SESSION_KEY] = {"state": state, "next": next_url}
    return redirect(oauth_authorize_url(redirect_uri=request.build_absolute_uri(reverse("mobile:wecom_done")),
                                        state=state))


def wecom_done(request):
    """WeCom sent the browser back with a code: the member it names is signed in, if they have a login."""
    expected = request.session.pop(OAUTH_SESSION_KEY, None) or {}
    if not expected or request.GET.get("state") != expected.get("state"):
        return _login_error(request, _("登录请求已失效，请重新进入"))
    try:
        userid = oauth_userid(code=request.GET.get("code", ""))
    except OAuthFailed as exc:
        return _login_error(request, str(exc))
    except WeComError:
        return _login_error(request, _("企业微信暂时无法确认身份，请稍后再试"))
    user = user_for_wecom_member(userid=userid)
    if user is None:
        return _login_error(request, _("你的企业微信账号还没有开通店小二，请联系店长或总部"))
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    next_url = expected.get("next") or reverse("mobile:home")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("mobile:home")
    return redirect(next_url)


def _login_error(request, message: str):
    return render(request, "mobile/login.html", {"wecom_error": message, "form": None}, status=403)
