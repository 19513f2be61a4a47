"""One database server per session, a database of its own per test, the app driven over ASGI.

The server is `MONGODB_URI` when set, else one started by `scripts.dbserver` (mongod or
FerretDB). If neither can be had the session errors out: these tests never skip. The helpers
these fixtures are built from live in `tests/support.py`.

Under pytest-xdist (`make test` runs `pytest -n ...`) the controller starts the one server every
worker uses, each worker records the queries its tests made the app send, and the controller
judges them all once every worker has finished (`IndexCoverageGate`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvloop
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pymongo import monitoring

from core.config import Settings
from main import create_app
from scripts import dbserver
from tests.index_gate import IndexCoverageGate, QueryRecorder
from tests.support import (
    APPLIED,
    DATABASES,
    WEBHOOK_SETTINGS,
    Browser,
    client_with,
    fresh_database_name,
    make_settings,
    release_database,
)

pytest_plugins = ["pytester"]  # a test of the index-coverage gate runs a small xdist session

QUERIES = QueryRecorder()
# Before any client exists: every client of the session reports to each.
monitoring.register(QUERIES)
monitoring.register(DATABASES)
monitoring.register(APPLIED)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, Any]:
    """The tests run on uvloop, the loop the service runs on under uvicorn and in workers."""
    return {"uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="session")
def recorded_queries() -> QueryRecorder:
    """The shapes of every query the app sent so far in this session."""
    return QUERIES


@pytest.hookimpl(trylast=True)  # after plugins that reorder (pytest-asyncio groups by loop)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `after_all` judge what the rest of the session did, so they run last."""
    items.sort(key=lambda item: item.get_closest_marker("after_all") is not None)


SHARED_SERVER = "campaigns_mongo_uri"
"""The key of the controller's server URI in each xdist worker's `workerinput`."""
SERVER = pytest.StashKey[tuple[contextlib.ExitStack, str]]()


def distributing(config: pytest.Config) -> bool:
    """Whether this process is pytest-xdist's controller, handing the tests to workers."""
    option = config.option
    return (
        not hasattr(config, "workerinput")
        and getattr(option, "dist", "no") != "no"
        and bool(getattr(option, "tx", None))
        and not option.collectonly
    )


def pytest_configure(config: pytest.Config) -> None:
    gate = IndexCoverageGate(QUERIES, controller=distributing(config))
    config.pluginmanager.register(gate, "index-coverage-gate")


@pytest.hookimpl(tryfirst=True)  # before xdist starts the workers (its hook runs last)
def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller starts the one server all workers share: one start, not one each. It
    starts while the workers start (their imports take longer), and each waits for it."""
    config = session.config
    if distributing(config) and not os.environ.get("MONGODB_URI"):
        stack = contextlib.ExitStack()
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="campaigns-test-db-"))
        server = dbserver.new_server(Path(tmp), ephemeral=True)
        starting = stack.enter_context(ThreadPoolExecutor(max_workers=1))
        stack.callback(server.close)
        started = starting.submit(server.start)
        started.add_done_callback(_report_failed_start)
        # At the end (callbacks run last first): wait for the start, which raises if it failed,
        # then close the server.
        stack.callback(started.result)
        config.stash[SERVER] = (stack, server.uri)


def _report_failed_start(started: Future[None]) -> None:
    """Says at once why the session's server did not start (the workers wait for it)."""
    if (error := started.exception()) is not None:
        print(f"the session's database server did not start: {error!r}", file=sys.stderr)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist's hook, on the controller, as each worker is set up: hands it the server."""
    if started := node.config.stash.get(SERVER, None):
        node.workerinput[SHARED_SERVER] = started[1]


def pytest_unconfigure(config: pytest.Config) -> None:
    if started := config.stash.get(SERVER, None):
        started[0].close()


@pytest.fixture(scope="session")
def mongo_uri(pytestconfig: pytest.Config) -> Iterator[str]:
    """Yields the URI of the session's database server, starting one if needed."""
    if shared := getattr(pytestconfig, "workerinput", {}).get(SHARED_SERVER):
        # Its start waits for PostgreSQL, then for FerretDB: up to twice the start timeout.
        if not dbserver.ping(shared, timeout_ms=int(2 * dbserver.START_TIMEOUT_S * 1000)):
            raise RuntimeError(
                f"the session's server at {shared} did not start; the controller's output says why"
            )
        yield shared  # the controller's server, thrown away whole after the run
        return
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """The process's headless Chromium, started by its first page (`Browser`)."""
    shared = Browser()
    try:
        yield shared
    finally:
        shared.close()
