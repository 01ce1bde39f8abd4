"""The baseline server: plain Django (no fast lane) with bench.baseline_settings' naive views."""

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "bench.baseline_settings"
application = get_wsgi_application()
