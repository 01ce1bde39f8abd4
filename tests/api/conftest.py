"""The API as an OpenAPI client sees it: our own schema, and the real Django stack in this process."""

from __future__ import annotations

import pytest
import schemathesis
from django.conf import settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

UNTHROTTLED = {**settings.REST_FRAMEWORK,
               "DEFAULT_THROTTLE_RATES": {scope: "1000000/min"
                                          for scope in settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})}}


@pytest.fixture
def wsgi_app(db):
    """The real Django WSGI stack, in this process, on the test's database connection, throttles lifted.

    As in Django's own test client, a request must not close the connection that holds the test's
    transaction (``close_old_connections`` would: autocommit is off inside it). 429 is declared in the
    schema, but being throttled is not what these tests are about.
    """
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        with override_settings(REST_FRAMEWORK=UNTHROTTLED):
            yield WSGIHandler()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


def openapi_schema_load(*, app, config=None):
    """Our OpenAPI schema straight from drf-spectacular's generator (serving /api/schema/ needs a login)."""
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw, config=config)
    schema.app = app
    return schema
