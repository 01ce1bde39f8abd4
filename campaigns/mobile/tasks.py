"""The task page on the phone: a store team sees, confirms (收到), does (checklist, photos, follow-ups) and
finishes (完成) its tasks; a store manager follows each staff member's progress, nudges one, excuses one.

Thin views over campaigns/mobile/selectors.py and the task engine's services (campaigns/tasks/services.py): no
rule lives here. Every POST is CSRF-protected and safe to repeat (the services are idempotent: a double tap is
one event) and answers with a redirect to the task page (post/redirect/get), its outcome a message on that page;
htmx, where the phone has JavaScript, swaps the page's ``#task`` part in place. An assignment (or photo) the
viewer's scope does not hold answers 404 on every route, exactly as an id that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from campaigns.mobile.selectors import assignment_for_page, evidence_for_viewer, task_page
from campaigns.tasks.models import Assignment, ChecklistItem, FollowUpOutcome
from campaigns.tasks.services import (
    AssignmentNotFound,
    AssignmentRefused,
    assignment_confirm,
    assignment_done,
    assignment_excuse,
    assignment_nudge,
    checklist_tick,
    evidence_add,
    followup_record,
)
from materials.library.storage import file_response
from portal.errors import DomainError
from portal.parsers import id_param

EXCUSE_REASONS = {"leave": gettext_lazy("请假"), "store_closed": gettext_lazy("门店停业"),
                  "other": gettext_lazy("其他")}
NOTE_MAX = 100


def _assignment(request, pk: int) -> Assignment:
    assignment = assignment_for_page(viewer=request.user, pk=pk)
    if assignment is None:  # another store's, a colleague's (for store staff), or none at all
        raise Http404
    return assignment


def _page_url(pk: int) -> str:
    return reverse("mobile:task", args=[pk])


def _act(request, assignment: Assignment, work: Callable[[], str | None], *, back: int | None = None):
    """Runs a service; its refusal (in Chinese) or ``work``'s success message goes onto the task page."""
    try:
        done = work()
    except AssignmentNotFound as exc:
        raise Http404 from exc
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        if done:
            messages.success(request, done)
    return redirect(_page_url(back or assignment.pk))


@login_required
@require_GET
def task_detail(request, pk: int):
    assignment = _assignment(request, pk)
    page = task_page(viewer=request.user, assignment=assignment)
    return render(request, "mobile/task.html", {
        "page": page, "assignment": assignment, "task": assignment.task,
        "outcomes": FollowUpOutcome.choices, "excuse_reasons": list(EXCUSE_REASONS.items()),
        "max_photo_bytes": settings.XIAOER_EVIDENCE_MAX_BYTES})


@login_required
@require_POST
def task_confirm(request, pk: int):
    assignment = _assignment(request, pk)

    def work() -> str:
        assignment_confirm(assignment=assignment, by=request.user)
        return _("已确认收到")

    return _act(request, assignment, work)


@login_required
@require_POST
def task_done(request, pk: int):
    assignment = _assignment(request, pk)

    def work() -> str:
        assignment_done(assignment=assignment, by=request.user)
        return _("任务已完成，辛苦了")

    return _act(request, assignment, work)


@login_required
@require_POST
def task_tick(request, pk: int):
    """Tick (``ticked=1``) or untick (``ticked=0``) one checklist item of the task."""
    assignment = _assignment(request, pk)
    item_id = id_param(request.POST.get("item"))
    item = ChecklistItem.objects.filter(task_id=assignment.task_id, pk=item_id).first() if item_id else None

    def work() -> None:
        if item is None:
            raise AssignmentRefused(_("这个检查项不属于这条任务"))
        checklist_tick(assignment=assignment, item=item, by=request.user, ticked=request.POST.get("ticked") != "0")
        return None

    return _act(request, assignment, work)


