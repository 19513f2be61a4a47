"""Liveness and readiness, and what an app answers while its database is away."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from core.config import Settings
from core.db import INDEXES_RECORD
from main import create_app
from models import DOCUMENT_MODELS, Campaign, Contact
from tests.support import DatabaseLink, auth, gql, release_database, token


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def _writes_answer_503_while_down(http: httpx.AsyncClient) -> None:
    body = {"name": "n", "message": "m", "newContacts": [{"phoneNumber": "+14155550101"}]}
    rest = await http.post("/api/campaigns", json=body, headers=auth(token()))
    assert rest.status_code == 503
    assert rest.json() == {
        "success": False,
        "message": "The database is not answering; retry shortly",
    }
    assert rest.headers["retry-after"] == "5"
    mutation = (
        "mutation($i: CreateCampaignInput!) { createCampaign(input: $i) { userErrors { code } } }"
    )
    graphql = await gql(http, mutation, {"i": body}, auth(token()))
    assert graphql["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


async def test_readyz_follows_the_database(settings: Settings) -> None:
    """The app's database goes away (its connection cut) and comes back."""
    link = DatabaseLink(settings.mongodb_uri)
    await link.join()
    linked = settings.model_copy(update={"mongodb_uri": link.uri, "mongodb_timeout_ms": 800})
    try:
        app = create_app(linked)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                assert (await http.get("/readyz")).status_code == 200

                await link.cut()
                down = await http.get("/readyz")
                assert down.status_code == 503
                assert down.json()["database"] == "unreachable"
                assert (await http.get("/healthz")).status_code == 200
                await _writes_answer_503_while_down(http)

                await link.join()
                for _ in range(50):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                assert (await http.get("/readyz")).status_code == 200
    finally:
        await link.close()
        await release_database(settings)


@pytest.mark.fresh_database  # the first start sets it up
async def test_the_app_starts_again_on_a_database_it_already_set_up(settings: Settings) -> None:
    """FerretDB drops the connection on a `createIndexes` naming existing indexes; a restart
    must create only what is missing."""
    try:
        for _ in range(2):
            async with LifespanManager(create_app(settings)) as manager:
                transport = httpx.ASGITransport(app=manager.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    body = {
                        "name": "n",
                        "message": "m",
                        "newContacts": [{"phoneNumber": "+14155550101"}],
                    }
                    response = await http.post("/api/campaigns", json=body, headers=auth(token()))
                    assert response.status_code == 201, response.text
    finally:
        await release_database(settings)


class StartCommands(monitoring.CommandListener):
    """The commands one app's client sends, as `(name, collection)`."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, str(event.command.get(event.command_name))))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def start(settings: Settings) -> list[tuple[str, str]]:
    """Starts and stops the app once; returns what its client sent."""
    seen = StartCommands()
    async with LifespanManager(create_app(settings, event_listeners=[seen])):
        pass
    return seen.seen


async def index_names(database: AsyncDatabase[dict[str, object]], collection: str) -> set[str]:
    return {index["name"] async for index in await database[collection].list_indexes()}


def declared(model: type[Contact] | type[Campaign]) -> set[str]:
    return {index.document["name"] for index in model.Settings.indexes} | {"_id_"}


@pytest.mark.fresh_database  # the first start sets it up
async def test_a_start_on_a_database_set_up_before_checks_records_not_every_index(
    settings: Settings,
) -> None:
    """Every API process and worker starts on a database that is already set up: the records
    of the indexes and of the migrations say so, without one `listIndexes` per collection. A
    collection dropped since (made again by a write or not), or a missing record, has the
    indexes checked and made again."""
    try:
        first = await start(settings)
        indexed = [m for m in DOCUMENT_MODELS if getattr(m.Settings, "indexes", None)]
        assert {c for n, c in first if n == "listIndexes"} >= {
            str(m.Settings.name) for m in indexed
        }
        assert ("createIndexes", "contacts") in first

        again = await start(settings)
        names = {name for name, _ in again}
        assert not names & {"listIndexes", "createIndexes", "insert", "update"}, again
        assert again.count(("find", "migrations")) == 2  # the indexes' record, the migrations'

        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_uri)
        database = client[settings.mongodb_db]
        try:
            await database["contacts"].drop()
            dropped = await start(settings)
            assert ("createIndexes", "contacts") in dropped
            assert await index_names(database, "contacts") == declared(Contact)
            assert ("listIndexes", "contacts") not in await start(settings)  # recorded again

            await database["campaigns"].drop()
            await database["campaigns"].insert_one({"name": "written before the next start"})
            assert await index_names(database, "campaigns") == {"_id_"}
            await start(settings)
            assert await index_names(database, "campaigns") == declared(Campaign)

            await database["campaigns"].drop_index("org_created_id")
            await database["migrations"].delete_one({"_id": INDEXES_RECORD})
            await start(settings)
            assert await index_names(database, "campaigns") == declared(Campaign)
        finally:
            await client.close()
    finally:
        await release_database(settings)
