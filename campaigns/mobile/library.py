"""The library on the mobile page: browse and search what one may use now, preview, download, copy a script
with its variables filled. Thin views over materials' selectors; every view, download and copy is recorded
(``material_use_record``: one Redis push, written to the database in batches).

Who sees what is the library's own scoping (``materials_usable``): published, inside its validity window, its
audience reaching a store of the viewer's scope. HQ logins (no store) see every usable material; a login
with no role, or whose staff member left, sees none. Another scope's material, an expired, archived or draft
one answers 404 on every route, exactly as an id that does not exist.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from campaigns.mobile.selectors import PhoneViewer, phone_viewer
from customers.contacts.selectors import customer_address_for
from materials.library.models import Folder, Material, MaterialKind, MaterialTag, MaterialVersion
from materials.library.scripts import ScriptContext, script_fill
from materials.library.selectors import material_usable_get, materials_usable
from materials.library.storage import file_response
from materials.usage.services import material_use_record
from portal.parsers import id_param

PAGE_SIZE = 20
SEARCH_MAX = 64
USED_ACTIONS = ("copy", "share")  # what the page reports (the browser did it); views and downloads we see
TEXT_KINDS = (MaterialKind.SCRIPT, MaterialKind.MOMENTS)
INLINE_MIMES = ("image/", "video/")
EXPIRY_SOON_DAYS = 30


def _viewer(request) -> PhoneViewer:
    return phone_viewer(user=request.user)


def _material(request, pk: int) -> Material:
    try:
        return material_usable_get(viewer=request.user, pk=pk)  # another scope's, expired, archived: not found
    except Material.DoesNotExist as exc:
        raise Http404 from exc


def _record(request, material: Material, action: str, viewer: PhoneViewer | None = None) -> None:
    viewer = viewer or _viewer(request)
    assert material.current_version_id is not None  # usable materials have one
    material_use_record(material_id=material.pk, version_id=material.current_version_id,
                        store_id=viewer.store.pk if viewer.store else None,
                        staff_id=viewer.staff.pk if viewer.staff else None, user_id=request.user.pk, action=action)


def expiry_label(expires_at: datetime | None, *, now: datetime) -> str:
    """"3天后到期" for a material that ends within a month (its local date), "今天到期" on its last day."""
    if expires_at is None:
        return ""
    days = (timezone.localdate(expires_at) - timezone.localdate(now)).days
    if days <= 0:
        return _("今天到期")
    if days <= EXPIRY_SOON_DAYS:
        return ngettext("%(n)d天后到期", "%(n)d天后到期", days) % {"n": days}
    return _("%(date)s 到期") % {"date": timezone.localtime(expires_at).strftime("%Y-%m-%d")}


@login_required
@require_GET
def materials_list(request):
    """Newest first, searched (title, description, script text) and filtered by kind, folder and tag; paged
    without counting (one row more than a page says whether there is a next one)."""
    kind = request.GET.get("kind", "")
    kind = kind if kind in MaterialKind.values else ""
    folder_id, tag_id = id_param(request.GET.get("folder")), id_param(request.GET.get("tag"))
    folder = Folder.objects.for_user(request.user).filter(pk=folder_id).first() if folder_id else None
    tag = MaterialTag.objects.for_user(request.user).filter(pk=tag_id).first() if tag_id else None
    search = request.GET.get("q", "").strip()[:SEARCH_MAX]
    page = id_param(request.GET.get("page")) or 1
    customer = id_param(request.GET.get("customer"))
    materials = materials_usable(viewer=request.user, kind=kind or None, search=search, folder=folder,
                                 tag_id=tag.pk if tag else None).order_by("-updated_at", "-id")
    rows = list(materials[(page - 1) * PAGE_SIZE:page * PAGE_SIZE + 1])
    has_next, rows = len(rows) > PAGE_SIZE, rows[:PAGE_SIZE]
    now = timezone.now()
    for material in rows:
        material.expiry_label = expiry_label(material.expires_at, now=now)  # type: ignore[attr-defined]
    filters = {"q": search, "kind": kind, "folder": folder.pk if folder else "", "tag": tag.pk if tag else "",
               "customer": customer or ""}

    def query(**changes) -> str:
        return "?" + urlencode({k: v for k, v in {**filters, **changes}.items() if v not in ("", None)})

    subfolders = Folder.objects.for_user(request.user).filter(parent=folder)[:50]
    return render(request, "mobile/materials.html", {
        "materials": rows, "q": search, "kind": kind, "folder": folder, "tag": tag, "page_number": page,
        "previous_query": query(page=page - 1 if page > 2 else "") if page > 1 else "",
        "next_query": query(page=page + 1) if has_next else "",
        "kinds": [(value, label, query(kind=value)) for value, label in MaterialKind.choices],
        "all_kinds_query": query(kind=""),
        "folders": [(f, query(folder=f.pk)) for f in subfolders],
        "parent_query": query(folder=folder.parent_id or "") if folder else "",
        "tags": [(t, query(tag=t.pk)) for t in MaterialTag.objects.for_user(request.user)[:30]],
        "all_tags_query": query(tag=""),
        "detail_query": f"?{urlencode({'customer': customer})}" if customer else "",
        "customer": customer or ""})


def _preview_urls(material: Material, version: MaterialVersion) -> dict[str, str]:
    base = {"file": reverse("mobile:material_file", args=[material.pk]),
            "thumbnail": reverse("mobile:material_thumbnail", args=[material.pk])}
    return {"file": base["file"] if version.file else "", "inline": f"{base['file']}?inline=1"
            if version.file and version.mime.startswith(INLINE_MIMES) else "",
            "thumbnail": base["thumbnail"] if version.thumbnail else ""}


@login_required
@require_GET
def material_detail(request, pk: int):
    """The current version previewed; a script's text filled for the viewer (and the customer named by
    ``?customer=``, if the viewer's scope holds that customer: anyone else's id is ignored). Recorded: a view."""
    material = _material(request, pk)
    version = material.current_version
    assert version is not None
    viewer = _viewer(request)
    customer_name = ""
    customer_id = id_param(request.GET.get("customer"))
    if customer_id and material.kind in TEXT_KINDS:
        customer_name = customer_address_for(viewer=request.user, customer_id=customer_id, staff=viewer.staff)
    script = ""
    if material.kind in TEXT_KINDS and version.text:
        script = script_fill(text=version.text, context=ScriptContext(staff=viewer.staff, store=viewer.store,
                                                                      customer_name=customer_name))
    _record(request, material, "view", viewer)
    return render(request, "mobile/material.html", {
        "material": material, "version": version, "script": script, "customer_name": customer_name,
        "expiry": expiry_label(material.expires_at, now=timezone.now()), "urls": _preview_urls(material, version),
        # A template's own poster (campaigns/mobile/posters.py) is drawn for someone with a store.
        "poster_url": reverse("mobile:material_poster", args=[material.pk])
        if material.kind == MaterialKind.POSTER_TEMPLATE and viewer.store is not None else ""})


@login_required
@require_GET
def material_file(request, pk: int):
    """The current version's file: a download (recorded), or ``?inline=1`` an image or video shown in the page."""
    material = _material(request, pk)
    version = material.current_version
    if version is None or not version.file:
        raise Http404
    inline = request.GET.get("inline") == "1" and version.mime.startswith(INLINE_MIMES)
    if not inline:
        _record(request, material, "download")
    return file_response(name=version.file, download_name=version.file_name or f"material-{material.pk}",
                         content_type=version.mime or "application/octet-stream", inline=inline)


@login_required
@require_GET
def material_thumbnail(request, pk: int):
    material = _material(request, pk)
    version = material.current_version
    if version is None or not version.thumbnail:
        raise Http404
    return file_response(name=version.thumbnail, download_name=f"{material.pk}.jpg", content_type="image/jpeg",
                         inline=True)


@login_required
@require_POST
def material_used(request, pk: int):
    """The page says the viewer copied a script (or shared it): counted, nothing else. 204; 400 for another
    action; 404 for a material the viewer may not use."""
    material = _material(request, pk)
    action = request.POST.get("action", "")
    if action not in USED_ACTIONS:
        return HttpResponseBadRequest(_("未知的操作"), content_type="text/plain; charset=utf-8")
    _record(request, material, action)
    return HttpResponse(status=204)
