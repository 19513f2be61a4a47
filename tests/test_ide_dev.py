"""The IDE page for a developer: a fresh token only in development and only for this machine's
browser, and example tabs that run as they are."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from core.auth import DEV_ORGANIZATION_ID, DEV_USER_ID, authenticate
from main import create_app
from resolvers import ide
from tests.support import auth, make_settings, release_database, token


@asynccontextmanager
async def ide_client(
    mongo_uri: str, *, environment: str, base_url: str, client_ip: str = "127.0.0.1"
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = make_settings(mongo_uri, environment=environment)
    app = create_app(settings)
    try:
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, client=(client_ip, 50000))
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
                yield http, settings
    finally:
        await release_database(settings)


def page_config(page: str) -> dict[str, Any]:
    match = re.search(r"const config = (\{.*?\});\n", page)
    assert match, page[:2000]
    config: dict[str, Any] = json.loads(match.group(1))
    return config


async def open_ide(http: httpx.AsyncClient, **headers: str) -> httpx.Response:
    response = await http.get("/graphql", headers={"Accept": "text/html", **headers})
    assert response.status_code == 200, response.text
    return response


async def test_a_loopback_browser_in_development_gets_a_working_token(mongo_uri: str) -> None:
    async with ide_client(
        mongo_uri, environment="development", base_url="http://localhost:8000"
    ) as (http, settings):
        response = await open_ide(http)
        assert response.headers["cache-control"] == "no-store"
        config = page_config(response.text)
        principal = authenticate(f"Bearer {config['devToken']}", settings)
        assert (str(principal.user_id), str(principal.organization_id)) == (
            DEV_USER_ID,
            DEV_ORGANIZATION_ID,
        )
        tabs = config["tabs"]
        assert [re.search(r"(query|mutation) (\w+)", t["query"]).group(2) for t in tabs] == [  # type: ignore[union-attr]
            "Me",
            "Campaigns",
            "CreateCampaign",
        ]
        for tab in tabs:
            assert json.loads(tab["headers"]) == {"Authorization": f"Bearer {config['devToken']}"}
        # The prefilled header really works against this server.
        me = await http.post(
            "/graphql", json={"query": "{ me { userId } }"}, headers=json.loads(tabs[0]["headers"])
        )
        assert me.json() == {"data": {"me": {"userId": DEV_USER_ID}}}


@pytest.mark.parametrize(
    ("environment", "base_url", "client_ip", "headers"),
    [
        ("test", "http://localhost:8000", "127.0.0.1", {}),
        ("development", "http://localhost:8000", "10.1.2.3", {}),
        ("development", "http://localhost:8000", "127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}),
        ("development", "http://localhost:8000", "127.0.0.1", {"Forwarded": "for=203.0.113.9"}),
        ("development", "http://rebound.example:8000", "127.0.0.1", {}),
    ],
    ids=["not-development", "remote-client", "behind-proxy", "forwarded", "dns-rebinding-host"],
)
async def test_no_token_for_anyone_else(
    mongo_uri: str, environment: str, base_url: str, client_ip: str, headers: dict[str, str]
) -> None:
    async with ide_client(
        mongo_uri, environment=environment, base_url=base_url, client_ip=client_ip
    ) as (http, _):
        response = await open_ide(http, **headers)
        config = page_config(response.text)
        assert config["devToken"] is None
        assert "eyJ" not in response.text  # no JWT anywhere on the page
        assert all(ide.TOKEN_PLACEHOLDER in t["headers"] for t in config["tabs"])


async def test_example_tabs_run_as_they_are(client: httpx.AsyncClient) -> None:
    """The examples a newcomer runs first must not be stale against the schema."""
    headers = auth(token())
    answers = []
    for tab in ide.example_tabs(ide.DEFAULT_HEADERS):
        variables = json.loads(tab.get("variables") or "{}")
        response = await client.post(
            "/graphql", json={"query": tab["query"], "variables": variables}, headers=headers
        )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        answers.append(body["data"])
    created = answers[2]["createCampaign"]
    assert created["userErrors"] == []
    assert created["campaign"]["stats"]["total"] == 2
    assert created["campaign"]["failedDetails"] == []
    listed = await client.post("/graphql", json={"query": ide.EXAMPLE_CAMPAIGNS}, headers=headers)
    assert [e["node"]["name"] for e in listed.json()["data"]["campaigns"]["edges"]] == [
        "Spring follow-up"
    ]
