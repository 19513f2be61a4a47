"""What the tests share: test data, apps on their own database, served apps, senders, browsers.

Plain functions and small classes, imported by the test files; `conftest.py` holds only the
fixtures (and builds them from these).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import AsyncMongoClient

from core.auth import Principal
from core.config import Settings
from main import create_app
from models import Campaign, Contact, IdempotencyRecord, Recipient, User
from scripts import dbserver
from services.organizations.settings import OrganizationSettings
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import read_ledger
from services.storage.tenancy import Tenant

ROOT = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"

# Tokens and requests


def claims(
    *, org: ObjectId | str | None = None, user: ObjectId | str | None = None, **extra: Any
) -> dict[str, Any]:
    """Returns valid token claims for a (new, unless given) organization and user."""
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": str(user or ObjectId()),
        "org_id": str(org or ObjectId()),
        "name": "Alex Rep",
        "roles": ["rep"],
        "iat": now,
        "exp": now + 600,
    }
    base.update(extra)
    return base


def token(secret: str = TEST_JWT_SECRET, algorithm: str = "HS256", **claim_args: Any) -> str:
    """Signs `claims(...)` with the test secret."""
    return jwt.encode(claims(**claim_args), secret, algorithm=algorithm)


def auth(tok: str) -> dict[str, str]:
    """Returns the Authorization header for a token."""
    return {"Authorization": f"Bearer {tok}"}


async def gql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Posts a GraphQL operation and returns the decoded body (asserting HTTP 200)."""
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def principal(org: ObjectId | None = None, user: ObjectId | None = None) -> Principal:
    """Returns a verified-looking principal for service-level tests."""
    return Principal(user or ObjectId(), org or ObjectId(), "Alex Rep", ("rep",))


# Test data


async def make_contact(
    org: ObjectId, phone: str, *, id: ObjectId | str | None = None, **fields: Any
) -> Contact:
    """Inserts a contact of `org` directly, as an earlier import would have."""
    contact = Contact(organizationId=PydanticObjectId(org), phoneNumber=phone, **fields)
    if id is not None:
        contact.id = PydanticObjectId(id)
    return await Tenant(principal(org)).insert(contact)


async def make_contacts(org: ObjectId, phones: Sequence[str], **fields: Any) -> list[Contact]:
    """Inserts contacts of `org` directly in one command (many, where one by one would take
    seconds); returns them with their ids."""
    tenant = Tenant(principal(org))
    contacts = [
        tenant.stamp(
            Contact(
                id=PydanticObjectId(),
                organizationId=PydanticObjectId(org),
                phoneNumber=phone,
                **fields,
            )
        )
        for phone in phones
    ]
    if contacts:
        await Contact.insert_many(contacts)
    return contacts


async def counts(*names: str) -> dict[str, int]:
    """Returns document counts of the app's collections in the current test database."""
    models = {
        "campaigns": Campaign,
        "contacts": Contact,
        "recipients": Recipient,
        "users": User,
        "idempotency_keys": IdempotencyRecord,
    }
    out = {}
    for name in names or tuple(models):
        out[name] = await models[name].get_pymongo_collection().count_documents({})
    return out


