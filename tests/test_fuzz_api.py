"""Property-based fuzzing of both APIs from outside: no input answers 5xx.

Schemathesis generates requests from the app's OpenAPI document (every REST route) and from
the GraphQL schema (every root field), valid and invalid alike, and sends them over a real
socket to the real app with a real token. A short deterministic run is part of `make test`;
`make fuzz` runs
longer, with the coverage phase.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from graphql import get_introspection_query
from hypothesis import HealthCheck, settings
from schemathesis import checks

from main import create_app
from resolvers.root import schema as graphql_schema
from tests.conftest import make_settings
from tests.factories import auth, token
from tests.servers import serve_in_thread

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
THOROUGH = os.environ.get("FUZZ_COVERAGE") == "1"
"""Schemathesis' coverage phase (every boundary value the schema defines) for the long run."""
CONFIG = schemathesis.Config.from_dict(
    {"phases": {"coverage": {"enabled": THOROUGH}, "stateful": {"enabled": False}}}
)
RUN = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _openapi() -> dict[str, Any]:
    return create_app(make_settings("mongodb://127.0.0.1:9")).openapi()


def _introspection() -> dict[str, Any]:
    result = graphql_schema.execute_sync(get_introspection_query())
    assert result.errors is None and result.data is not None
    return result.data


rest = schemathesis.openapi.from_dict(_openapi(), config=CONFIG)
graphql = schemathesis.graphql.from_dict(_introspection(), config=CONFIG)


@pytest.fixture(scope="module")
def base_url(mongo_uri: str) -> Iterator[str]:
    with serve_in_thread(make_settings(mongo_uri)) as url:
        yield url


@rest.parametrize()
@RUN
def test_rest_never_answers_5xx(case: schemathesis.Case[Any], base_url: str) -> None:
    """Every answer is documented, and every refusal under `/api` is the legacy envelope."""
    response = case.call_and_validate(
        base_url=base_url,
        headers=auth(token()),
        checks=[checks.not_a_server_error, checks.status_code_conformance],
    )
    if response.status_code >= 400 and case.path.startswith("/api/"):
        body = response.json()
        assert body["success"] is False and isinstance(body["message"], str), body


@graphql.parametrize()
@RUN
def test_graphql_never_answers_5xx(case: schemathesis.Case[Any], base_url: str) -> None:
    """Refusals are expected (a forbidden or missing item, bad input); each names its code,
    and none is an internal error."""
    response = case.call(base_url=f"{base_url}/graphql", headers=auth(token()))
    assert response.status_code < 500, response.text
    body = response.json()
    assert "data" in body or "errors" in body, body
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code and code != "INTERNAL_SERVER_ERROR", error
