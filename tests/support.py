"""What the tests share: test data, apps on their own database, served apps, senders, browsers.

Plain functions and small classes, imported by the test files; `conftest.py` holds only the
fixtures (and builds them from these).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import jwt
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import AsyncMongoClient, MongoClient, monitoring, uri_parser
from pymongo.asynchronous.database import AsyncDatabase
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]
from websockets.sync.client import connect

from core.auth import Principal
from core.config import Settings
from core.db import INDEXES_RECORD
from main import create_app
from models import (
    DOCUMENT_MODELS,
    Campaign,
    Contact,
    IdempotencyRecord,
    Message,
    MigrationRecord,
    PendingInbound,
    Recipient,
    Tally,
    User,
)
from scripts import dbserver
from services.organizations.settings import OrganizationSettings
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from services.storage import tallies
from services.storage.migrations import all_migrations
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


async def pages(
    http: httpx.AsyncClient,
    query: str,
    path: Sequence[str],
    headers: dict[str, str],
    **variables: Any,
) -> list[dict[str, Any]]:
    """Every page of the connection at `path` in the answer, in order: the query reads it with
    `$after`, which this sets from each page's end cursor until there is no next page."""
    found: list[dict[str, Any]] = []
    after = None
    for _ in range(500):
        body = await gql(http, query, {**variables, "after": after}, headers)
        assert "errors" not in body, body
        page: dict[str, Any] = body["data"]
        for key in path:
            page = page[key]
        found.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]
    raise AssertionError("more than 500 pages")


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
        await tallies.add(tenant, tallies.CONTACTS, len(contacts))
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


WRITES = frozenset({"insert", "update", "delete", "findAndModify", "create", "createIndexes"})


class DatabasePool(monitoring.CommandListener):
    """Test databases, emptied and handed to a later test instead of dropped.

    A new database costs its collections and every declared index (with the embedded server's
    GIN twins): most of a short test's time. An emptied one has the same collections and
    indexes and no document, which is what the app's start leaves in a new one. A test marked
    `fresh_database` gets a new one (tests of what the app's start creates). A database
    released during a test is handed out only after that test ended, so nothing the test still
    holds can meet the next user. Per process: each pytest-xdist worker has its own.

    Emptying touches only the collections this process wrote to (it listens to every client's
    commands, so register it before any client exists); a database that another process
    wrote to (`written_elsewhere`: a sending worker's) has all its collections emptied.
    """

    LARGE = 1000
    """Past this many documents a collection is dropped rather than emptied (deleting is slow
    on the embedded server); the next start creates its indexes again."""

    def __init__(self) -> None:
        self.free: dict[str, list[str]] = {}
        self.released: list[tuple[str, str]] = []
        self.known: dict[str, set[str]] = {}
        self.written: dict[str, set[str]] = {}
        self.elsewhere: set[str] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in WRITES:
            collection = str(event.command.get(event.command_name))
            self.written.setdefault(event.database_name, set()).add(collection)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self, mongo_uri: str) -> str:
        """A free emptied database of that server, else a new name."""
        free = self.free.get(mongo_uri)
        name = free.pop(0) if free else fresh_database_name()
        self.known.setdefault(mongo_uri, set()).add(name)
        return name

    def written_elsewhere(self, database: str) -> None:
        """Another process writes to `database`: empty all of it when it is released."""
        self.elsewhere.add(database)

    async def release(self, settings: Settings) -> None:
        """Empties the database and keeps it for a later test."""
        key = (settings.mongodb_uri, settings.mongodb_db)
        if key in self.released or settings.mongodb_db in self.free.get(key[0], []):
            return
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri)
        database = client[settings.mongodb_db]
        try:
            written = self.written.pop(database.name, set())
            if database.name in self.elsewhere:
                self.elsewhere.discard(database.name)
                written.update(await database.list_collection_names())
            if MIGRATION_RECORDS in written and await migrated(database):
                written.discard(MIGRATION_RECORDS)  # as every start leaves a new database
            await empty_collections(database, written, self.LARGE)
            # Emptying's own deletes are no test's writes: the next user starts clean.
            self.written.pop(database.name, None)
        finally:
            await client.close()
        self.known.setdefault(key[0], set()).add(key[1])
        self.released.append(key)

    def test_ended(self) -> None:
        """What the ended test released becomes free."""
        for uri, name in self.released:
            self.free.setdefault(uri, []).append(name)
        self.released.clear()

    def drop_all(self, mongo_uri: str) -> None:
        """Drops every database handed out on that server (the session's end)."""
        client: MongoClient[dict[str, object]]
        with MongoClient(mongo_uri) as client:
            for name in sorted(self.known.pop(mongo_uri, set())):
                client.drop_database(name)
        self.free.pop(mongo_uri, None)


