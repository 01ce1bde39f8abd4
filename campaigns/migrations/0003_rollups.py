"""Rollups: the counts per task and store (TaskStoreCount), kept by statement-level triggers on campaigns_assignment
in the same transaction as every change (a 13,000-row dispatch adds one grouped upsert), and recomputed for a task
whose deadline moves (on time depends on it). The contribution of an assignment is the same as the live rollup's
(campaigns/tasks/rollups.py ``COUNT_SQL``); ``task_rollups_reconcile`` rebuilds the table from the assignments."""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = ("dispatched", "notified", "confirmed", "done", "on_time", "open", "excused", "rejected")


def _contribution(source: str, sign: str) -> str:
    return f"""SELECT r.task_id, r.store_id,
        {sign} * (r.status <> 'withdrawn')::int AS dispatched,
        {sign} * (r.status <> 'withdrawn' AND (r.notified_at IS NOT NULL OR r.confirmed_at IS NOT NULL
                                             OR r.done_at IS NOT NULL))::int AS notified,
        {sign} * (r.status <> 'withdrawn' AND (r.confirmed_at IS NOT NULL OR r.done_at IS NOT NULL))::int AS confirmed,
        {sign} * (r.status = 'done')::int AS done,
        {sign} * COALESCE(r.status = 'done' AND r.done_at <= t.deadline, false)::int AS on_time,
        {sign} * (r.status IN ('pending', 'notified', 'confirmed', 'reopened', 'overdue'))::int AS open,
        {sign} * (r.status = 'excused')::int AS excused,
        {sign} * (r.status = 'rejected')::int AS rejected
    FROM {source} r JOIN campaigns_task t ON t.id = r.task_id"""


def _apply(parts: list[str]) -> str:
    sums = ", ".join(f"sum({c})" for c in COLUMNS)
    changed = " OR ".join(f"sum({c}) <> 0" for c in COLUMNS)
    updates = ", ".join(f"{c} = c.{c} + EXCLUDED.{c}" for c in COLUMNS)
    return f"""INSERT INTO campaigns_taskstorecount AS c (task_id, store_id, {", ".join(COLUMNS)})
    SELECT task_id, store_id, {sums} FROM ({" UNION ALL ".join(parts)}) d
    GROUP BY task_id, store_id HAVING {changed} ORDER BY task_id, store_id
    ON CONFLICT (task_id, store_id) DO UPDATE SET {updates};"""


def _function(name: str, body: str) -> str:
    return f"""CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {body}
    RETURN NULL;
END $$;"""


FORWARD = "\n".join([
    _function("campaigns_rollup_insert", _apply([_contribution("new_rows", "1")])),
    _function("campaigns_rollup_update", _apply([_contribution("new_rows", "1"), _contribution("old_rows", "-1")])),
    _function("campaigns_rollup_delete", _apply([_contribution("old_rows", "-1")])),
    _function("campaigns_rollup_deadline", """UPDATE campaigns_taskstorecount c SET on_time = x.on_time
    FROM (SELECT store_id, count(*) FILTER (WHERE status = 'done' AND done_at <= NEW.deadline) AS on_time
          FROM campaigns_assignment WHERE task_id = NEW.id GROUP BY store_id) x
    WHERE c.task_id = NEW.id AND c.store_id = x.store_id AND c.on_time <> x.on_time;"""),
    """CREATE TRIGGER campaigns_rollup_insert AFTER INSERT ON campaigns_assignment
        REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_rollup_insert();""",
    """CREATE TRIGGER campaigns_rollup_update AFTER UPDATE ON campaigns_assignment
        REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows FOR EACH STATEMENT
        EXECUTE FUNCTION campaigns_rollup_update();""",
    """CREATE TRIGGER campaigns_rollup_delete AFTER DELETE ON campaigns_assignment
        REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION campaigns_rollup_delete();""",
    """CREATE TRIGGER campaigns_rollup_deadline AFTER UPDATE OF deadline ON campaigns_task FOR EACH ROW
        WHEN (OLD.deadline IS DISTINCT FROM NEW.deadline) EXECUTE FUNCTION campaigns_rollup_deadline();""",
])

BACKWARD = """
DROP TRIGGER IF EXISTS campaigns_rollup_insert ON campaigns_assignment;
DROP TRIGGER IF EXISTS campaigns_rollup_update ON campaigns_assignment;
DROP TRIGGER IF EXISTS campaigns_rollup_delete ON campaigns_assignment;
DROP TRIGGER IF EXISTS campaigns_rollup_deadline ON campaigns_task;
DROP FUNCTION IF EXISTS campaigns_rollup_insert(), campaigns_rollup_update(), campaigns_rollup_delete(),
    campaigns_rollup_deadline();
"""

# Existing assignments (a database migrated with tasks already dispatched) are counted once, here.
BACKFILL = _apply([_contribution("campaigns_assignment", "1")])


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0002_notify'),
        ('stores', '0004_store_opening_hours_notice'),
    ]

    operations = [
        migrations.CreateModel(
            name='TaskStoreCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('dispatched', models.IntegerField(default=0)),
                ('notified', models.IntegerField(default=0)),
                ('confirmed', models.IntegerField(default=0)),
                ('done', models.IntegerField(default=0)),
                ('on_time', models.IntegerField(default=0)),
                ('open', models.IntegerField(default=0)),
                ('excused', models.IntegerField(default=0)),
                ('rejected', models.IntegerField(default=0)),
                ('store', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='stores.store')),
                ('task', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='campaigns.task')),
            ],
            options={
                'verbose_name': '门店任务统计',
                'verbose_name_plural': '门店任务统计',
                'indexes': [models.Index(fields=['store', 'task'], name='task_store_count_store')],
                'constraints': [models.UniqueConstraint(fields=('task', 'store'), name='task_store_count_unique')],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunSQL(BACKFILL, migrations.RunSQL.noop),
    ]
