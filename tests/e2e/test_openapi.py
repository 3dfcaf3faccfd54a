"""The OpenAPI document at /openapi.json, checked against the running server by schemathesis:
generated requests (valid and invalid) must never get a server error, and every answer to a valid
request must match the documented status codes, content types, headers and schemas."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error

from tests.support.server import ServerProcess

pytestmark = pytest.mark.e2e


EXAMPLES = 15


def test_api_conforms_and_never_errors(server: ServerProcess) -> None:
    api = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    calls = 0

    def run(operation: Any, mode: schemathesis.GenerationMode) -> None:
        @given(case=operation.as_strategy(mode))
        @settings(
            max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            if mode == schemathesis.GenerationMode.POSITIVE:
                case.call_and_validate()  # every check: status, content type, headers, schema, no 5xx
            else:
                # Invalid input: any clear refusal will do (the schema's name pattern is a safe subset
                # of what the server accepts), but never a server error.
                case.call_and_validate(checks=[not_a_server_error])

        try:
            check()
        except Unsatisfiable:
            assert mode == schemathesis.GenerationMode.NEGATIVE  # nothing to make invalid (no input)

    for operation in operations:
        run(operation, schemathesis.GenerationMode.POSITIVE)
        run(operation, schemathesis.GenerationMode.NEGATIVE)
    print(
        f"schemathesis: {len(operations)} operations, {calls} requests (valid and invalid), 0 server errors"
    )


def test_the_document_is_served(server: ServerProcess) -> None:
    doc = httpx.get(f"{server.base_url}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/login" in doc["paths"]