DATABASES = DatabasePool()
MODEL_COLLECTIONS = frozenset(str(model.Settings.name) for model in DOCUMENT_MODELS)


MIGRATION_RECORDS = str(MigrationRecord.Settings.name)


async def migrated(database: AsyncDatabase[dict[str, object]]) -> bool:
    """Whether the migration records are exactly what a start leaves in a new database (each
    migration's first attempt and its done record, the indexes' record): then they may stay."""
    expected = {f"{m.version}:{part}" for m in all_migrations() for part in ("1", "done")}
    expected.add(INDEXES_RECORD)  # and the record that the indexes are all there
    found = {str(row["_id"]) async for row in database[MIGRATION_RECORDS].find({}, {"_id": 1})}
    return found == expected


def fresh_database_name() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


async def empty_collections(
    database: AsyncDatabase[dict[str, object]], names: Iterable[str], large: int
) -> None:
    """Leaves the app's collections among `names` empty with their indexes; drops large ones
    and any other."""

    async def empty(name: str) -> None:
        collection = database[name]
        if name in MODEL_COLLECTIONS and await collection.estimated_document_count() <= large:
            await collection.delete_many({})
        else:
            await collection.drop()

    await asyncio.gather(*(empty(name) for name in names))


class CommandLog(monitoring.CommandListener):
    """Records the commands an app sends while `counting`: name, collection and filter (pass it
    to `create_app(event_listeners=...)` or `client_with(uri, [log])`)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []
        self.counting = False

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.seen]

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting:
            command = event.command
            collection = command.get(event.command_name)
            self.seen.append((event.command_name, str(collection), command.get("filter")))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def make_settings(mongo_uri: str, **overrides: object) -> Settings:
    """Returns test settings on a database of its own (new or emptied: `DatabasePool`)."""
    values: dict[str, object] = {
        "environment": "test",
        "mongodb_uri": mongo_uri,
        "mongodb_timeout_ms": 3000,
        "jwt_secret": TEST_JWT_SECRET,
        "log_level": "WARNING",
        # Tests that send start a dispatcher of their own; others keep campaigns where they put
        # them (a `sending` campaign would otherwise complete under them).
        "dispatch_in_process": False,
        # No quiet hours unless a test sets them: a test must not wait for 08:00 in New York.
        "send_window_start": "00:00",
        "send_window_end": "24:00",
        # Refusals answered at once unless a test holds them (`test_request_limits`).
        "api_refusal_pause_seconds": 0.0,
    }
    unknown = set(overrides) - set(Settings.model_fields)
    assert not unknown, f"not settings: {sorted(unknown)}"  # a typo would be ignored silently
    values.update(overrides)
    if "mongodb_db" not in values:
        values["mongodb_db"] = DATABASES.take(mongo_uri)
    return Settings(**values)  # type: ignore[arg-type]


async def release_database(settings: Settings) -> None:
    """Ends a test's use of its database: emptied for a later test (`DatabasePool`)."""
    await DATABASES.release(settings)


