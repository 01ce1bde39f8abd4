"""The one Celery app. Tasks are written with ``portal.tasks.xiaoer_task``."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("xiaoer")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.import_modules.connect(sender=app)
def _refuse_unsafe_settings(**kwargs) -> None:
    """A worker or beat starting (after Celery's Django fixup set Django up) refuses public defaults.

    Celery re-raises an exception from an import_modules receiver, so the process stops.
    """
    import django

    django.setup()
    from portal.checks import production_refuse

    production_refuse()
