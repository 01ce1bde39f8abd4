"""Schema-driven fuzzing of the REST API: every operation of our own OpenAPI schema, with each persona's token.

Schemathesis generates requests from the schema drf-spectacular builds (valid ones and, in a modest negative
phase, invalid ones) and sends them in-process to the real Django stack (middleware, DRF, the real
PostgreSQL of the test run, the ``org`` fixture's rows). Each request runs in a savepoint that is rolled
back afterwards, so no example sees what another one wrote and a run is the same every time
(``derandomize``). A response must:

- never be a server error (``not_a_server_error``);
- use a documented status code and content type, and match its documented schema (the refusals every
  operation can answer are declared once, by ``portal.api_errors.error_responses_declare``);
- refuse invalid input (negative data) with 400, or 401/403/404/415 where the refusal comes first;
- need the token (``ignored_auth``: once an operation, the same request without it and with a bad one).

Throttles are lifted (429 is declared, not exercised). ``XIAOER_FUZZ_EXAMPLES`` (default 10 per operation)
and ``XIAOER_FUZZ_COVERAGE=1`` (schemathesis' coverage phase) make a deeper local run.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.db import transaction
from django.urls import resolve
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi import checks as openapi_checks

from stores.access.services import api_token_issue
from tests.api.conftest import openapi_schema_load
from tests.conftest import PERSONAS

MAX_EXAMPLES = int(os.environ.get("XIAOER_FUZZ_EXAMPLES", "10"))
# The coverage phase (every boundary and every kind of invalid value, about 1,300 requests a persona) is for
# a deeper local run: XIAOER_FUZZ_COVERAGE=1.
COVERAGE = os.environ.get("XIAOER_FUZZ_COVERAGE") == "1"
# Invalid input is refused with 400; a refusal that comes before validation (token, role, scope, an unknown
# id, a media type the API does not read) answers its own code. Never 2xx, never 5xx.
REFUSALS = ["400", "401", "403", "404", "415"]

FUZZ_CONFIG = SchemathesisConfig.from_dict({
    "generation": {"mode": "all", "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": False}, "coverage": {"enabled": COVERAGE}},
    "checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}},
})
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.negative_data_rejection,
    openapi_checks.ignored_auth,  # once an operation: the same request without a token, and with a bad one
]


@pytest.fixture(params=PERSONAS)
def persona_key(request, org) -> str:
    user = request.getfixturevalue(request.param)
    return api_token_issue(name=f"fuzz {request.param}", user=user).key


def _known_ids(operation) -> list[int]:
    view = resolve(operation.path.replace("{id}", "0")).func
    model = view.cls.queryset.model
    return list(model._base_manager.order_by("pk").values_list("pk", flat=True))


@pytest.fixture
def api_schema(wsgi_app, persona_key):
    """Our schema against the in-process app; it asks for ``persona_key`` so the whole schema runs once a persona."""
    schema = openapi_schema_load(app=wsgi_app, config=FUZZ_CONFIG)

    @schema.hook
    def map_path_parameters(context, path_parameters):
        # Random ids are almost never rows: four in five generated ids become a real row's id (in the
        # persona's scope or not), chosen by the generated value, so a run stays reproducible.
        value = (path_parameters or {}).get("id")
        if isinstance(value, int) and not isinstance(value, bool) and value % 5:
            ids = _known_ids(context.operation)
            if ids:
                path_parameters["id"] = ids[value % len(ids)]
        return path_parameters

    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_api_operation_answers_within_its_schema_for_each_persona(case, persona_key):
    with transaction.atomic():  # each example's writes are rolled back: examples never see each other's rows
        case.call_and_validate(headers={"Authorization": f"Bearer {persona_key}"}, checks=CHECKS)
        transaction.set_rollback(True)