@asynccontextmanager
async def client_with(
    mongo_uri: str, listeners: Sequence[monitoring.CommandListener] = (), /, **overrides: object
) -> AsyncIterator[httpx.AsyncClient]:
    """Runs an app with some settings overridden, on a database of its own released afterwards
    (`listeners` watch its commands)."""
    settings = make_settings(mongo_uri, **overrides)
    application = create_app(settings, event_listeners=listeners)
    try:
        async with LifespanManager(application):
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
    finally:
        await release_database(settings)


@asynccontextmanager
async def started_again(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app started again on a database a test wrote in an older layout: the records of
    applied migrations and the running totals (which older versions did not keep) are
    forgotten first, so the start migrates everything as an upgrade would."""
    await Tally.get_pymongo_collection().delete_many({})
    await MigrationRecord.get_pymongo_collection().delete_many({})
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


# A database connection a test can cut


class DatabaseLink:
    """A TCP relay in front of the session's database server that a test cuts and joins
    again: an app on `uri` sees its database go away and come back, as after a server restart
    or a network fault, and the server itself (shared by the other tests) keeps running. A cut
    link keeps its port and drops every connection, open or new."""

    def __init__(self, mongo_uri: str) -> None:
        (self.host, self.port), *_ = uri_parser.parse_uri(mongo_uri)["nodelist"]
        self.listen_port = dbserver.free_port()
        parts = urlsplit(mongo_uri)
        assert parts.scheme == "mongodb", "a link fronts one host named in the URI"
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@" if userinfo else ""
        query = "&".join(filter(None, [parts.query, "directConnection=true"]))
        self.uri = urlunsplit(
            ("mongodb", f"{netloc}127.0.0.1:{self.listen_port}", parts.path or "/", query, "")
        )
        self._server: asyncio.Server | None = None
        self._cut = False
        self._ends: set[asyncio.StreamWriter] = set()

    async def join(self) -> None:
        """Relays connections (again)."""
        self._cut = False
        if self._server is None:
            self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.listen_port)

    async def cut(self) -> None:
        """Drops every open connection and every new one until `join`."""
        self._cut = True
        for end in list(self._ends):
            end.close()
        self._ends.clear()

    async def close(self) -> None:
        """Cuts the link for good and stops listening."""
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _relay(self, client: asyncio.StreamReader, client_end: asyncio.StreamWriter) -> None:
        self._ends.add(client_end)
        try:
            server, server_end = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_end.close()
            return
        self._ends.add(server_end)
        if self._cut:  # cut while this one was connecting
            await self.cut()
            return
        await asyncio.gather(
            self._pump(client, server_end), self._pump(server, client_end), return_exceptions=True
        )
        for end in (client_end, server_end):
            end.close()
            self._ends.discard(end)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(1 << 16):
                sink.write(chunk)
                await sink.drain()
        finally:
            sink.close()


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
    """Serves the app with real uvicorn on a free loopback port; yields its base URL and releases
    the database afterwards."""
    try:
        async with served(loopback(create_app(settings))) as url:
            yield url
    finally:
        await release_database(settings)


# Sending

ANY_HOUR = OrganizationSettings("00:00", "24:00", "America/New_York")
"""No quiet hours: tests that are not about them send whatever the hour (they have their own)."""
FAST = DispatchConfig(
    lease_seconds=5, poll_seconds=0.05, retry_initial_s=0.01, retry_max_s=0.05, defaults=ANY_HOUR
)


SERVER_START_TIMEOUT_S = 60.0


@contextmanager
def serving_in_thread(settings: Settings) -> Iterator[str]:
    """Serves the app like `serving`, from a thread with its own event loop; yields its URL.

    For synchronous tests (a browser, a fuzzer) that block their own thread while the server
    answers. The app's lifespan runs (so the database connection) and its database is released.
    """
    started: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()
    errors: list[BaseException] = []

    async def serve() -> None:
        async with serving(settings) as url:
            started.put(url)
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the test thread, not lost in this one
            errors.append(exc)
            started.put(exc)

    thread = threading.Thread(target=run, name="uvicorn-in-thread", daemon=True)
    thread.start()
    try:
        try:
            first = started.get(timeout=SERVER_START_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(
                f"uvicorn did not start within {SERVER_START_TIMEOUT_S} s"
            ) from None
        if isinstance(first, BaseException):
            raise AssertionError(f"uvicorn failed to start: {first!r}") from first
        yield first
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive(), "uvicorn did not stop within 30 s"
    assert not errors, f"the server thread failed: {errors!r}"


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
    `ledger`, with short leases (a killed one's batches are taken over within 2 s), no quiet
    hours or rate limit, and follow-up minutes of half a second; its output goes to
    `<name>.log` beside the ledger."""
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
        "FOLLOW_UP_MINUTE_SECONDS": "0.5",  # a follow-up of 1 minute is due half a second on
        "SEND_WINDOW_START": "00:00",
        "SEND_WINDOW_END": "24:00",
    }
    DATABASES.written_elsewhere(database)
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


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page, over its websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Sends one command and returns its result, skipping events in between."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        """Evaluates JavaScript in the page and returns its (JSON) value."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(
        self,
        expression: str,
        what: str,
        *,
        timeout_s: float = BROWSER_TIMEOUT_S,
        interval_s: float = 0.2,
    ) -> Any:
        """Polls `expression` until it is truthy; fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if value := self.evaluate(expression):
                return value
            time.sleep(interval_s)
        html = self.evaluate("document.body.outerHTML.slice(0, 3000)")
        raise AssertionError(f"timed out waiting for {what}; page: {html}")

    def close(self) -> None:
        self.ws.close()


class Browser:
    """One headless Chromium per test process, driven over the DevTools protocol. Each page
    opens in a browser context of its own (its own cookies and storage, as a new profile would
    have), so tests share the browser's start, not their state."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: Path | None = None
        self._port = ""
        self._control: DevTools | None = None

    def _started(self) -> DevTools:
        if self._control is not None:
            return self._control
        self._profile = Path(tempfile.mkdtemp(prefix="campaigns-chromium-"))
        args = [*chromium_args(str(self._profile)), "--remote-debugging-port=0", "about:blank"]
        try:
            # Own process group, so `close` ends Chromium's helpers too (and only them).
            self._process = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
            # Chromium writes the port it picked, then its browser endpoint, into the profile.
            port_file = self._profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while len(lines := _lines(port_file)) < 2:
                assert self._process.poll() is None, "Chromium exited early"
                assert time.monotonic() < deadline, "Chromium opened no DevTools port"
                time.sleep(0.05)
            self._port = lines[0]
            self._control = DevTools(f"ws://127.0.0.1:{lines[0]}{lines[1]}")
        except BaseException:
            self.close()  # the next test starts a browser of its own, and nothing is left behind
            raise
        return self._control

    @contextmanager
    def page(self, url: str) -> Iterator[DevTools]:
        """A new page on `url`, in a browser context of its own, closed with it."""
        control = self._started()
        context = control.call("Target.createBrowserContext")["browserContextId"]
        try:
            target = control.call(
                "Target.createTarget", url=url, browserContextId=context, width=1280, height=800
            )["targetId"]
            page = DevTools(f"ws://127.0.0.1:{self._port}/devtools/page/{target}")
            try:
                yield page
            finally:
                page.close()
        finally:
            # A browser that died meanwhile fails here too: the test's own error is the news.
            with contextlib.suppress(Exception):
                control.call("Target.disposeBrowserContext", browserContextId=context)

    def close(self) -> None:
        """Ends Chromium and removes its profile."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            stop_process_group(self._process)
            self._process = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.is_file() else []


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL, to the group `process` leads (started with a new session)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


# Senders, inbound messages and conversations: signed Twilio webhooks, an organization's
# senders set through the API, and a campaign sent through the simulated provider


TWILIO_TOKEN = "twilio-auth-token-for-tests"
PUBLIC = "https://sms.example.com"
WEBHOOK_SETTINGS: dict[str, object] = {
    "twilio_auth_token": TWILIO_TOKEN,
    "twilio_public_url": PUBLIC,
}
INBOUND = "/webhooks/twilio/inbound"
_sids = itertools.count()

SETTINGS_FIELDS = (
    "{ helpText attributionWindowDays inboundContactStatus "
    "senders { phoneNumber messagingServiceSid } }"
)
UPDATE_SETTINGS = f"""
mutation ($input: UpdateOrganizationSettingsInput!) {{
  updateOrganizationSettings(input: $input) {{
    settings {SETTINGS_FIELDS}
    userErrors {{ field code message }}
  }}
}}"""


def service_sid(i: int) -> str:
    return f"MG{i:032x}"


def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}{next(_sids) % 10}"[:34]


def status_path(key: object, org: object | None) -> str:
    """Where Twilio reports on the message `key` of the organization `org` (None: a message sent
    before the callback URL named its organization), as `TwilioProvider.status_callback`."""
    query = {"recipient": str(key)} | ({} if org is None else {"org": str(org)})
    return f"/webhooks/twilio/status?{urlencode(query)}"


def signed(path: str, form: dict[str, str]) -> dict[str, str]:
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, form)
    return {"X-Twilio-Signature": signature}


def inbound_form(
    *, frm: str, to: str, body: str, sid: str | None = None, **extra: str
) -> dict[str, str]:
    """The form of Twilio's inbound webhook for one message."""
    return {
        "MessageSid": sid or new_sid(),
        "AccountSid": "AC" + "0" * 32,
        "From": frm,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        **extra,
    }


