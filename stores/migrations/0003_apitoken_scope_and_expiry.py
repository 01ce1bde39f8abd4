# Tokens get a mode (read-only / read-write), the API resources they may reach and an expiry.
# Existing tokens keep read-write on every resource (what they had) and expire 365 days after their creation.

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('stores', '0002_staff_inheritance_pending_staff_wecom_synced_at_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(null=True, verbose_name='到期时间'),
        ),
        migrations.RunSQL(
            "UPDATE stores_apitoken SET expires_at = created_at + interval '365 days' WHERE expires_at IS NULL",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name='apitoken',
            name='expires_at',
            field=models.DateTimeField(verbose_name='到期时间'),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='mode',
            field=models.CharField(choices=[('read_only', '只读'), ('read_write', '读写')], default='read_write', max_length=16, verbose_name='读写权限'),
        ),
        migrations.AddField(
            model_name='apitoken',
            name='resources',
            field=django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=64), blank=True, default=list, help_text='留空表示全部接口', size=None, verbose_name='可访问的接口'),
        ),
    ]
