"""Localized posters: a poster template rendered for a staff member (or a store), cached, re-rendered on change.

The QR code's payload comes from a provider the right-hand app registers (customers hands in each staff member's
contact-way payload, 一人一码): materials never imports customers. A staff member without one gets a poster
without a QR code (the template's QR box keeps its background); once their code can be read the inputs key
changes and the next request or job draws it.

Bulk rendering for a region or the template's whole audience is one job (a SyncRun with progress): batches of
staff ordered by id, each rendered in a process pool, stored, upserted in one statement and committed together
with the job's cursor, so a job that crashed continues after the last finished batch. What is already up to
date (the same inputs key) is skipped, so a second job renders nothing new.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from materials.library.files import FileFacts
from materials.library.models import Material, MaterialKind, MaterialVersion
from materials.library.selectors import material_audience_stores
from materials.library.storage import file_discard, file_read, file_store
from materials.posters.layout import PosterLayout, layout_validate, poster_font_path
from materials.posters.models import RenderedPoster
from materials.posters.tasks import posters_job_task
from portal.audit import audit_record
from portal.errors import DomainError
from portal.locks import TextLock, session_lock_try
from portal.registry import registry_add
from portal.tasks import enqueue_after_commit
from portal.wecom.models import SyncRun
from stores.access.scoping import ScopeKind, region_ids_with_descendants, user_scope
from stores.org.models import Region, Staff, Store

POSTER_JOB_KIND = "materials.posters"
BATCH = 500  # staff rendered, stored and committed together (with the job's cursor)
POOL_FROM = 64  # fewer posters than this to render are drawn here, without starting a process pool
STORAGE_PREFIX = "posters"
JOB_SCOPES = (ScopeKind.ALL, ScopeKind.REGIONS, ScopeKind.FRANCHISEE)

QrProvider = Callable[..., dict[int, str]]  # provider(staff_ids=[…]) → {staff id: QR payload} for those with one
_qr_providers: dict[str, QrProvider] = {}


class PosterRefused(DomainError):
    """A poster (or a poster job) cannot be made: the message says why."""


def poster_qr_provider_register(*, name: str, provider: QrProvider) -> None:
    """The app that knows each staff member's QR payload registers it here, at startup (apps' hooks)."""
    registry_add(_qr_providers, name, provider, what="poster QR provider")


def poster_qr_payloads(*, staff_ids: list[int]) -> dict[int, str]:
    """The QR payload of each staff member that has one, from the registered providers."""
    payloads: dict[int, str] = {}
    if not staff_ids:
        return payloads
    for provider in _qr_providers.values():
        payloads.update(provider(staff_ids=list(staff_ids)))
    return payloads


def poster_values(*, store: Store, staff: Staff | None) -> dict[str, str]:
    """What a template's placeholders print, for this store and staff member."""
    return {"store_name": store.name, "store_address": store.address, "store_hours": store.opening_hours,
            "staff_name": staff.name if staff is not None else ""}


@dataclass
class _Template:
    material: Material
    version: MaterialVersion
    layout: PosterLayout
    font_path: str
    _background: bytes | None = field(default=None, repr=False)

    @property
    def background(self) -> bytes:
        if self._background is None:  # read from storage only when something is to be drawn
            self._background = file_read(name=self.version.file)
        return self._background

    def key(self, values: dict[str, str], qr_payload: str | None) -> str:
        from materials.posters.render import poster_inputs_key

        return poster_inputs_key(template_version_id=self.version.pk, values=values, qr_payload=qr_payload,
                                 font_path=self.font_path)


def _template(material: Material) -> _Template:
    if material.kind != MaterialKind.POSTER_TEMPLATE:
        raise PosterRefused(_("“%(title)s”不是海报模板") % {"title": material.title})
    version = material.current_version
    if version is None or not version.file:
        raise PosterRefused(_("海报模板“%(title)s”还没有底图") % {"title": material.title})
    layout = layout_validate(layout=version.layout, width=version.width or 0, height=version.height or 0)
    return _Template(material=material, version=version, layout=layout, font_path=poster_font_path())