async def post_inbound(client: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    """Posts a signed inbound webhook; its answer comes before an ordinary reply is applied."""
    answer = await client.post(INBOUND, data=form, headers=signed(INBOUND, form))
    assert answer.status_code == 200, answer.text
    return answer


async def text(
    client: httpx.AsyncClient,
    *,
    frm: str,
    to: str,
    body: str,
    sid: str | None = None,
    **extra: str,
) -> httpx.Response:
    """A contact texts `to`: Twilio's signed inbound webhook, and the reply applied."""
    form = inbound_form(frm=frm, to=to, body=body, sid=sid, **extra)
    answer = await post_inbound(client, form)
    await applied(form["MessageSid"])
    return answer


class AppliedReplies(monitoring.CommandListener):
    """Wakes whoever waits for a reply's pending record when this process's clients delete it:
    what `applied` waits on between looks at the database, instead of looking every few
    milliseconds (that was most of a chatty conversation test's commands, and slowed what it
    waited for). Register it before any client exists (the conftest does); apps served in
    another thread report here too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deleting: dict[tuple[object, int], list[str]] = {}
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if event.command_name != "delete" or command.get("delete") != PENDING_COLLECTION:
            return
        sids = [d["q"].get("_id") for d in command.get("deletes", [])]
        with self._lock:
            self._deleting[(event.connection_id, event.request_id)] = [
                sid for sid in sids if isinstance(sid, str)
            ]

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        with self._lock:
            sids = self._deleting.pop((event.connection_id, event.request_id), [])
            waiters = [w for sid in sids for w in self._waiters.get(sid, [])]
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop closed since: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        with self._lock:
            self._deleting.pop((event.connection_id, event.request_id), None)

    @contextmanager
    def watching(self, sid: str) -> Iterator[asyncio.Future[None]]:
        """A future resolved by the next delete of `sid`'s pending record, while the block runs."""
        waiter = (asyncio.get_running_loop(), asyncio.get_running_loop().create_future())
        with self._lock:
            self._waiters.setdefault(sid, []).append(waiter)
        try:
            yield waiter[1]
        finally:
            with self._lock:
                waiting = self._waiters.get(sid, [])
                if waiter in waiting:
                    waiting.remove(waiter)
                if not waiting:
                    self._waiters.pop(sid, None)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


PENDING_COLLECTION = PendingInbound.Settings.name
APPLIED = AppliedReplies()


async def applied(sid: str) -> None:
    """Waits until a reply the webhook accepted has been applied: an ordinary reply is
    answered first and applied right after (`services.conversations.pending`). The database
    decides (a retry may reuse a sid); `APPLIED` only wakes the wait when the record is
    deleted, and without it (a delete sent by another process) the database is asked again
    every 0.25 s."""
    collection = PendingInbound.get_pymongo_collection()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with APPLIED.watching(sid) as deleted:
            if await collection.find_one({"_id": sid}, {"_id": 1}) is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deleted, 0.25)
    raise AssertionError(f"the reply {sid} is still pending after 10 s")


