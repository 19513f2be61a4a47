"""The GraphQL endpoint answers malformed or unusual HTTP requests without a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import auth, gql, token


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ('"name": "\\ud800"', {"field": ["input", "name"], "code": "INVALID"}),
        (
            '"name": "n", "idempotencyKey": "\\ud800"',
            {"field": ["input", "idempotencyKey"], "code": "INVALID_IDEMPOTENCY_KEY"},
        ),
    ],
    ids=["name", "idempotencyKey"],
)
async def test_lone_surrogate_over_graphql_is_a_user_error(
    client: httpx.AsyncClient, fields: str, expected: dict[str, Any]
) -> None:
    # Sent as raw JSON text: a JSON encoder would refuse to write the lone surrogate.
    raw = (
        '{"query": "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) '
        '{ userErrors { field code } } }", "variables": {"i": {' + fields + ', "message": "hi"}}}'
    )
    response = await client.post(
        "/graphql",
        content=raw.encode(),
        headers={**auth(token()), "Content-Type": "application/json"},
    )
    assert response.json()["data"]["createCampaign"]["userErrors"] == [expected]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"query": "{ me { userId } }", "variables": {"n": 1' + b"1" * 5000 + b"}}",
        b'{"query": "\xff\xfe"}',
        b"null",
        b"7",
    ],
)
async def test_graphql_transport_garbage_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        "/graphql", content=raw, headers={**auth(token()), "Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_graphql_null_variables_body_is_not_a_500(client: httpx.AsyncClient) -> None:
    body_ = await gql(client, "{ me { userId } }", None, auth(token()))
    assert body_["data"]["me"]["userId"]


async def test_graphql_deeply_nested_json_is_400(client: httpx.AsyncClient) -> None:
    raw = b'{"query": "{ me { userId } }", "variables": {"a": ' + b"[" * 100_000 + b"]" * 100_000
    response = await client.post(
        "/graphql",
        content=raw + b"}}",
        headers={**auth(token()), "Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_graphql_get_with_null_variables_still_works(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": "{ me { userId } }", "variables": "null"},
        headers=auth(token()),
    )
    assert response.status_code == 200
    assert response.json()["data"]["me"]["userId"]
