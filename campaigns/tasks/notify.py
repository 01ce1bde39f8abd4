"""Telling people about tasks over WeCom: the notice after dispatch (a template card with 收到), reminders before
the deadline and escalations after it, each step one ReminderLog row per target, sent at most once.

    dispatch ─► notify_task ─► task_notices_notify(task_id)         one "notify" row per pending assignment
    beat (every minute) ─► reminders_run(now)                        overdue marked, reminder and escalation
                                                                     rows created, every due row sent

How a step goes out (``notices_send``):
- Rows are created set-based (one INSERT … SELECT per kind, ON CONFLICT DO NOTHING on the unique (target,
  step)), so a step exists once per assignment (notify, remind-24h …) or store task (escalate-2h …), whoever
  runs it and however often.
- Due rows (pending; deferred or failed whose retry time came) are claimed with a lease (retry_at moved on,
  FOR UPDATE SKIP LOCKED), then sent outside any transaction, as app_message_send requires.
- Recipients are resolved when sent: the executing member, or the store's managers when the store as a whole
  executes; for escalations the store's managers, then the region managers of the store's region (or its
  franchisee's owner), each through the WeCom userid of the Staff row their Access is bound to. Nobody to send
  to: the row is "skipped" with the reason (no WeCom account, no store manager…), shown on the task's admin page.
- All rows of one (task, step) go out together: the distinct userids in the fewest app_message_send calls of
  1,000, with key ``task-<task id>:<step>``. A member has at most one assignment per task, so this key per
  member is the assignment's id + step: nobody gets a step twice, even after a crash or a retry (the receipts
  of app_message_send). Each call carries its own card task_id (WeCom refuses a task_id twice).
- WeCom accepted a member: the row is "sent" and (notify) the assignment moves to notified through
  assignments_mark_notified. Over the member's budget: "deferred" to when it frees (the beat job sends it
  then). The call failed: "failed", retried with backoff up to MAX_ATTEMPTS sends.

The card's 收到 (``card_clicked``): WeCom's template_card_event names the member and the card's task_id; the
member's assignment of that task is confirmed (assignment_confirm, source card) and, after commit, their card
greyed out with the click's response_code ("已确认"; once, within 24 h; a refused update is logged).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from campaigns.tasks.models import (
    Assignment,
    AssignmentStatus,
    EventSource,
    ReminderKind,
    ReminderLog,
    ReminderStatus,
    Task,
    TaskStatus,
)
from campaigns.tasks.selectors import deadline_text
from portal.tasks import enqueue_after_commit
from portal.wecom.app_messages import (
    BATCH_SIZE,
    AppMessage,
    AppSendResult,
    CardButton,
    CardClick,
    app_message_card_buttons,
    app_message_send,
    app_message_textcard,
)
from stores.access.models import Access, Role
from stores.access.scoping import region_ids_with_descendants
from stores.org.models import Staff, Store

logger = logging.getLogger(__name__)

STEP_NOTIFY = "notify"
CARD_PREFIX = "xtask-"
CARD_CONFIRM_KEY = "confirm"
CARD_TASK_ID = re.compile(r"^xtask-(\d+)-")
MAX_ATTEMPTS = 8
LEASE = timedelta(minutes=10)  # a claimed row is not claimed again before this (a crashed sender's rows return)
CLAIM_LIMIT = 20000
REMINDABLE = (AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.CONFIRMED,
              AssignmentStatus.REOPENED)
NOTIFIABLE = (AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.CONFIRMED,
              AssignmentStatus.REOPENED, AssignmentStatus.OVERDUE)
TITLE_MAX = 36


def remind_step(hours: int) -> str:
    return f"remind-{hours}h"


def escalate_step(hours: int) -> str:
    return f"escalate-{hours}h"


# -- creating the rows (set-based) ------------------------------------------------------------------------
NOTIFY_ROWS_SQL = """
INSERT INTO campaigns_reminderlog (task_id, store_id, store_task_id, assignment_id, kind, step, status, recipients,
                                   detail, attempts, created_at)
