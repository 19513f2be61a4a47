"""Browser pages on other sites: allowed origins get CORS answers, others are refused unrun."""

from __future__ import annotations

import httpx
import pytest
from bson import ObjectId
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from core.config import Settings
from resolvers.cors import REQUEST_HEADERS
from tests.support import auth, campaign_body, client_with, gql, make_settings, serving, token

APP = "https://app.example.com"
EVIL = "https://evil.example.net"
CREATE = """mutation($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id } userErrors { code } }
}"""


def preflight(origin: str, headers: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": headers,
    }


async def campaigns_of(http: httpx.AsyncClient, tok: str) -> int:
    listed = await http.get("/api/campaigns", headers=auth(tok))
    assert listed.status_code == 200
    total: int = listed.json()["pagination"]["total"]
    return total


async def test_preflight_from_an_allowed_origin_names_apollos_headers(mongo_uri: str) -> None:
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        answer = await http.options("/graphql", headers=preflight(APP, ",".join(REQUEST_HEADERS)))
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    allowed = {h.strip() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert set(REQUEST_HEADERS) <= allowed
    assert "access-control-allow-credentials" not in answer.headers


async def test_rest_preflight_allows_the_idempotency_key(mongo_uri: str) -> None:
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        answer = await http.options(
            "/api/campaigns", headers=preflight(APP, "authorization,content-type,idempotency-key")
        )
    assert answer.status_code == 200
    assert "POST" in answer.headers["access-control-allow-methods"]


async def test_an_allowed_origins_answer_exposes_the_request_id(mongo_uri: str) -> None:
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        answer = await http.post(
            "/graphql",
            json={"query": "{ me { userId } }"},
            headers={**auth(token()), "Origin": APP},
        )
    assert answer.status_code == 200
    assert answer.json()["data"]["me"]["userId"]
    assert answer.headers["access-control-allow-origin"] == APP
    exposed = answer.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed


async def test_preflight_from_another_origin_gets_no_allowance(mongo_uri: str) -> None:
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        answer = await http.options("/graphql", headers=preflight(EVIL, "content-type"))
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


async def test_rest_creation_from_another_origin_is_refused_and_writes_nothing(
    mongo_uri: str,
) -> None:
    tok = token(org=ObjectId())
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        refused = await http.post(
            "/api/campaigns", json=campaign_body(), headers={**auth(tok), "Origin": EVIL}
        )
        assert refused.status_code == 403
        body = refused.json()
        assert body["success"] is False
        assert body["errors"][0]["code"] == "ORIGIN_NOT_ALLOWED"
        assert await campaigns_of(http, tok) == 0


async def test_graphql_mutation_from_another_origin_is_refused_and_never_runs(
    mongo_uri: str,
) -> None:
    tok = token(org=ObjectId())
    async with client_with(mongo_uri, cors_allowed_origins=[APP]) as http:
        variables = {"input": {"name": "x", "message": "Hi", "status": "DRAFT"}}
        refused = await http.post(
            "/graphql",
            json={"query": CREATE, "variables": variables},
            headers={**auth(tok), "Origin": EVIL},
        )
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["extensions"]["code"] == "ORIGIN_NOT_ALLOWED"
        assert await campaigns_of(http, tok) == 0
        # The same request from the allowed origin runs.
        allowed = await gql(http, CREATE, variables, headers={**auth(tok), "Origin": APP})
        assert allowed["data"]["createCampaign"]["campaign"]["id"]
        assert await campaigns_of(http, tok) == 1


async def test_a_page_of_the_same_site_and_clients_without_origin_pass(mongo_uri: str) -> None:
    async with client_with(mongo_uri) as http:
        same_site = await http.post(
            "/graphql",
            json={"query": "{ me { userId } }"},
            headers={**auth(token()), "Origin": "http://t"},
        )
        no_origin = await http.get("/api/campaigns", headers=auth(token()))
    assert same_site.status_code == 200
    assert no_origin.status_code == 200


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:5173", True),
        ("http://127.0.0.1:3000", True),
        ("http://localhost", True),
        ("https://localhost:5173", False),
        ("http://localhost.evil.example:80", False),
        (EVIL, False),
    ],
)
async def test_development_allows_local_dev_servers_only(
    mongo_uri: str, origin: str, allowed: bool
) -> None:
    async with client_with(mongo_uri, environment="development") as http:
        answer = await http.options("/graphql", headers=preflight(origin, "content-type"))
    assert (answer.headers.get("access-control-allow-origin") == origin) is allowed


async def test_elsewhere_no_origin_is_allowed_by_default(mongo_uri: str) -> None:
    async with client_with(mongo_uri, environment="staging") as http:
        answer = await http.options(
            "/graphql", headers=preflight("http://localhost:5173", "content-type")
        )
    assert "access-control-allow-origin" not in answer.headers


@pytest.mark.parametrize(
    "value", ["*", "app.example.com", "https://app.example.com/path", "ftp://x"]
)
def test_origins_that_are_not_origins_are_refused_at_start(mongo_uri: str, value: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ALLOWED_ORIGINS"):
        make_settings(mongo_uri, cors_allowed_origins=value)


def test_origins_are_read_comma_separated(mongo_uri: str) -> None:
    settings = make_settings(mongo_uri, cors_allowed_origins=f"{APP}, https://admin.example.com/")
    assert settings.cors_allowed_origins == [APP, "https://admin.example.com"]


async def test_websocket_from_another_origin_is_refused_at_the_handshake(
    settings: Settings,
) -> None:
    async with serving(settings.model_copy(update={"cors_allowed_origins": [APP]})) as base:
        url = base.replace("http://", "ws://") + "/graphql"
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, origin=EVIL, subprotocols=["graphql-transport-ws"])  # type: ignore[arg-type, list-item]
        assert refused.value.response.status_code == 403
        socket = await connect(url, origin=APP, subprotocols=["graphql-transport-ws"])  # type: ignore[arg-type, list-item]
        await socket.close()
