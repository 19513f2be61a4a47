"""One database server per session, a fresh database per test, the app driven over ASGI.

The server is `MONGODB_URI` when set, else one started by `scripts.dbserver` (mongod or
FerretDB). If neither can be had the session errors out: these tests never skip.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import AsyncMongoClient, monitoring

from core.config import Settings
from main import create_app
from scripts import dbserver
from tests.factories import TEST_JWT_SECRET
from tests.query_shapes import QueryRecorder

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
        yield uri
        return
    with (
        tempfile.TemporaryDirectory(prefix="campaigns-test-db-") as tmp,
        dbserver.running_server(Path(tmp), ephemeral=True) as server,
    ):
        yield server.uri


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


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Serves the app with real uvicorn on a free loopback port; yields its base URL."""
    port = dbserver.free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await drop_database(settings)


@pytest.fixture
def settings(mongo_uri: str) -> Settings:
    return make_settings(mongo_uri)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """Yields a started app on a fresh database, and drops that database afterwards."""
    application = create_app(settings)
    async with LifespanManager(application):
        yield application
    await drop_database(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
