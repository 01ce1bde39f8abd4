"""The one Celery app. Tasks are written with ``portal.tasks.xiaoer_task``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("xiaoer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
