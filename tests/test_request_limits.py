"""Each organization's request budget: spent, its requests get 429 with the retry hint and
the IETF draft's headers in both APIs, and other organizations are not affected.

On the real clock these budgets are per hour: the sliding window lets a per-minute budget's
request through just after a minute ends (the last window's weight rounds down, as the
`limits` library's counter does), which a test crossing that boundary took for a failure.
`test_request_limits_shared.py` tests the windows themselves on a test clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from bson import ObjectId
from pydantic import ValidationError

from core.config import Settings
from core.requests import RefusalLines
from main import create_app
from resolvers.limits import RefusalPause
from services.organizations.request_limits import Verdict
from tests.support import (
    Org,
    auth,
    client_with,
    gql,
    make_settings,
    release_database,
    token,
)


@pytest.fixture
async def limited(mongo_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_with(mongo_uri, api_rate_limit="3/hour") as client:
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
    assert refused.headers["RateLimit-Policy"] == "3;w=3600"
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
    assert Settings(environment="development").user_request_limit == "300/minute"
    assert Settings(environment="test").user_request_limit is None
    with pytest.raises(ValidationError):
        Settings(api_user_rate_limit="often")


async def test_one_user_cannot_spend_the_organizations_budget(mongo_uri: str) -> None:
    async with client_with(
        mongo_uri, api_rate_limit="10/hour", api_user_rate_limit="3/hour"
    ) as client:
        org = Org(client)
        script = [await client.get("/api/contacts", headers=org.headers) for _ in range(4)]
        colleague = auth(token(org=org.id, user=ObjectId()))
        theirs = await client.get("/api/contacts", headers=colleague)
    assert [a.status_code for a in script] == [200, 200, 200, 429]
    assert script[3].headers["RateLimit-Policy"] == "3;w=3600"  # the user's budget refused it
    assert theirs.status_code == 200
    # The organization's budget was charged for the three allowed, not for the refused one.
    assert theirs.headers["RateLimit"].split(", ")[1] in ("remaining=2", "remaining=6")


async def test_writes_cost_more_than_reads_in_both_apis(mongo_uri: str) -> None:
    async with client_with(mongo_uri, api_rate_limit="12/hour", api_write_cost=5) as client:
        org = Org(client)
        read = await client.post(
            "/graphql", json={"query": "{ contacts { totalCount } }"}, headers=org.headers
        )
        mutation = (
            'mutation { createContact(input: {phoneNumber: "+14155550123"}) '
            "{ userErrors { code } } }"
        )
        wrote = await client.post("/graphql", json={"query": mutation}, headers=org.headers)
        rest_write = await client.post(
            "/api/contacts", json={"phoneNumber": "+14155550124"}, headers=org.headers
        )
        over = await client.get("/api/contacts", headers=org.headers)
    remaining = [a.headers["RateLimit"].split(", ")[1] for a in (read, wrote, rest_write)]
    assert remaining == ["remaining=11", "remaining=6", "remaining=1"]
    assert over.status_code == 200 and over.headers["RateLimit"].split(", ")[1] == "remaining=0"


async def test_a_mutation_hidden_behind_a_json_escape_still_costs_a_write(mongo_uri: str) -> None:
    async with client_with(mongo_uri, api_rate_limit="12/hour", api_write_cost=5) as client:
        org = Org(client)
        body = (
            b'{"query": "\\u006dutation { createContact(input: {phoneNumber: \\"+14155550123\\"})'
            b' { userErrors { code } } }"}'
        )
        wrote = await client.post(
            "/graphql",
            content=body,
            headers={**org.headers, "Content-Type": "application/json"},
        )
    assert wrote.status_code == 200, wrote.text
    assert "errors" not in wrote.json()
    assert wrote.headers["RateLimit"].split(", ")[1] == "remaining=7"


def test_a_refusal_leaves_no_access_line_of_its_own() -> None:
    """The limiter logs once per caller and window; uvicorn's line per 429 is dropped."""

    def access_line(status: int) -> logging.LogRecord:
        args = ("127.0.0.1:5000", "GET", "/api/contacts", "1.1", status)
        return logging.LogRecord(
            "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None
        )

    lines = RefusalLines()
    assert lines.filter(access_line(200))
    assert lines.filter(access_line(404))
    assert not lines.filter(access_line(429))


async def test_a_refusal_waits_the_pause_at_most_until_the_budget_has_room() -> None:
    slept: list[float] = []
    release = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await release.wait()

    pause = RefusalPause(1.0, most=2, sleep=sleep)
    soon = Verdict(allowed=False, limit=3, remaining=0, reset_seconds=1, window_seconds=60)
    later = Verdict(allowed=False, limit=3, remaining=0, reset_seconds=40, window_seconds=60)
    held = [asyncio.create_task(pause.hold(v)) for v in (soon, later)]
    await asyncio.sleep(0)
    assert pause.held == 2 and slept == [1.0, 1.0]

    # Past `most` held at once, a refusal goes at once.
    await pause.hold(later)
    assert slept == [1.0, 1.0]
    release.set()
    await asyncio.gather(*held)
    assert pause.held == 0

    # Never past the moment the budget has room again; 0 turns it off.
    short = RefusalPause(5.0, most=2, sleep=sleep)
    await short.hold(soon)
    assert slept[-1] == 1.0
    await RefusalPause(0.0, most=2, sleep=sleep).hold(later)
    assert len(slept) == 3


@pytest.mark.parametrize("origin", [None, "https://app.example.com"])
async def test_the_app_holds_refusals_in_front_and_through_cors(
    mongo_uri: str, origin: str | None
) -> None:
    settings = make_settings(
        mongo_uri,
        api_rate_limit="1/hour",
        api_refusal_pause_seconds=10.0,
        cors_allowed_origins=["https://app.example.com"],
    )
    app = create_app(settings)
    org = Org(httpx.AsyncClient())
    headers = {**org.headers, **({"Origin": origin} if origin else {})}
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                first = await client.get("/api/contacts", headers=headers)
                assert first.status_code == 200
                refused = asyncio.create_task(client.get("/api/contacts", headers=headers))
                assert app.refusals is not None
                for _ in range(500):  # until the refusal is held (no time is asserted)
                    if app.refusals.pause.held:
                        break
                    await asyncio.sleep(0.01)
                assert app.refusals.pause.held == 1
                assert not refused.done()
                refused.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refused
    finally:
        await release_database(settings)
