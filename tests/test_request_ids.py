"""Request ids, ambiguous credentials and size refusals, answered in each protocol's shape."""

from __future__ import annotations

import io
import logging
import re

import httpx
import pytest
from bson import ObjectId
from fastapi import FastAPI

from main import create_app
from tests.support import (
    auth,
    campaign_body,
    client_with,
    counts,
    create_campaign,
    loopback,
    make_settings,
    release_database,
    served,
    token,
)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/campaigns"), ("POST", "/graphql"), ("GET", "/api/nope"), ("GET", "/healthz")],
)
async def test_every_answer_carries_a_request_id(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"query": "{ me { userId } }"} if path == "/graphql" else None
    given = await client.request(
        method, path, json=body, headers={"X-Request-ID": "gateway-1234.abcd"}
    )
    assert given.headers["X-Request-ID"] == "gateway-1234.abcd"
    made = await client.request(method, path, json=body)
    bad = await client.request(method, path, json=body, headers={"X-Request-ID": "a b\tc"})
    ids = {made.headers["X-Request-ID"], bad.headers["X-Request-ID"]}
    assert len(ids) == 2 and all(len(i) == 32 and i.isalnum() for i in ids)


async def test_log_lines_of_a_request_name_its_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="resolvers.root"):
        await client.post(
            "/graphql", json={"query": "{ nope }"}, headers={"X-Request-ID": "trace-5678-efgh"}
        )
    lines = [r for r in caplog.records if r.name == "resolvers.root"]
    assert lines and all(getattr(r, "request_id", None) == "trace-5678-efgh" for r in lines)


