"""「我的海报」on the mobile page: the viewer's own poster of a poster template — their store's name, address and
hours, their name and their own QR code (一人一码) — as a JPEG to share in WeCom or save.

Thin: the material must be usable by the viewer (material_usable_get: their scope, published, in its validity
window), else 404 as for an id that does not exist; materials.posters.services.poster_for renders it (cached).
Opening it records a "share" (the page exists to pass it on: long-press in WeCom's browser), ``?download=1``
a "download" (the file saved as an attachment).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

from campaigns.mobile.selectors import phone_viewer
from materials.library.models import Material, MaterialKind
from materials.library.selectors import material_usable_get
from materials.library.storage import file_response
from materials.posters.services import poster_for
from materials.usage.models import UseAction
from materials.usage.services import material_use_record
from portal.errors import DomainError


@login_required
@require_GET
def material_poster(request, pk: int):
    try:  # another scope's, expired, archived, a draft: as for an id that does not exist
        material = material_usable_get(viewer=request.user, pk=pk)
    except Material.DoesNotExist as exc:
        raise Http404 from exc
    if material.kind != MaterialKind.POSTER_TEMPLATE:
        raise Http404
    viewer = phone_viewer(user=request.user)
    staff, store = viewer.staff, viewer.store
    if store is None:
        raise Http404
    try:
        poster = poster_for(material=material, store=store, staff=staff)
    except DomainError as exc:
        return HttpResponse(exc.message, status=503, content_type="text/plain; charset=utf-8")
    download = request.GET.get("download") == "1"
    material_use_record(material_id=material.pk, version_id=poster.version_id, store_id=store.pk,
                        staff_id=staff.pk if staff is not None else None, user_id=request.user.pk,
                        action=UseAction.DOWNLOAD if download else UseAction.SHARE)
    owner = staff.name if staff is not None else store.name
    return file_response(name=poster.file, download_name=f"{material.title}-{owner}.jpg", content_type="image/jpeg",
                         inline=not download)
