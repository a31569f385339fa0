"""Schemathesis against the live api's OpenAPI schema: no 5xx and no response that breaks
the schema, whatever a client sends (bounded: a few examples per operation in the suite;
``SCHEMA_EXAMPLES=500`` runs a deeper search by hand)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from postgate.http.auth import create_key
from postgate.settings import Settings
from tests.support import World, serve_api

EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "15"))
CHECKS = [
    schemathesis.checks.not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
]


@pytest.fixture
def live(world: World, settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    world.contact("anna")
    key = create_key(world.ctx.engine, "tenant", "crm", world.tenant.slug)
    for base in serve_api(settings):
        yield base, {"Authorization": f"Bearer {key}"}


def test_api_never_errors(live: tuple[str, dict[str, str]]) -> None:
    base, auth = live
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def call(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=base, headers=auth, checks=CHECKS)

        call()
        tried.append(operation.label)
    assert len(tried) >= 10, tried