def future(days: int = 30) -> str:
    """Returns an ISO date `days` ahead in the legacy format."""
    when = datetime.now(UTC) + timedelta(days=days)
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def campaign_body(**overrides: Any) -> dict[str, Any]:
    """Returns a valid legacy request body; an override of `...` removes that key."""
    base: dict[str, Any] = {
        "name": "Spring outreach",
        "message": "Hi {{firstName|there}}",
        "newContacts": [{"firstName": "Ana", "phoneNumber": "+14155550101"}],
        "scheduleDate": future(),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


async def create_campaign(
    http: httpx.AsyncClient, org: ObjectId, **overrides: Any
) -> dict[str, Any]:
    """Creates a campaign of `org` through REST and returns its `data`."""
    response = await http.post(
        "/api/campaigns", json=campaign_body(**overrides), headers=auth(token(org=org))
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def phones(count: int, start: int = 0) -> list[dict[str, str]]:
    """Returns `count` distinct valid new contacts."""
    return [
        {"firstName": f"P{i}", "phoneNumber": f"+1212{2000000 + i:07d}"}
        for i in range(start, start + count)
    ]


# Apps on a database of their own


def make_settings(mongo_uri: str, **overrides: object) -> Settings:
    """Returns test settings on a database of its own."""
    values: dict[str, object] = {
        "environment": "test",
        "mongodb_uri": mongo_uri,
        "mongodb_db": f"test_{uuid.uuid4().hex[:12]}",
        "mongodb_timeout_ms": 3000,
        "jwt_secret": TEST_JWT_SECRET,
        "log_level": "WARNING",
        # Tests that send start a dispatcher of their own; others keep campaigns where they put
        # them (a `sending` campaign would otherwise complete under them).
        "dispatch_in_process": False,
        # No quiet hours unless a test sets them: a test must not wait for 08:00 in New York.
        "send_window_start": "00:00",
        "send_window_end": "24:00",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def drop_database(settings: Settings) -> None:
    """Drops a test's database."""
    cleanup: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        await cleanup.drop_database(settings.mongodb_db)
    finally:
        await cleanup.close()


@asynccontextmanager
async def client_with(mongo_uri: str, **overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    """Runs an app with some settings overridden, on a fresh database dropped afterwards."""
    settings = make_settings(mongo_uri, **overrides)
    application = create_app(settings)
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
    finally:
        await drop_database(settings)


# Served over a real socket


def loopback(app: Any, **options: Any) -> uvicorn.Config:
    """A uvicorn config serving `app` on a free loopback port, quiet unless told otherwise."""
    options.setdefault("log_level", "warning")
    return uvicorn.Config(app, host="127.0.0.1", port=dbserver.free_port(), **options)


@asynccontextmanager
async def served(config: uvicorn.Config) -> AsyncIterator[str]:
    """Runs a uvicorn server in this event loop until the block ends; yields its base URL."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):  # polls the server's flag; uvicorn offers no event to await
            if server.started or task.done():
                break
            await asyncio.sleep(0.025)
        assert server.started, "uvicorn did not start"
        yield f"http://{config.host}:{config.port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Serves the app with real uvicorn on a free loopback port; yields its base URL and drops
    the database afterwards."""
    try:
        async with served(loopback(create_app(settings))) as url:
            yield url
    finally:
        await drop_database(settings)


# Sending

ANY_HOUR = OrganizationSettings("00:00", "24:00", "America/New_York")
"""No quiet hours: tests that are not about them send whatever the hour (they have their own)."""
FAST = DispatchConfig(
    lease_seconds=5, poll_seconds=0.05, retry_initial_s=0.01, retry_max_s=0.05, defaults=ANY_HOUR
)


class Org:
    """One organization's API caller."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.id = ObjectId()
        self.user = ObjectId()
        self.headers = auth(token(org=self.id, user=self.user))

    async def create(self, count: int, *, start: int = 0, **overrides: Any) -> str:
        body = campaign_body(newContacts=phones(count, start), scheduleDate=None, **overrides)
        answer = await self.client.post("/api/campaigns", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["data"]["_id"])

    async def mutate(self, name: str, campaign_id: str) -> dict[str, Any]:
        query = (
            f'mutation {{ {name}(id: "{campaign_id}") '
            "{ campaign { status } userErrors { code } } }"
        )
        body = await gql(self.client, query, None, self.headers)
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"][name]
        assert payload["userErrors"] == [], payload
        return payload

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/api/campaigns/{campaign_id}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    def tenant(self) -> Tenant:
        return Tenant.for_organization(self.id)


async def until_done(
    org: Org, campaign_id: str, *dispatchers: Dispatcher, ticks: int = 40
) -> dict[str, Any]:
    """Ticks the dispatchers (concurrently) until the campaign leaves `sending`."""
    for _ in range(ticks):
        await asyncio.gather(*(d.tick() for d in dispatchers))
        campaign = await org.campaign(campaign_id)
        if campaign["status"] not in ("sending", "scheduled"):
            return campaign
    raise AssertionError(f"still {campaign['status']} after {ticks} ticks: {campaign['stats']}")


async def statuses(org: Org, campaign_id: str) -> Counter[str]:
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    return Counter(row["status"] for row in rows)


def ledger_keys(path: Path) -> Counter[str]:
    return Counter(entry["key"] for entry in read_ledger(path))


class Clock:
    """A time the test sets and moves forward, for `DispatchConfig(clock=...)`."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def start_worker(
    uri: str, database: str, ledger: Path, name: str, *, latency_ms: int = 5
) -> subprocess.Popen[bytes]:
    """A real `python -m worker` on that database, sending through the simulated provider into
    `ledger`, with short leases (a killed one's batches are taken over within 2 s) and no
    quiet hours or rate limit; its output goes to `<name>.log` beside the ledger."""
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DB": database,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "DISPATCH_PROVIDER": "simulated",
        "SIMULATED_LEDGER": str(ledger),
        "SIMULATED_LATENCY_MS": str(latency_ms),
        "DISPATCH_LEASE_SECONDS": "2",
        "DISPATCH_POLL_SECONDS": "0.2",
        "DISPATCH_RATE_PER_SECOND": "0",
        "SEND_WINDOW_START": "00:00",
        "SEND_WINDOW_END": "24:00",
    }
    log = (ledger.parent / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def stop_workers(workers: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """Stops worker processes as a supervisor would: SIGTERM, then SIGKILL after 15 s."""
    for process in workers.values():
        process.terminate()
    for process in workers.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


# A real browser

CHROMIUM_HINT = "apt-get update && apt-get install -y chromium"
BROWSER_TIMEOUT_S = 90.0


def chromium() -> str:
    """Path of the Chromium binary; fails (never skips) when it is not installed."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        pytest.fail(f"Chromium not found at {path}; install it with: {CHROMIUM_HINT}")
    return path


def chromium_args(user_data_dir: str) -> list[str]:
    """Flags for a quiet, offline, deterministic headless run."""
    return [
        chromium(),
        "--headless",
        "--window-size=1280,800",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={user_data_dir}",
    ]
