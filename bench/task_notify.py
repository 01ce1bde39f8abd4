"""Notify every executing member of a task over WeCom: the batched notifier vs one call per member, same run.

    python -m bench task_notify --scale 4000     # 4,000 stores / 13,000 staff (--small: 200 stores)

The organisation is built by stores.demo.org_build and its members loaded into the sandbox's address book; a
task executed by each staff member is dispatched to every store. Measured: ``task_notices_notify`` (one notice
row per assignment by one INSERT … SELECT, recipients resolved by one query, app_message_send in calls of 1,000
members with the 收到 card, receipts and budgets per batch, assignments marked notified by one statement), then
the same call again (nobody notified twice: no call). Checked: calls = ⌈members / 1,000⌉, every member got the
card once, WeCom dropped nothing (the sandbox enforces 30 a minute / 1,000 an hour per member). Baseline: the
naive notifier, one app_message_send (one message/send call) and one assignment update per member, timed on a
sample and extrapolated to all of them.
"""

from __future__ import annotations

import math

from bench.harness import result_line, tables_truncate, timed
from bench.org import ORG_TABLES, _size
from bench.task_dispatch import TASK_TABLES, _task

NOTIFY_TABLES = ("campaigns_reminderlog", "wecom_appmessagereceipt")
BASELINE_SAMPLE = 200


def _sandbox():
    from django.conf import settings

    from wecom_sandbox.control import SandboxControl

    return SandboxControl(settings.XIAOER_SANDBOX_URL)


def _per_member(*, task, assignments) -> int:
    """The naive notifier: for each assignment, one card to its member and one update."""
    from django.utils import timezone

    from campaigns.tasks.models import Assignment
    from portal.wecom.app_messages import CardButton, app_message_card_buttons, app_message_send

    calls = 0
    for assignment in assignments:
        card = app_message_card_buttons(title=f"新任务：{task.title}", description="请按时完成",
                                        task_id=f"naive-{assignment.pk}",
                                        buttons=[CardButton(key="confirm", text="收到")], url="tasks/")
        result = app_message_send(userids=[assignment.staff.userid], message=card, purpose="bench.naive",
                                  key=f"naive-{assignment.pk}")
        calls += len(result.msgids)
        if result.sent:
            Assignment.objects.filter(pk=assignment.pk).update(status="notified", notified_at=timezone.now())
    return calls


def bench_task_notify(*, scale: int) -> str:
    from django.db import connection

    from campaigns.tasks.models import Assignment, ReminderLog
    from campaigns.tasks.notify import notices_create, notices_send
    from campaigns.tasks.services import task_dispatch
    from portal.models import User
    from portal.wecom.gateway import _redis
    from stores.access.services import role_groups_sync
    from stores.demo import org_build
    from stores.models import Staff

    role_groups_sync()
    tables_truncate(*NOTIFY_TABLES, *TASK_TABLES, *ORG_TABLES)
    for key in _redis().scan_iter("xiaoer:wecom:appmsg:*"):
        _redis().delete(key)
    org_build(size=_size(scale))
    hq = User.objects.create_superuser("bench_hq", "", "x")
    sandbox = _sandbox()
    sandbox.reset()
    members = list(Staff.objects.active().filter(store__isnull=False).values_list("userid", "name"))
    for start in range(0, len(members), 5000):
        sandbox.do("addressbook/load", members=[{"userid": u, "name": n, "department": [1]}
                                                for u, n in members[start:start + 5000]])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    task = _task(hq=hq, title="陈列任务")
    task_dispatch(task=task, by=hq)
    staff = Assignment.objects.filter(task=task).count()
    with timed() as batched:
        notices_create(task_id=task.pk)
        summary = notices_send(task_id=task.pk)
    with timed() as again:
        notices_create(task_id=task.pk)
        repeat = notices_send(task_id=task.pk)
    assert summary.calls == math.ceil(staff / 1000), summary
    assert summary.members == staff and repeat.calls == 0, (summary, repeat)
    assert not ReminderLog.objects.filter(task=task).exclude(status="sent").exists()
    assert Assignment.objects.filter(task=task, status="notified").count() == staff
    listed = sandbox.get("app_messages")
    delivered = sorted(u for m in listed["app_messages"] for u in m["touser"])
    assert len(delivered) == len(set(delivered)) == staff and not listed["dropped"], "a member got it twice or lost"

    naive = _task(hq=hq, title="逐人通知")
    task_dispatch(task=naive, by=hq)
    sample = list(Assignment.objects.filter(task=naive).select_related("staff").order_by("pk")[:BASELINE_SAMPLE])
    with timed() as per_member:
        naive_calls = _per_member(task=naive, assignments=sample)
    per_member_total = per_member.seconds * staff / len(sample)
    print(f"stores={task.store_tasks.count()} staff={staff} batched={batched.seconds:.3f}s calls={summary.calls} "
          f"(≤1,000 members each) again={again.seconds:.3f}s calls_again={repeat.calls} dropped_by_wecom=0 "
          f"per_member={per_member.seconds:.2f}s for {len(sample)} members ({naive_calls} calls), extrapolated "
          f"to {staff}: {per_member_total:.1f}s and {staff} calls")
    return result_line(bench="task_notify", value=batched.seconds, unit="s", baseline=per_member_total)
