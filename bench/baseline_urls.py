"""The baseline server's URLs: the naive callback endpoint (decrypt, store and run the handler inside the
request) and the stock customer admin (bench/baseline_admin.py) at /admin/."""

from django.http import HttpResponse, HttpResponseForbidden
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from bench.baseline_admin import baseline_site
from portal.wecom.callbacks import CallbackRejected, callback_decrypt, callback_store, event_parse
from portal.wecom.events import callback_event_process


@csrf_exempt
def inline_callback(request):
    signature = {key: request.GET.get(key, "") for key in ("msg_signature", "timestamp", "nonce")}
    try:
        fields = event_parse(callback_decrypt(body=request.body, **signature))
    except CallbackRejected:
        return HttpResponseForbidden()
    stored = callback_store(fields=fields)
    if stored.event_id:
        callback_event_process(event_id=stored.event_id)
    return HttpResponse("success")


def healthz(request):
    return HttpResponse("ok")


urlpatterns = [path("wecom/callback/", inline_callback), path("healthz", healthz),
               path("admin/", baseline_site.urls)]
