"""Relationship.remark_mobile_hashes: the remark mobiles hashed like Member.mobile_hash, GIN-indexed.

Built for 12 M relationships without blocking the sync for long: the column is added with a constant
default (metadata only), filled one id range per transaction (only rows with remark mobiles are
written), then indexed CONCURRENTLY. Hence a non-atomic migration; rerunning the fill is harmless.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


def backfill(apps, schema_editor):
    # The service's SQL (one copy of the SQL normaliser, next to the Python one). If that function ever
    # changes incompatibly, freeze a copy of today's here.
    from customers.members.services import relationship_mobile_hashes_backfill

    relationship_mobile_hashes_backfill()


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('customers', '0003_member_indexes_without_like_twins'),
        ('stores', '0002_staff_inheritance_pending_staff_wecom_synced_at_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='relationship',
            name='remark_mobile_hashes',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), blank=True, db_default=models.Value([], output_field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), size=None)), default=list, editable=False, size=None, verbose_name='备注手机号哈希'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
        AddIndexConcurrently(
            model_name='relationship',
            index=django.contrib.postgres.indexes.GinIndex(condition=models.Q(('remark_mobile_hashes', []), _negated=True), fields=['remark_mobile_hashes'], name='relationship_mobile_hashes'),
        ),
    ]
