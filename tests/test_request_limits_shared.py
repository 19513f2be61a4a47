"""One request budget for the whole deployment: two app instances with limiters of their own,
on one real database, admit together at most the limit plus the documented slack, and the
sliding window carries the last window's count over, on a test clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from asgi_lifespan import LifespanManager
from bson import ObjectId
from pymongo import MongoClient
from pymongo.errors import OperationFailure

from main import App, create_app
from services.organizations.request_limits import RequestLimits
from tests.support import Clock, auth, make_settings, release_database, token

LIMIT = 100
SLACK = 5
"""`max(ceil(LIMIT / 20), API_WRITE_COST)`: what one process may admit between two syncs."""


@asynccontextmanager
async def two_processes(
    mongo_uri: str, clock: Clock
) -> AsyncIterator[tuple[list[httpx.AsyncClient], list[App]]]:
    """Two apps as two API processes would run them: one database, a limiter each. Their
    counts are shared only when a key used its slack (or the test says so): the periodic
    sync is a minute apart (longer than the test)."""
    settings = make_settings(
        mongo_uri,
        api_rate_limit=f"{LIMIT}/minute",
        api_write_cost=5,
        api_limit_sync_seconds=60,
    )
    apps = [create_app(settings, clock=clock) for _ in range(2)]
    try:
        async with LifespanManager(apps[0]), LifespanManager(apps[1]):
            clients = [
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
                for app in apps
            ]
            try:
                yield clients, apps
            finally:
                for client in clients:
                    await client.aclose()
    finally:
        await release_database(settings)


def limits_of(app: App) -> RequestLimits:
    limits: RequestLimits = app.state.request_limits
    return limits


async def admitted(client: httpx.AsyncClient, headers: dict[str, str], requests: int) -> int:
    statuses = [
        (await client.get("/api/contacts", headers=headers)).status_code for _ in range(requests)
    ]
    assert set(statuses) <= {200, 429}
    return statuses.count(200)


async def test_two_processes_flooded_at_once_admit_the_limit_plus_at_most_the_slack(
    mongo_uri: str,
) -> None:
    clock = Clock(datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC))
    headers = auth(token(org=ObjectId()))
    async with two_processes(mongo_uri, clock) as (clients, apps):
        counts = await asyncio.gather(*(admitted(clients[i % 2], headers, 80) for i in range(4)))
        for app in apps:
            await limits_of(app).sync()
        after = [(await client.get("/api/contacts", headers=headers)) for client in clients]

    # Both kept refusing to the end, so the budget was used up; the slack of the process
    # that did not see the other's last admissions is the most it can let through.
    assert LIMIT <= sum(counts) <= LIMIT + (2 - 1) * SLACK
    assert [a.status_code for a in after] == [429, 429]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in after)


async def test_the_budget_is_shared_not_split_and_slides_into_the_next_window(
    mongo_uri: str,
) -> None:
    clock = Clock(datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC))
    headers = auth(token(org=ObjectId()))
    async with two_processes(mongo_uri, clock) as (clients, apps):
        # One process alone may spend the whole budget (a split would stop it at half).
        first = await admitted(clients[0], headers, LIMIT + 10)
        await limits_of(apps[0]).sync()
        # The other process reads the window's shares before admitting anything in it.
        refused = await clients[1].get("/api/contacts", headers=headers)

        # A window later, 10 s into it: the last window still weighs 50/60 of its count.
        clock.advance(timedelta(minutes=1))
        later = await asyncio.gather(*(admitted(client, headers, 30) for client in clients))

        # Two windows later nothing is carried over.
        clock.advance(timedelta(minutes=2))
        fresh = await admitted(clients[1], headers, 1)

    assert first == LIMIT
    assert refused.status_code == 429
    assert refused.headers["RateLimit"].startswith(f"limit={LIMIT}, remaining=0")
    room = LIMIT - LIMIT * 50 // 60
    assert room <= sum(later) <= room + SLACK
    assert fresh == 1


async def test_a_write_waits_for_the_other_processes_counts_before_spending_the_slack(
    mongo_uri: str,
) -> None:
    clock = Clock(datetime(2026, 12, 3, 12, 0, 10, tzinfo=UTC))
    headers = auth(token(org=ObjectId()))
    async with two_processes(mongo_uri, clock) as (clients, apps):
        spent = await admitted(clients[0], headers, LIMIT - 3)  # 97, shared by the slack syncs
        await limits_of(apps[0]).sync()
        # The other process served nothing yet: it reads the shares first, and a write (5) does
        # not fit in what is left (3), while a read does.
        write = await clients[1].post(
            "/api/contacts", json={"phoneNumber": "+14155550100"}, headers=headers
        )
        read = await clients[1].get("/api/contacts", headers=headers)
    assert spent == LIMIT - 3
    assert write.status_code == 429
    assert read.status_code == 200
    assert read.headers["RateLimit"].split(", ")[1] == "remaining=2"


async def test_the_limits_librarys_mongodb_storage_does_not_run_on_ferretdb(
    mongo_uri: str,
) -> None:
    """Why the budgets are shared by hand: the `limits` library's MongoDB storage needs a TTL
    index and update pipelines, which FerretDB v1 does not implement (MongoDB does)."""
    from limits import parse
    from limits.storage import MongoDBStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    def attempt() -> list[bool] | OperationFailure:
        storage = MongoDBStorage(mongo_uri, database_name=f"limits_{ObjectId()}")
        limiter = SlidingWindowCounterRateLimiter(storage)
        try:
            return [limiter.hit(parse("5/minute"), "key") for _ in range(7)]
        except OperationFailure as exc:
            return exc
        finally:
            storage.reset()
            storage.storage.close()

    client: MongoClient[dict[str, object]] = MongoClient(mongo_uri)
    try:
        ferretdb = "ferretdbVersion" in client.admin.command("buildInfo")
    finally:
        client.close()
    outcome = await asyncio.to_thread(attempt)
    if ferretdb:
        assert isinstance(outcome, OperationFailure)
        assert outcome.code == 238  # NotImplemented: expireAfterSeconds, pipelines
    else:
        assert outcome == [True] * 5 + [False] * 2


@pytest.mark.parametrize("path", ["/api/contacts", "/graphql"])
async def test_a_browsers_refusal_carries_cors_headers_and_others_an_id(
    mongo_uri: str, path: str
) -> None:
    settings = make_settings(
        mongo_uri, api_rate_limit="1/hour", cors_allowed_origins=["https://app.example.com"]
    )
    app = create_app(settings)
    headers = auth(token(org=ObjectId()))
    query = {"query": "{ contacts { totalCount } }"}
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

                async def call(extra: dict[str, str]) -> httpx.Response:
                    if path == "/graphql":
                        return await client.post(path, json=query, headers={**headers, **extra})
                    return await client.get(path, headers={**headers, **extra})

                allowed = await call({})
                browser = await call({"Origin": "https://app.example.com"})
                script = await call({"X-Request-ID": "flood-0001"})
                anonymous = await call({})
    finally:
        await release_database(settings)
    assert allowed.status_code == 200
    assert [browser.status_code, script.status_code, anonymous.status_code] == [429] * 3
    assert browser.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Retry-After" in browser.headers["Access-Control-Expose-Headers"]
    assert script.headers["X-Request-ID"] == "flood-0001"
    assert len(anonymous.headers["X-Request-ID"]) == 32
    # Refused in front of the app or inside it, the answer is the same.
    assert browser.content == script.content
    for name in ("Retry-After", "RateLimit", "RateLimit-Policy", "Content-Type"):
        assert browser.headers[name] == script.headers[name]