@login_required
@require_POST
def task_photo(request, pk: int):
    """A photo from the camera (``photo``), for a checklist item (``item``) or for the task. Judged by the
    engine (evidence_add): type by content, size, pixels, HEIC converted; refused, nothing is stored."""
    assignment = _assignment(request, pk)
    upload = request.FILES.get("photo")
    item_id = id_param(request.POST.get("item"))
    item = ChecklistItem.objects.filter(task_id=assignment.task_id, pk=item_id).first() if item_id else None

    def work() -> str:
        if upload is None:
            raise AssignmentRefused(_("请先拍照或选择一张照片"))
        if item_id and item is None:
            raise AssignmentRefused(_("这个检查项不属于这条任务"))
        data = upload.read(settings.XIAOER_EVIDENCE_MAX_BYTES + 1)  # one byte more says "too large"
        evidence_add(assignment=assignment, by=request.user, data=data, item=item)
        return _("照片已上传")

    return _act(request, assignment, work)


@login_required
@require_POST
def task_followup(request, pk: int):
    """The outcome of contacting one customer of the staff member's own follow-up list."""
    from customers.models import Customer

    assignment = _assignment(request, pk)
    customer_id = id_param(request.POST.get("customer"))
    customer = Customer.objects.for_user(request.user).filter(pk=customer_id).first() if customer_id else None

    def work() -> str:
        if customer is None:
            raise AssignmentRefused(_("这位客户不在你的跟进名单里"))
        followup_record(assignment=assignment, customer=customer, outcome=request.POST.get("outcome", ""),
                        by=request.user, note=request.POST.get("note", "")[:200])
        return _("已记录跟进结果")

    return _act(request, assignment, work)


def _back(request, target: Assignment) -> int | None:
    """The manager's page the action came from (an assignment of the same store task they may see), if any."""
    back = id_param(request.POST.get("back"))
    if back is None or back == target.pk:
        return None
    origin = assignment_for_page(viewer=request.user, pk=back)
    return origin.pk if origin is not None and origin.store_task_id == target.store_task_id else None


@login_required
@require_POST
def task_nudge(request, pk: int):
    """A store manager reminds one staff member of this work (催一下)."""
    assignment = _assignment(request, pk)
    name = assignment.staff.name if assignment.staff else _("门店")

    def work() -> str:
        result = assignment_nudge(assignment=assignment, by=request.user)
        if not result.recorded:
            return _("刚刚已经催过%(name)s了，请稍后再试") % {"name": name}
        if result.sent:
            return _("已提醒%(name)s（企业微信消息已发出）") % {"name": name}
        return _("已记录对%(name)s的催办（未发送企业微信消息）") % {"name": name}

    return _act(request, assignment, work, back=_back(request, assignment))


@login_required
@require_POST
def task_excuse(request, pk: int):
    """A store manager excuses one staff member: leave, store closed, or another reason written out."""
    assignment = _assignment(request, pk)
    kind = request.POST.get("reason", "")
    note = request.POST.get("note", "").strip()[:NOTE_MAX]
    name = assignment.staff.name if assignment.staff else _("门店")

    def work() -> str:
        if kind not in EXCUSE_REASONS:
            raise AssignmentRefused(_("请选择免除的原因"))
        if kind == "other" and not note:
            raise AssignmentRefused(_("选择“其他”时请写明原因"))
        label = str(EXCUSE_REASONS[kind])
        assignment_excuse(assignment=assignment, by=request.user, reason=f"{label}：{note}" if note else label)
        return _("已免除%(name)s的这项任务") % {"name": name}

    return _act(request, assignment, work, back=_back(request, assignment))


@login_required
@require_GET
def task_evidence(request, pk: int):
    """A photo taken for a task: only for the store's own people (as their work's scope says) and its managers
    up the line; 404 for anyone else."""
    evidence = evidence_for_viewer(viewer=request.user, pk=pk)
    if evidence is None:
        raise Http404
    extension = "png" if evidence.mime == "image/png" else "jpg"
    return file_response(name=evidence.file, download_name=f"photo-{evidence.pk}.{extension}",
                         content_type=evidence.mime, inline=True)