async def test_a_masked_internal_error_carries_the_id_to_quote(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service function made to fail like a bug (not the database driver: that stays real)."""
    from services.campaigns import queries as campaign_queries

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug with secrets in it")

    monkeypatch.setattr(campaign_queries, "get_campaign", broken)
    # Starlette re-raises after answering 500; the transport must not turn that into a raise.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    client = httpx.AsyncClient(transport=transport, base_url="http://t")
    org = ObjectId()
    rid = "quote-me-0001"
    headers = {**auth(token(org=org)), "X-Request-ID": rid}
    answer = await client.post(
        "/graphql", json={"query": f'{{ campaign(id: "{ObjectId()}") {{ id }} }}'}, headers=headers
    )
    error = answer.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": rid}
    assert "secrets" not in answer.text and rid in error["message"]
    rest = await client.get(f"/api/campaigns/{ObjectId()}", headers=headers)
    assert rest.status_code == 500 and rest.headers["X-Request-ID"] == rid
    assert rid in rest.json()["message"] and "secrets" not in rest.text
    await client.aclose()


async def test_two_authorization_headers_are_refused(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    await create_campaign(client, org)
    both = [("Authorization", f"Bearer {token(org=org)}"), ("Authorization", "Bearer garbage")]
    rest = await client.get("/api/campaigns", headers=httpx.Headers(both))
    assert rest.status_code == 401
    assert rest.json()["message"] == "Send exactly one Authorization header"
    graphql = await client.post(
        "/graphql", json={"query": "{ me { userId } }"}, headers=httpx.Headers(both)
    )
    assert graphql.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert graphql.json()["data"] is None


async def test_a_body_over_the_limit_is_answered_in_each_protocols_shape(mongo_uri: str) -> None:
    async with client_with(mongo_uri, max_body_bytes=2_000) as http:
        big = campaign_body(name="x" * 5_000)
        graphql = await http.post("/graphql", json={"query": "{ me { userId } }", "x": big})
        rest = await http.post("/api/campaigns", json=big, headers=auth(token()))
    assert graphql.status_code == 413
    assert graphql.json() == {
        "errors": [
            {
                "message": "Request body is larger than the 2000 byte limit",
                "extensions": {"code": "PAYLOAD_TOO_LARGE"},
            }
        ]
    }
    assert rest.status_code == 413 and rest.json()["success"] is False
    assert "X-Request-ID" in graphql.headers and "X-Request-ID" in rest.headers


async def test_one_request_creates_at_most_one_campaign(client: httpx.AsyncClient) -> None:
    variables = {"input": {"name": "A", "message": "Hi", "status": "DRAFT"}}
    create = "createCampaign(input: $input) { campaign { id } }"
    documents = [
        f"mutation($input: CreateCampaignInput!) {{ a: {create} b: {create} }}",
        "mutation($input: CreateCampaignInput!) { ...C ...C }"
        f" fragment C on Mutation {{ {create} }}",
        f"mutation($input: CreateCampaignInput!) {{ a: {create} ... on Mutation {{ {create} }} }}",
    ]
    for document in documents:
        answer = await client.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers=auth(token()),
        )
        errors = answer.json()["errors"]
        assert [e["extensions"]["code"] for e in errors] == ["TOO_MANY_CREATIONS"], errors
    assert (await counts("campaigns"))["campaigns"] == 0
    one = await client.post(
        "/graphql",
        json={
            "query": f"mutation($input: CreateCampaignInput!) {{ {create} }}",
            "variables": variables,
        },
        headers=auth(token()),
    )
    assert one.json()["data"]["createCampaign"]["campaign"]["id"]


async def test_a_batch_answers_each_operation_in_order(client: httpx.AsyncClient) -> None:
    org = ObjectId()
    await create_campaign(client, org, name="Only")
    batch = [
        {"query": "{ me { organizationId } }"},
        {"query": "{ campaigns { edges { node { name } } } }"},
        {"query": "{ nope }"},
    ]
    answer = await client.post("/graphql", json=batch, headers=auth(token(org=org)))
    assert answer.status_code == 200
    first, second, third = answer.json()
    assert first == {"data": {"me": {"organizationId": str(org)}}}
    assert second["data"]["campaigns"]["edges"][0]["node"]["name"] == "Only"
    assert third["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    too_many = await client.post(
        "/graphql", json=[{"query": "{ me { userId } }"}] * 11, headers=auth(token(org=org))
    )
    assert too_many.status_code == 400
    assert too_many.json() == {
        "errors": [{"message": "Too many operations", "extensions": {"code": "BAD_REQUEST"}}]
    }


async def test_creations_in_a_batch_count_toward_one_per_request(
    client: httpx.AsyncClient,
) -> None:
    create = (
        "mutation($input: CreateCampaignInput!) "
        "{ createCampaign(input: $input) { campaign { id } } }"
    )
    variables = {"input": {"name": "A", "message": "Hi", "status": "DRAFT"}}
    answer = await client.post(
        "/graphql",
        json=[{"query": create, "variables": variables}] * 3,
        headers=auth(token()),
    )
    results = answer.json()
    created = [r for r in results if (r.get("data") or {}).get("createCampaign")]
    refused = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(created) == 1 and refused == ["TOO_MANY_CREATIONS"] * 2
    assert (await counts("campaigns"))["campaigns"] == 1


async def test_too_many_fields_are_refused_before_validation(client: httpx.AsyncClient) -> None:
    from graphql import get_introspection_query

    hundred_and_one = "{ " + " ".join(["__typename"] * 101) + " }"
    anonymous = await client.post("/graphql", json={"query": hundred_and_one})
    error = anonymous.json()["errors"][0]
    assert error["extensions"] == {"code": "TOO_MANY_FIELDS", "fields": 101, "max": 100}
    signed_in = await client.post(
        "/graphql", json={"query": hundred_and_one}, headers=auth(token())
    )
    assert signed_in.json() == {"data": {"__typename": "Query"}}
    flood = "{ " + " ".join(["me { userId }"] * 1_000) + " }"
    refused = await client.post("/graphql", json={"query": flood}, headers=auth(token()))
    assert refused.json()["errors"][0]["extensions"]["code"] == "TOO_MANY_FIELDS"
    ide = await client.post("/graphql", json={"query": get_introspection_query(descriptions=True)})
    assert "errors" not in ide.json() and ide.json()["data"]["__schema"]["types"]


async def test_uvicorns_access_line_names_the_id(mongo_uri: str) -> None:
    """The access line is a log line of the request too: a real uvicorn, its logging set up as
    `uvicorn main:create_app --factory` sets it up, access log on."""
    settings = make_settings(mongo_uri, log_level="INFO")
    stream = io.StringIO()
    # Loads uvicorn's logging config; `load()` then builds the app, which adds the id to it.
    config = loopback(lambda: create_app(settings), factory=True, log_level=None, access_log=True)
    logging.getLogger("uvicorn.access").handlers = [logging.StreamHandler(stream)]
    config.load()
    try:
        async with served(config) as base, httpx.AsyncClient(base_url=base) as http:
            await http.get("/healthz", headers={"X-Request-ID": "access-0001"})
            await http.get("/healthz")
    finally:
        await release_database(settings)
    lines = stream.getvalue().splitlines()
    assert any("[access-0001]" in line and "GET /healthz" in line for line in lines), lines
    generated = [line for line in lines if "GET /healthz" in line and "access-0001" not in line]
    assert generated and all(re.search(r"\[[0-9a-f]{32}\]", line) for line in generated), lines