SELECT a.task_id, a.store_id, a.store_task_id, a.id, 'notify', 'notify', 'pending', '{}', '', 0, %(now)s
FROM campaigns_assignment a
WHERE a.task_id = %(task_id)s AND a.status = 'pending'
ON CONFLICT (assignment_id, step) WHERE assignment_id IS NOT NULL DO NOTHING
"""

# Per task, the reminder whose window is current: due at deadline − h, until the next (smaller) offset's time.
# Missed earlier windows are not sent late (one reminder, not three at once); an assignment created after the
# window opened (a member who joined) has just had its notice and is not reminded in that window.
REMIND_ROWS_SQL = """
INSERT INTO campaigns_reminderlog (task_id, store_id, store_task_id, assignment_id, kind, step, status, recipients,
                                   detail, attempts, created_at)
SELECT a.task_id, a.store_id, a.store_task_id, a.id, 'remind', 'remind-' || w.h || 'h', 'pending', '{}', '', 0,
       %(now)s
FROM campaigns_task t
CROSS JOIN LATERAL (
    SELECT h, lead(h) OVER (ORDER BY h DESC) AS next_h
    FROM (SELECT value::int AS h FROM jsonb_array_elements_text(t.plan -> 'remind_before_hours')) offsets
) w
JOIN campaigns_assignment a ON a.task_id = t.id AND a.status = ANY(%(remindable)s)
WHERE t.status = 'dispatched' AND t.deadline > %(now)s
  AND jsonb_typeof(t.plan -> 'remind_before_hours') = 'array'
  AND t.deadline - make_interval(hours => w.h) <= %(now)s
  AND (w.next_h IS NULL OR t.deadline - make_interval(hours => w.next_h) > %(now)s)
  AND a.created_at < t.deadline - make_interval(hours => w.h)
ON CONFLICT (assignment_id, step) WHERE assignment_id IS NOT NULL DO NOTHING
"""

# Every escalation step that is due, for each store task with overdue work (each step has its own people).
ESCALATE_ROWS_SQL = """
INSERT INTO campaigns_reminderlog (task_id, store_id, store_task_id, assignment_id, kind, step, status, recipients,
                                   detail, attempts, created_at)
SELECT st.task_id, st.store_id, st.id, NULL, 'escalate', 'escalate-' || e.h || 'h', 'pending', '{}', '', 0,
       %(now)s
FROM campaigns_task t
CROSS JOIN LATERAL (
    SELECT (s ->> 'after_hours')::int AS h FROM jsonb_array_elements(t.plan -> 'escalate_after_hours') s
) e
JOIN campaigns_storetask st ON st.task_id = t.id AND st.withdrawn_at IS NULL
WHERE t.status = 'dispatched'
  AND jsonb_typeof(t.plan -> 'escalate_after_hours') = 'array'
  AND t.deadline + make_interval(hours => e.h) <= %(now)s
  AND EXISTS (SELECT 1 FROM campaigns_assignment a WHERE a.store_task_id = st.id AND a.status = 'overdue')
