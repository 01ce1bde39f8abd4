"""Bulk-tagging jobs used to keep ``base64(pickle(queryset.query))`` in ``SyncRun.progress["_query"]``.

They now store the selection as JSON (ticked ids or the customer list's filters) and the acting user's id.
A job saved the old way is never unpickled again (that would run whatever the column holds): its payload is
removed, and one still running is marked failed with the reason, to be started again from the customer list.
"""

from django.db import migrations

TAGGING_KIND = "customers.tagging"
REASON = "此任务由旧版本保存（含查询对象），出于安全原因不再执行；请在客户列表重新筛选后打标签"


def drop_pickled_queries(apps, schema_editor):
    SyncRun = apps.get_model("wecom", "SyncRun")
    from django.utils import timezone

    for run in SyncRun.objects.filter(kind=TAGGING_KIND, progress__has_key="_query").iterator():
        run.progress.pop("_query", None)
        fields = ["progress"]
        if run.status == "running":
            run.status, run.error, run.finished_at = "failed", REASON, timezone.now()
            fields += ["status", "error", "finished_at"]
        run.save(update_fields=fields)


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0006_member_mobile_hash_hash_index"),
        ("wecom", "0001_initial"),
    ]

    operations = [migrations.RunPython(drop_pickled_queries, migrations.RunPython.noop)]
