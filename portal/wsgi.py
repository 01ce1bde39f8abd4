import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

from portal.checks import production_refuse  # noqa: E402  (needs Django set up)

production_refuse()  # a WSGI server runs no system checks: refuse public defaults here

from portal.wecom.fastlane import callback_fast_lane  # noqa: E402  (needs Django set up)

application = callback_fast_lane(application)