ON CONFLICT (store_task_id, step) WHERE assignment_id IS NULL DO NOTHING
"""


def _execute(sql: str, params: dict) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def notices_create(*, task_id: int, now: datetime | None = None) -> int:
    """One "notify" row for each pending assignment of the task that has none. Returns how many were made."""
    return _execute(NOTIFY_ROWS_SQL, {"task_id": task_id, "now": now or timezone.now()})


def reminders_create(*, now: datetime | None = None) -> int:
    """The reminder rows whose time has come, for every dispatched task with a plan."""
    return _execute(REMIND_ROWS_SQL, {"now": now or timezone.now(), "remindable": list(REMINDABLE)})


def escalations_create(*, now: datetime | None = None) -> int:
    """The escalation rows whose time has come, for every store task with overdue work."""
    return _execute(ESCALATE_ROWS_SQL, {"now": now or timezone.now()})


# -- claiming -----------------------------------------------------------------------------------------------
CLAIM_SQL = """
WITH due AS (
    SELECT id FROM campaigns_reminderlog
    WHERE status = ANY(%(due)s) AND (retry_at IS NULL OR retry_at <= %(now)s) AND attempts < %(max)s
      AND (%(task_id)s::bigint IS NULL OR task_id = %(task_id)s::bigint)
    ORDER BY id LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE campaigns_reminderlog r SET retry_at = %(lease)s, attempts = r.attempts + 1
FROM due WHERE r.id = due.id
RETURNING r.id, r.task_id, r.step, r.kind, r.assignment_id, r.store_task_id, r.store_id
"""


@dataclass(frozen=True)
class _Row:
    id: int
    task_id: int
    step: str
    kind: str
    assignment_id: int | None
    store_task_id: int
    store_id: int


def _claim(*, now: datetime, task_id: int | None) -> list[_Row]:
    due = [ReminderStatus.PENDING, ReminderStatus.DEFERRED, ReminderStatus.FAILED]
    params: dict[str, Any] = {"due": due, "now": now, "max": MAX_ATTEMPTS, "task_id": task_id, "limit": CLAIM_LIMIT,
                              "lease": now + LEASE}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CLAIM_SQL, params)
        return [_Row(*row) for row in cursor.fetchall()]


# -- who receives -------------------------------------------------------------------------------------------
ASSIGNMENT_RECIPIENTS_SQL = """
SELECT r.id, a.status, a.staff_id, s.userid, s.status
FROM campaigns_reminderlog r
JOIN campaigns_assignment a ON a.id = r.assignment_id
LEFT JOIN stores_staff s ON s.id = a.staff_id
WHERE r.id = ANY(%(ids)s) AND a.staff_id IS NOT NULL
UNION ALL
SELECT r.id, a.status, NULL, s.userid, s.status
FROM campaigns_reminderlog r
JOIN campaigns_assignment a ON a.id = r.assignment_id AND a.staff_id IS NULL
LEFT JOIN stores_staff s ON s.store_id = a.store_id AND s.status = 'active' AND s.position = 'store_manager'
WHERE r.id = ANY(%(ids)s)
"""


@dataclass
class _Who:
    userids: list[str] = field(default_factory=list)
    reason: str = ""  # why nobody (or not everyone) can be reached


def _assignment_recipients(rows: list[_Row]) -> dict[int, _Who]:
    """Per notify/remind row: the executing member, or the store's active managers for a store-level one."""
    who: dict[int, _Who] = {row.id: _Who() for row in rows}
    if not rows:
        return who
    remind = {row.id for row in rows if row.kind == ReminderKind.REMIND}
    with connection.cursor() as cursor:
        cursor.execute(ASSIGNMENT_RECIPIENTS_SQL, {"ids": [row.id for row in rows]})
        fetched = cursor.fetchall()
    for row_id, status, staff_id, userid, staff_status in fetched:
        entry = who[row_id]
        wanted = REMINDABLE if row_id in remind else NOTIFIABLE
        if status not in wanted:
            entry.reason = _("执行记录已是“%(status)s”，无需再发") % {"status": AssignmentStatus(status).label}
            continue
        if staff_id is not None and staff_status != Staff.Status.ACTIVE:
            entry.reason = _("员工已离职")
        elif userid is None:
            entry.reason = entry.reason or _("门店没有在职店长")
        elif not str(userid).strip():
            entry.reason = _("员工没有企业微信账号")
        else:
            entry.userids.append(userid)
    for entry in who.values():
        if entry.userids:
            entry.reason = ""
        elif not entry.reason:
            entry.reason = _("执行记录已不存在")
    return who


def _store_managers(store_ids: Iterable[int]) -> dict[int, list[str]]:
    managers: dict[int, list[str]] = defaultdict(list)
    for store_id, userid in (Staff.objects.active().filter(store_id__in=list(store_ids),
                                                           position=Staff.Position.STORE_MANAGER)
                             .exclude(userid="").values_list("store_id", "userid")):
        managers[store_id].append(userid)
    return managers


def _bound_userid(access: Access) -> str:
    staff = access.staff
    if staff is None or staff.status != Staff.Status.ACTIVE or not access.user.is_active:
        return ""
    return staff.userid or ""


def _region_managers(stores: dict[int, Store]) -> dict[int, list[str]]:
    """store id → the WeCom userids of the region managers whose regions (with sub-regions) hold it."""
    result: dict[int, list[str]] = defaultdict(list)
    accesses = (Access.objects.filter(role=Role.REGION_MANAGER).select_related("staff", "user")
                .prefetch_related("regions"))
    for access in accesses:
        userid = _bound_userid(access)
        if not userid:
            continue
        covered = region_ids_with_descendants(region_ids=[r.pk for r in access.regions.all()])
        for store in stores.values():
            if store.region_id in covered:
                result[store.pk].append(userid)
    return result


def _franchisee_owners(stores: dict[int, Store]) -> dict[int, list[str]]:
    franchisee_ids = {s.franchisee_id for s in stores.values() if s.franchisee_id}
    owners: dict[int, list[str]] = defaultdict(list)
    for access in (Access.objects.filter(role=Role.FRANCHISEE_OWNER, franchisee_id__in=franchisee_ids)
                   .select_related("staff", "user")):
        userid = _bound_userid(access)
        if userid and access.franchisee_id is not None:
            owners[access.franchisee_id].append(userid)
    return {s.pk: owners.get(s.franchisee_id or 0, []) for s in stores.values()}


def escalation_target(*, task: Task, step: str) -> str:
    for entry in (task.plan or {}).get("escalate_after_hours") or []:
        if escalate_step(int(entry["after_hours"])) == step:
            return str(entry["to"])
    return ""


def _escalation_recipients(task: Task, step: str, rows: list[_Row]) -> dict[int, _Who]:
    """Per escalation row (a store task): the people of the plan's step, if work there is still overdue."""
    who: dict[int, _Who] = {row.id: _Who() for row in rows}
    overdue = set(Assignment.objects.filter(store_task_id__in=[r.store_task_id for r in rows],
                                            status=AssignmentStatus.OVERDUE)
                  .values_list("store_task_id", flat=True).distinct())
    to = escalation_target(task=task, step=step)
    stores = {s.pk: s for s in Store.objects.filter(pk__in={r.store_id for r in rows})}
    if to == "store_manager":
        people, nobody = _store_managers(stores), _("门店没有在职店长")
    elif to == "franchisee_owner":
        owners = _franchisee_owners(stores)
        direct = {pk: s for pk, s in stores.items() if not s.franchisee_id}  # a direct store: its region manager
        people = {**owners, **_region_managers(direct)} if direct else owners
        nobody = _("没有绑定企业微信账号的加盟商负责人或区域经理")
    else:
        people, nobody = _region_managers(stores), _("没有绑定企业微信账号的区域经理")
    for row in rows:
        if row.store_task_id not in overdue:
            who[row.id].reason = _("逾期的执行记录都已处理，无需升级")
            continue
        who[row.id].userids = list(dict.fromkeys(people.get(row.store_id, [])))
        if not who[row.id].userids:
            who[row.id].reason = nobody
    return who


# -- what they receive --------------------------------------------------------------------------------------
def task_link(*, task_id: int) -> str:
    """The card's link: the mobile page opens the member's own assignment of this task (one link serves a whole
    batch of 1,000 members). Built on the public host, as members' phones reach the portal."""
    try:
        path = reverse("mobile:task_open", kwargs={"task_id": task_id})
    except NoReverseMatch:  # pragma: no cover - the mobile page's URL is part of this app
        path = f"/m/tasks/open/{task_id}/"
    return f"{settings.XIAOER_PUBLIC_URL.rstrip('/')}{path}"


def admin_task_link(*, task_id: int) -> str:
    return f"{settings.XIAOER_PUBLIC_URL.rstrip('/')}{reverse('admin:campaigns_task_change', args=[task_id])}"


def _short(text: str) -> str:
    return text if len(text) <= TITLE_MAX else text[:TITLE_MAX - 1] + "…"


def _card(*, task: Task, step: str, title: str, description: str) -> AppMessage:
    """A button_interaction card with 收到; a fresh task_id per call (WeCom refuses a task_id twice)."""
    return app_message_card_buttons(
        title=_short(title), description=description,
        task_id=f"{CARD_PREFIX}{task.pk}-{step}-{secrets.token_hex(6)}",
        buttons=[CardButton(key=CARD_CONFIRM_KEY, text=_("收到"))], url=task_link(task_id=task.pk))


def _message(*, task: Task, kind: str, step: str, to: str = "") -> AppMessage:
    deadline = deadline_text(task)
    if kind == ReminderKind.NOTIFY:
        return _card(task=task, step=step, title=_("新任务：%(title)s") % {"title": task.title},
                     description=_("%(deadline)s 截止，点“收到”确认") % {"deadline": deadline})
    if kind == ReminderKind.REMIND:
        return _card(task=task, step=step, title=_("任务提醒：%(title)s") % {"title": task.title},
                     description=_("将于 %(deadline)s 截止，请尽快完成") % {"deadline": deadline})
    if to == "store_manager":
        return app_message_textcard(title=_short(_("任务逾期：%(title)s") % {"title": task.title}),
                                    description=_("你门店的任务已于 %(deadline)s 截止仍未完成，请督促完成")
                                    % {"deadline": deadline}, url=task_link(task_id=task.pk), btntxt=_("查看"))
    return app_message_textcard(title=_short(_("门店任务逾期：%(title)s") % {"title": task.title}),
                                description=_("你管辖的门店有任务已于 %(deadline)s 截止仍未完成，请跟进")
                                % {"deadline": deadline}, url=admin_task_link(task_id=task.pk), btntxt=_("查看"))


# -- sending ------------------------------------------------------------------------------------------------
@dataclass
class NoticeSummary:
    rows: int = 0
    sent: int = 0  # rows whose recipients WeCom accepted
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    calls: int = 0  # message/send calls made
    members: int = 0  # members WeCom accepted in these calls


@dataclass
class _Outcome:
    got: set[str] = field(default_factory=set)  # accepted now, or by this key before
    deferred: dict[str, datetime] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    invalid: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    calls: int = 0
    accepted: int = 0

    def add(self, result: AppSendResult) -> None:
        self.got |= set(result.sent) | set(result.skipped)
        self.deferred.update(result.deferred)
        self.failed |= set(result.failed)
        self.invalid |= set(result.invalid)
        self.errors += result.errors
        self.calls += len(result.msgids) + len(result.errors)
        self.accepted += len(result.sent)


PURPOSES = {ReminderKind.NOTIFY: "task.notify", ReminderKind.REMIND: "task.remind",
            ReminderKind.ESCALATE: "task.escalate"}


def _send_group(*, task: Task, kind: str, step: str, userids: list[str], to: str) -> _Outcome:
    outcome = _Outcome()
    for start in range(0, len(userids), BATCH_SIZE):
        chunk = userids[start:start + BATCH_SIZE]
        outcome.add(app_message_send(userids=chunk, message=_message(task=task, kind=kind, step=step, to=to),
                                     purpose=PURPOSES[ReminderKind(kind)], key=f"task-{task.pk}:{step}"))
    return outcome


UPDATE_ROWS_SQL = """
UPDATE campaigns_reminderlog r
SET status = u.status, recipients = string_to_array(u.recipients, '|'), detail = u.detail,
    retry_at = u.retry_at, sent_at = CASE WHEN u.status = 'sent' THEN %(now)s ELSE r.sent_at END
FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(recipients)s::text[], %(details)s::text[],
            %(retry)s::timestamptz[]) AS u(id, status, recipients, detail, retry_at)
WHERE r.id = u.id
"""


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def notices_send(*, now: datetime | None = None, task_id: int | None = None) -> NoticeSummary:
    """Send every due row (of one task, or all): see the module docstring. Safe to run concurrently and twice."""
    now = now or timezone.now()
    rows = _claim(now=now, task_id=task_id)
    summary = NoticeSummary(rows=len(rows))
    groups: dict[tuple[int, str], list[_Row]] = defaultdict(list)
    for row in rows:
        groups[(row.task_id, row.step)].append(row)
    attempts = dict(ReminderLog.objects.filter(pk__in=[r.id for r in rows]).values_list("pk", "attempts"))
    tasks = Task.objects.in_bulk({r.task_id for r in rows})
    for (group_task_id, step), members in groups.items():
        task = tasks[group_task_id]
        kind = members[0].kind
        to = escalation_target(task=task, step=step) if kind == ReminderKind.ESCALATE else ""
        if task.status != TaskStatus.DISPATCHED:
            who = {row.id: _Who(reason=_("任务已取消")) for row in members}
        elif kind == ReminderKind.ESCALATE:
            who = _escalation_recipients(task, step, members)
        else:
            who = _assignment_recipients(members)
        userids = list(dict.fromkeys(u for row in members for u in who[row.id].userids))
        outcome = _send_group(task=task, kind=kind, step=step, userids=userids, to=to) if userids else _Outcome()
        summary.calls += outcome.calls
        summary.members += outcome.accepted
        _rows_record(rows=members, who=who, outcome=outcome, attempts=attempts, now=now, summary=summary)
    return summary


def _rows_record(*, rows: list[_Row], who: dict[int, _Who], outcome: _Outcome, attempts: dict[int, int],
                 now: datetime, summary: NoticeSummary) -> None:
    ids, statuses, recipients, details, retry = [], [], [], [], []
    notified: list[int] = []
    error = "；".join(dict.fromkeys(outcome.errors))[:200]
    for row in rows:
        entry = who[row.id]
        mine = entry.userids
        got = [u for u in mine if u in outcome.got]
        deferred = [outcome.deferred[u] for u in mine if u in outcome.deferred]
        failed = [u for u in mine if u in outcome.failed]
        invalid = [u for u in mine if u in outcome.invalid]
        if got and row.kind == ReminderKind.NOTIFY and row.assignment_id:
            notified.append(row.assignment_id)
        detail, when = "", None
        if not mine:
            status, detail = ReminderStatus.SKIPPED, entry.reason
        elif deferred:
            status, when = ReminderStatus.DEFERRED, max(deferred)
            detail = _("接收人本分钟或本小时的消息已达上限，稍后发送")
        elif failed:
            status, when = ReminderStatus.FAILED, now + _backoff(attempts.get(row.id, 1))
            detail = error or _("企业微信发送失败，将重试")
            if attempts.get(row.id, 1) >= MAX_ATTEMPTS:
                detail = _("多次发送失败，已停止重试：%(error)s") % {"error": error}
        elif got:
            status = ReminderStatus.SENT
            if invalid:
                detail = _("企业微信不认识这些账号：%(ids)s") % {"ids": "、".join(invalid)}
        else:
            status, detail = ReminderStatus.SKIPPED, _("企业微信不认识这些账号：%(ids)s") % {"ids": "、".join(invalid)}
        ids.append(row.id)
        statuses.append(str(status))
        recipients.append("|".join(mine))
        details.append(detail[:200])
        retry.append(when)
        counter = {"sent": "sent", "deferred": "deferred", "failed": "failed"}.get(str(status), "skipped")
        setattr(summary, counter, getattr(summary, counter) + 1)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(UPDATE_ROWS_SQL, {"ids": ids, "statuses": statuses, "recipients": recipients,
                                         "details": details, "retry": retry, "now": now})
    if notified:
        from campaigns.tasks.services import assignments_mark_notified

        assignments_mark_notified(assignment_ids=notified)


# -- the entry points (the notifier hook, beat) ---------------------------------------------------------------
def task_notices_notify(*, task_id: int) -> int:
    """The task engine's notifier (after a dispatch, and after a re-dispatch that added assignments): a notice
    row for every pending assignment, then the task's due rows sent. Returns the members WeCom accepted."""
    notices_create(task_id=task_id)
    return notices_send(task_id=task_id).members


@dataclass
class RemindersRun:
    overdue: int
    reminders: int
    escalations: int
    sent: NoticeSummary


def reminders_run(*, now: datetime | None = None) -> RemindersRun:
    """Beat: mark overdue work, create the reminders and escalations that are due, send every due row
    (including notices deferred by WeCom's per-member limits and failed ones waiting for their retry)."""
    from campaigns.tasks.services import assignments_overdue_mark

    now = now or timezone.now()
    overdue = assignments_overdue_mark(now=now)
    reminders = reminders_create(now=now)
    escalations = escalations_create(now=now)
    return RemindersRun(overdue=overdue, reminders=reminders, escalations=escalations, sent=notices_send(now=now))


# -- the card's 收到 --------------------------------------------------------------------------------------
# Translated when the card is updated (card_update), in the worker's language.
CARD_LABELS = {AssignmentStatus.CONFIRMED: gettext_noop("已确认"), AssignmentStatus.DONE: gettext_noop("已完成"),
               AssignmentStatus.EXCUSED: gettext_noop("已免除"), AssignmentStatus.WITHDRAWN: gettext_noop("任务已取消")}

CONFIRM_SQL = """
WITH old AS (
    SELECT id, status FROM campaigns_assignment
    WHERE id = %(id)s AND status = ANY(%(from)s) FOR UPDATE
), changed AS (
    UPDATE campaigns_assignment a SET status = 'confirmed', updated_at = %(now)s, confirmed_at = %(now)s
    FROM old WHERE a.id = old.id RETURNING a.id, old.status AS from_status
)
INSERT INTO campaigns_assignmentevent (assignment_id, from_status, to_status, by_id, at, reason, source)
SELECT id, from_status, 'confirmed', NULL, %(now)s, '', 'card' FROM changed
"""
CONFIRMABLE = (AssignmentStatus.PENDING, AssignmentStatus.NOTIFIED, AssignmentStatus.REOPENED,
               AssignmentStatus.OVERDUE)


def _card_assignment(*, task_id: int, staff: Staff) -> Assignment | None:
    """The clicking member's assignment of the task: their own, or (a store manager) their store's."""
    own = Assignment.objects.filter(task_id=task_id, staff_id=staff.pk).first()
    if own is not None or staff.position != Staff.Position.STORE_MANAGER or staff.store_id is None:
        return own
    return Assignment.objects.filter(task_id=task_id, staff__isnull=True, store_id=staff.store_id).first()


def card_clicked(click: CardClick) -> str:
    """A member tapped 收到 on a task card: their assignment is confirmed (once: a duplicate or late click
    changes nothing; a cancelled task or done work stays as it is) and their card greyed out after commit.
    Returns the assignment's state afterwards ("" when the click names nothing of ours)."""
    from campaigns.tasks.services import AssignmentRefused, assignment_confirm
    from campaigns.tasks.tasks_notify import card_update_task
    from stores.access.services import user_for_wecom_member

    matched = CARD_TASK_ID.match(click.task_id)
    if matched is None or click.key != CARD_CONFIRM_KEY:
        logger.info("task card click ignored: task_id=%s key=%s", click.task_id, click.key)
        return ""
    task_id = int(matched.group(1))
    staff = Staff.objects.active().filter(userid=click.userid).first()
    assignment = _card_assignment(task_id=task_id, staff=staff) if staff is not None else None
    if assignment is None:
        logger.info("task card click by %s for task %s: no assignment of theirs", click.userid, task_id)
        return ""
    user = user_for_wecom_member(userid=click.userid)
    status = assignment.status
    if status in CONFIRMABLE:
        if user is not None:
            try:
                status = assignment_confirm(assignment=assignment, by=user, source=EventSource.CARD).status
            except AssignmentRefused as exc:
                logger.info("task card click by %s refused: %s", click.userid, exc)
        else:  # a member without a login: WeCom's signed callback vouches for them, the event has no user
            with connection.cursor() as cursor:
                cursor.execute(CONFIRM_SQL, {"id": assignment.pk, "from": list(CONFIRMABLE),
                                             "now": timezone.now()})
            status = Assignment.objects.filter(pk=assignment.pk).values_list("status", flat=True).get()
    label = CARD_LABELS.get(AssignmentStatus(status), "")
    if label and click.response_code:
        enqueue_after_commit(card_update_task, response_code=click.response_code, userid=click.userid,
                             label=label)
    return str(status)


def card_update(*, response_code: str, userid: str, label: str) -> bool:
    """Grey out one member's card with ``label`` (a CARD_LABELS value, translated here). A response_code works
    once within 24 h: a second or late update is logged and is not an error. Returns whether it was updated."""
    from portal.wecom.app_messages import CardUpdateRefused, template_card_update

    try:
        template_card_update(response_code=response_code, userids=[userid], replace_name=_(label))
    except CardUpdateRefused:
        logger.info("task card of %s not updated: its response_code was used or is older than 24 h", userid)
        return False
    return True


# -- nudges (催一下 from the mobile page) ---------------------------------------------------------------------
def assignment_nudge_queue(*, assignment_id: int, by_id: int | None) -> bool:
    """The engine's nudger: the message goes out after the nudge's transaction commits (never inside it: a
    rollback would forget who was sent). True: queued for a member WeCom knows."""
    from campaigns.tasks.tasks_notify import nudge_send_task

    has_member = Assignment.objects.filter(pk=assignment_id, staff__isnull=False, staff__status="active",
                                           task__status="dispatched").exclude(staff__userid="").exists()
    if has_member:
        enqueue_after_commit(nudge_send_task, assignment_id=assignment_id, at=int(timezone.now().timestamp()))
    return has_member


def assignment_nudge_send(*, assignment_id: int, at: int) -> bool:
    """One 催办 card to the assignment's member; the key (assignment and nudge time) sends it once however often
    the job runs. Returns whether WeCom accepted it (deferred members are not retried: a nudge is of the moment)."""
    assignment = (Assignment.objects.select_related("task", "staff").filter(pk=assignment_id).first())
    if assignment is None or assignment.staff is None or not assignment.staff.userid:
        return False
    task = assignment.task
    message = _card(task=task, step=f"nudge{at}", title=_("店长催办：%(title)s") % {"title": task.title},
                    description=_("%(deadline)s 截止，请尽快完成") % {"deadline": deadline_text(task)})
    result = app_message_send(userids=[assignment.staff.userid], message=message, purpose="task.nudge",
                              key=f"task-nudge-{assignment_id}-{at}")
    return assignment.staff.userid in result.sent
