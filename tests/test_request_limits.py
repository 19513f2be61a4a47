"""Each organization's request budget: spent, its requests get 429 with the retry hint and
the IETF draft's headers in both APIs, and other organizations are not affected."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import ValidationError

from core.config import Settings
from tests.support import Org, client_with, gql


@pytest.fixture
async def limited(mongo_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_with(mongo_uri, api_rate_limit="3/minute") as client:
        yield client


async def test_an_organization_over_its_budget_gets_429_in_both_apis(
    limited: httpx.AsyncClient,
) -> None:
    flooding, other = Org(limited), Org(limited)

    answers = [await limited.get("/api/contacts", headers=flooding.headers) for _ in range(4)]
    graphql = await limited.post(
        "/graphql", json={"query": "{ contacts { totalCount } }"}, headers=flooding.headers
    )
    unaffected = await gql(limited, "{ contacts { totalCount } }", None, other.headers)

    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit"].split(", ")[1] for a in answers[:3]] == [
        "remaining=2",
        "remaining=1",
        "remaining=0",
    ]
    refused = answers[3]
    assert refused.headers["RateLimit-Policy"] == "3;w=60"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["success"] is False
    assert refused.json()["errors"][0]["code"] == "RATE_LIMITED"
    assert graphql.status_code == 429
    [error] = graphql.json()["errors"]
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] == int(graphql.headers["Retry-After"])
    assert unaffected["data"]["contacts"]["totalCount"] == 0


async def test_requests_without_a_valid_token_are_refused_by_auth_not_counted(
    limited: httpx.AsyncClient,
) -> None:
    answers = [await limited.get("/api/contacts") for _ in range(5)]

    assert {a.status_code for a in answers} == {401}
    assert "RateLimit" not in answers[0].headers


def test_limits_are_on_by_default_except_in_tests() -> None:
    assert Settings(environment="development").request_limit == "600/minute"
    assert Settings(environment="test").request_limit is None
    assert Settings(environment="test", api_rate_limit="10/second").request_limit == "10/second"
    assert Settings(environment="development", api_rate_limit="").request_limit is None
    with pytest.raises(ValidationError):
        Settings(api_rate_limit="lots")
