"""Member.mobile_hash: a hash index instead of a btree (equality is the only use; 4-byte codes instead of
65-byte keys keep it cached while a member file inserts at random places in it — bench/members.py).

Built CONCURRENTLY before the btree is dropped CONCURRENTLY, so neither the imports nor the API nor the
unification lookups are blocked at 70 M members; hence a non-atomic migration.
"""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('customers', '0005_customer_segment_cover'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='member',
            index=django.contrib.postgres.indexes.HashIndex(
                condition=models.Q(('mobile_hash', ''), _negated=True), fields=['mobile_hash'],
                name='member_mobile_hash_hash'),
        ),
        RemoveIndexConcurrently(
            model_name='member',
            name='member_mobile_hash',
        ),
    ]