def _image_store(data: bytes) -> str:
    facts = FileFacts(mime="image/jpeg", extension="jpg", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return file_store(data=data, facts=facts, prefix=STORAGE_PREFIX)


def _files_release(names: Iterable[str]) -> None:
    """Discards the stored images no poster points at any more (content-addressed: two posters may share one)."""
    names = {name for name in names if name}
    if not names:
        return
    kept = set(RenderedPoster.objects.filter(file__in=names).values_list("file", flat=True))
    for name in names - kept:
        file_discard(name=name)


def poster_for(*, material: Material, store: Store, staff: Staff | None = None) -> RenderedPoster:
    """The current poster of this template for the staff member (at ``store``, theirs), or the store's own poster
    without ``staff``: returned as cached when its inputs are unchanged, else rendered now and kept.

    The caller has checked the viewer may use the material (material_usable_get) and is this staff member or
    of this store. Raises PosterRefused (not a poster template, no background, staff of another store) and the
    engine's DomainErrors (font missing, QR too dense, storage unavailable).
    """
    from materials.posters.render import PosterRenderer

    if staff is not None and staff.store_id != store.pk:
        raise PosterRefused(_("员工“%(name)s”不属于门店“%(store)s”") % {"name": staff.name, "store": store.name})
    template = _template(material)
    values = poster_values(store=store, staff=staff)
    qr_payload = poster_qr_payloads(staff_ids=[staff.pk]).get(staff.pk) if staff is not None else None
    key = template.key(values, qr_payload)
    owner: dict[str, Any] = {"staff": staff} if staff is not None else {"store": store, "staff__isnull": True}
    current = RenderedPoster.objects.filter(material=material, **owner).first()
    if current is not None and current.inputs_key == key and current.store_id == store.pk:
        return current
    renderer = PosterRenderer(background=template.background, layout=template.layout, font_path=template.font_path)
    image = renderer.render(values=values, qr_payload=qr_payload)
    name = _image_store(image)
    try:
        with transaction.atomic():
            poster, _created = RenderedPoster.objects.update_or_create(
                material=material, **owner,
                defaults={"store": store, "staff": staff, "version": template.version, "inputs_key": key,
                          "file": name, "rendered_at": timezone.now()})
    except Exception:
        _files_release([name])
        raise
    if current is not None and current.file != name:
        transaction.on_commit(lambda: _files_release([current.file]))
    return poster


# -- bulk: one job for a region or the template's whole audience ------------------------------------------------

def _job_refuse_check(*, material: Material, by, region: Region | None) -> None:
    scope = user_scope(by)
    if scope.kind not in JOB_SCOPES:
        raise PosterRefused(_("只有总部、大区经理和加盟商可以为门店员工批量生成海报"))
    if not Material.objects.for_scope(scope).filter(pk=material.pk).exists():
        raise PosterRefused(_("找不到这份海报模板"))
    if region is not None and not scope.is_hq and not Store.objects.filter(scope.store_q(), region_id__in=(
            region_ids_with_descendants(region_ids=[region.pk]))).exists():
        raise PosterRefused(_("区域“%(region)s”不在你的管理范围内") % {"region": region.name})
    if not material.is_usable():
        raise PosterRefused(_("海报模板“%(title)s”未发布或不在有效期内，发布后才能为门店生成海报")
                            % {"title": material.title})


def posters_job_start(*, material: Material, by, region: Region | None = None) -> SyncRun:
    """One job rendering the poster of every active staff member of the stores the template's audience reaches,
    within ``by``'s scope (and ``region`` with its sub-regions, if given). HQ, region managers and franchisees
    may start it; store roles may not. Raises PosterRefused."""
    _job_refuse_check(material=material, by=by, region=region)
    _template(material)  # a template that cannot render is refused before anything is queued
    progress: dict[str, Any] = {
        "material_id": material.pk, "material": material.title, "region_id": region.pk if region else None,
        "region": region.name if region else "", "by": by.pk, "stage": "queued", "total": None, "done": 0,
        "rendered": 0, "unchanged": 0, "without_qr": 0, "_cursor": 0}
    with transaction.atomic():
        run = SyncRun.objects.create(kind=POSTER_JOB_KIND, progress=progress)
        audit_record(action="posters.render", target_type="materials.material", target_ids=[material.pk], by=by,
                     detail={"run": run.pk, "region": progress["region_id"]})
        enqueue_after_commit(posters_job_task, run_id=run.pk)
    return run


def posters_job_staff(*, material: Material, viewer, region_id: int | None = None) -> QuerySet[Staff]:
    """The staff a job renders for: active, in an open store the template reaches, in ``viewer``'s scope (and the
    region with its sub-regions). Nothing for a viewer with no scope (any more)."""
    stores = Store.objects.for_user(viewer).filter(pk__in=material_audience_stores(material=material).values("pk"))
    if region_id:
        stores = stores.filter(region_id__in=region_ids_with_descendants(region_ids=[region_id]))
    return (Staff.objects.active().filter(store_id__in=stores.values("pk")).exclude(position=Staff.Position.HQ))


UPSERT_SQL = """
INSERT INTO materials_renderedposter (material_id, version_id, store_id, staff_id, inputs_key, file, rendered_at)
SELECT %(material)s, %(version)s, r.store_id, r.staff_id, r.inputs_key, r.file, now()
FROM unnest(%(stores)s::bigint[], %(staff)s::bigint[], %(keys)s::text[], %(files)s::text[])
    AS r(store_id, staff_id, inputs_key, file)
ON CONFLICT (material_id, staff_id) WHERE staff_id IS NOT NULL DO UPDATE
SET version_id = EXCLUDED.version_id, store_id = EXCLUDED.store_id, inputs_key = EXCLUDED.inputs_key,
    file = EXCLUDED.file, rendered_at = EXCLUDED.rendered_at
"""


def _processes(count: int) -> int | None:
    if count < POOL_FROM:
        return 1
    return getattr(settings, "XIAOER_POSTER_PROCESSES", 0) or None


def _batch_render(run: SyncRun, template: _Template, batch: list[Staff]) -> None:
    """Render the batch's posters whose inputs changed, store them, upsert them and move the cursor, together."""
    from materials.posters.render import posters_render_many

    progress = dict(run.progress)
    payloads = poster_qr_payloads(staff_ids=[member.pk for member in batch])
    known = {staff_id: (store_id, key, name) for staff_id, store_id, key, name in RenderedPoster.objects.filter(
        material=template.material, staff__in=[m.pk for m in batch]).values_list(
        "staff_id", "store_id", "inputs_key", "file")}
    todo: dict[int, tuple[Staff, dict[str, str], str | None, str]] = {}
    unchanged = without_qr = 0
    for member in batch:
        assert member.store is not None  # the job's staff are those of the template's stores
        values = poster_values(store=member.store, staff=member)
        payload = payloads.get(member.pk)
        without_qr += payload is None
        key = template.key(values, payload)
        old = known.get(member.pk)
        if old is not None and old[0] == member.store_id and old[1] == key:
            unchanged += 1
        else:
            todo[member.pk] = (member, values, payload, key)
    stored: dict[int, str] = {}
    try:
        if todo:
            for staff_id, image in posters_render_many(
                    background=template.background, layout=template.layout, font_path=template.font_path,
                    processes=_processes(len(todo)),
                    items=((pk, values, payload) for pk, (_member, values, payload, _key) in todo.items())):
                stored[staff_id] = _image_store(image)
        with transaction.atomic():
            if stored:
                ids = list(stored)
                with connection.cursor() as cursor:
                    cursor.execute(UPSERT_SQL, {
                        "material": template.material.pk, "version": template.version.pk,
                        "stores": [todo[pk][0].store_id for pk in ids], "staff": ids,
                        "keys": [todo[pk][3] for pk in ids], "files": [stored[pk] for pk in ids]})
            progress = {**progress, "rendered": progress["rendered"] + len(stored),
                        "unchanged": progress["unchanged"] + unchanged,
                        "without_qr": progress["without_qr"] + without_qr,
                        "done": progress["done"] + len(batch), "_cursor": batch[-1].pk}
            SyncRun.objects.filter(pk=run.pk).update(progress=progress)
    except Exception:
        _files_release(stored.values())
        raise
    run.progress = progress  # the batch is committed: the job's counters move with it
    replaced = [known[pk][2] for pk in stored if pk in known and known[pk][2] != stored[pk]]
    _files_release(replaced)


def posters_job_run(*, run_id: int) -> SyncRun:
    """Run (or continue) a poster job: batch by batch from its cursor. Safe to run twice: a second runner of the
    same job returns at once, a finished job does nothing, and posters already up to date are not redrawn."""
    from portal.models import User

    with session_lock_try(TextLock.MATERIAL_POSTERS, run_id) as locked:
        run = SyncRun.objects.get(pk=run_id)
        if not locked or run.status != SyncRun.Status.RUNNING or run.kind != POSTER_JOB_KIND:
            return run
        progress = dict(run.progress)
        by_id = progress.get("by")
        viewer = User.objects.filter(pk=by_id).first() if type(by_id) is int else None
        material_id = progress.get("material_id")
        material = (Material.objects.select_related("current_version").filter(pk=material_id).first()
                    if type(material_id) is int else None)
        try:
            if material is None:
                raise PosterRefused(_("海报模板已不存在"))
            if not material.is_usable():  # archived or expired since the job was started
                raise PosterRefused(_("海报模板“%(title)s”已撤下或过期，没有生成海报") % {"title": material.title})
            template = _template(material)
        except DomainError as exc:
            return _job_finish(run, status=SyncRun.Status.FAILED, error=str(exc))
        staff = posters_job_staff(material=material, viewer=viewer, region_id=progress.get("region_id"))
        if progress.get("total") is None:
            progress["total"] = staff.count()
        progress["stage"] = "rendering"
        run.progress = progress
        SyncRun.objects.filter(pk=run.pk).update(progress=progress)
        while True:
            cursor = run.progress.get("_cursor") or 0
            batch = list(staff.filter(pk__gt=cursor).select_related("store").order_by("pk")[:BATCH])
            if not batch:
                break
            try:
                _batch_render(run, template, batch)
            except DomainError as exc:  # the font went missing, a QR that does not fit, storage down: say so
                return _job_finish(run, status=SyncRun.Status.FAILED, error=str(exc))
        run.progress = {**run.progress, "stage": "done"}
        return _job_finish(run, status=SyncRun.Status.DONE)


def _job_finish(run: SyncRun, *, status: str, error: str = "") -> SyncRun:
    run.status, run.error, run.finished_at = status, error, timezone.now()
    run.save(update_fields=["status", "error", "finished_at", "progress"])
    return run


def posters_job_runs(*, by, limit: int = 5) -> QuerySet[SyncRun]:
    """The poster jobs ``by`` started, newest first (their progress, on the library's page)."""
    return SyncRun.objects.filter(kind=POSTER_JOB_KIND, progress__by=by.pk).order_by("-started_at", "-pk")[:limit]