def admin(org: Org) -> dict[str, str]:
    return auth(token(org=org.id, user=org.user, roles=["admin"]))


async def update_settings(
    client: httpx.AsyncClient, org: Org, values: dict[str, Any], *, as_admin: bool = True
) -> dict[str, Any]:
    headers = admin(org) if as_admin else org.headers
    body = await gql(client, UPDATE_SETTINGS, {"input": values}, headers)
    return body


async def own(client: httpx.AsyncClient, org: Org, *senders: str, **values: Any) -> None:
    """Gives `org` these senders (numbers, or `MG...` services) and other settings."""
    entries = [
        {"messagingServiceSid": s} if s.startswith("MG") else {"phoneNumber": s} for s in senders
    ]
    body = await update_settings(client, org, {"senders": entries, **values})
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == [], body


async def messages(org: Org) -> list[dict[str, Any]]:
    rows = await org.tenant().raw_find(Message, {}).to_list()
    return sorted(rows, key=lambda row: (row["createdAt"], row["_id"]))


async def contact(org: Org, phone: str) -> dict[str, Any] | None:
    rows = await org.tenant().raw_find(Contact, {"phoneNumber": phone}).to_list()
    return rows[0] if rows else None


# The rep's inbox

INBOX = """
query ($first: Int, $after: String, $filter: ConversationFilter) {
  conversations(first: $first, after: $after, filter: $filter) {
    edges { node {
      contact { phoneNumber }
      lastMessage { body direction }
      unreadCount
      owner { id }
    } }
    pageInfo { hasNextPage endCursor }
  }
}"""
READ = """
mutation ($id: ID!) {
  markConversationRead(contactId: $id) {
    conversation { unreadCount } userErrors { field code }
  }
}"""
ASSIGN = """
mutation ($id: ID!, $user: ID) {
  assignConversation(contactId: $id, userId: $user) {
    conversation { owner { id } } userErrors { field code }
  }
}"""


