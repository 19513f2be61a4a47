"""Liveness and readiness against a database server this test starts and stops."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.config import Settings
from main import create_app
from scripts import dbserver
from tests.support import auth, gql, make_settings, release_database, token


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


async def test_readyz_follows_the_database() -> None:
    with tempfile.TemporaryDirectory(prefix="campaigns-readyz-") as tmp:
        server = dbserver.new_server(Path(tmp), ephemeral=True)
        await asyncio.to_thread(server.start)
        try:
            app = create_app(make_settings(server.uri, mongodb_timeout_ms=800))
            async with LifespanManager(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                    assert (await http.get("/readyz")).status_code == 200

                    await asyncio.to_thread(server.stop)
                    down = await http.get("/readyz")
                    assert down.status_code == 503
                    assert down.json()["database"] == "unreachable"
                    assert (await http.get("/healthz")).status_code == 200
                    await _writes_answer_503_while_down(http)

                    await asyncio.to_thread(server.start)
                    for _ in range(50):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                        await asyncio.sleep(0.2)
                    assert (await http.get("/readyz")).status_code == 200
        finally:
            await asyncio.to_thread(server.close)


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
