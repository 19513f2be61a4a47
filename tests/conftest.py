"""One database server per session, a database of its own per test, the app driven over ASGI.

The server is `MONGODB_URI` when set, else one started by `scripts.dbserver` (mongod or
FerretDB). If neither can be had the session errors out: these tests never skip. The helpers
these fixtures are built from live in `tests/support.py`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import monitoring

from core.config import Settings
from main import create_app
from scripts import dbserver
from tests.support import (
    DATABASES,
    WEBHOOK_SETTINGS,
    QueryRecorder,
    client_with,
    fresh_database_name,
    make_settings,
    release_database,
)

QUERIES = QueryRecorder()
monitoring.register(QUERIES)  # before any client exists: every client of the session reports


@pytest.fixture(scope="session")
def recorded_queries() -> QueryRecorder:
    """The shapes of every query the app sent so far in this session."""
    return QUERIES


@pytest.hookimpl(trylast=True)  # after plugins that reorder (pytest-asyncio groups by loop)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_all` judge what the rest of the session did, so they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """Yields the URI of the session's database server, starting one if needed."""
    if uri := os.environ.get("MONGODB_URI"):
        if not dbserver.ping(uri, timeout_ms=5000):
            raise RuntimeError(f"MONGODB_URI={uri} does not answer ping")
        try:
            yield uri
        finally:
            DATABASES.drop_all(uri)
        return
    with (
        tempfile.TemporaryDirectory(prefix="campaigns-test-db-") as tmp,
        dbserver.running_server(Path(tmp), ephemeral=True) as server,
    ):
        yield server.uri


@pytest.fixture
def settings(mongo_uri: str, request: pytest.FixtureRequest) -> Settings:
    """Settings on an emptied database of an earlier test, or a new one for tests marked
    `fresh_database` (see `tests.support.DatabasePool`)."""
    if request.node.get_closest_marker("fresh_database"):
        return make_settings(mongo_uri, mongodb_db=fresh_database_name())
    return make_settings(mongo_uri)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Once a test's fixtures are torn down, the databases it released may serve others."""
    yield
    DATABASES.test_ended()


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """Yields a started app on a database of its own, released afterwards."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application
    await release_database(settings)


@pytest.fixture
async def hooked(mongo_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    """An app that takes Twilio's signed webhooks: it sees itself as http://internal:8000
    (behind a proxy), while Twilio signed the public URL (`WEBHOOK_SETTINGS`)."""
    async with client_with(mongo_uri, **WEBHOOK_SETTINGS) as http:
        http.base_url = httpx.URL("http://internal:8000")
        yield http


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