async def inbox(org: Org, **variables: Any) -> dict[str, Any]:
    body = await gql(org.client, INBOX, variables, org.headers)
    assert "errors" not in body, body
    result: dict[str, Any] = body["data"]["conversations"]
    return result


def rows(page: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (
            e["node"]["contact"]["phoneNumber"],
            e["node"]["lastMessage"]["body"],
            e["node"]["unreadCount"],
        )
        for e in page["edges"]
    ]


async def contact_id(org: Org, phone: str) -> str:
    found = await contact(org, phone)
    assert found is not None
    return str(found["_id"])


async def send(org: Org, count: int, tmp_path: Path, **overrides: Any) -> str:
    """Creates a campaign of `count` contacts (`tests.support.phones`) and sends it."""
    campaign_id = await org.create(count, **overrides)
    await org.mutate("sendCampaignNow", campaign_id)
    provider = SimulatedProvider(tmp_path / f"{campaign_id}.jsonl")
    await until_done(org, campaign_id, Dispatcher(provider, FAST))
    return campaign_id


async def recipient(org: Org, campaign_id: str, phone: str) -> dict[str, Any]:
    found = await contact(org, phone)
    assert found is not None
    rows = (
        await org.tenant()
        .raw_find(Recipient, {"campaignId": ObjectId(campaign_id), "contactId": found["_id"]})
        .to_list()
    )
    return rows[0]
