"""What `/graphql` refuses before running anything: smaller budgets without a token,
introspection when switched off, and requests a browser could send cross-site (CSRF)."""

from __future__ import annotations

import json

import httpx
import pytest
from graphql import get_introspection_query

from tests.support import auth, client_with, token

FIVE = "{ campaigns { edges { node { createdBy { fullName } } } } }"
SIX = "{ campaigns { edges { node { recipients { pageInfo { hasNextPage } } } } } }"


async def test_without_a_token_depth_and_aliases_are_smaller(client: httpx.AsyncClient) -> None:
    five, six = FIVE, SIX
    refused = (await client.post("/graphql", json={"query": six})).json()
    assert refused["errors"][0]["extensions"] == {"code": "TOO_DEEP", "depth": 6, "max": 5}
    # Five levels are within the budget: the query gets as far as asking for a token.
    allowed = (await client.post("/graphql", json={"query": five})).json()
    assert allowed["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # With a token the same six levels run.
    signed = (await client.post("/graphql", json={"query": six}, headers=auth(token()))).json()
    assert "errors" not in signed and signed["data"]["campaigns"]["edges"] == []

    # A fragment counts with the depth where it is spread, however often it is spread.
    fragmented = (
        "query { campaigns { ...E } } fragment E on CampaignConnection "
        "{ edges { node { recipients { pageInfo { hasNextPage } } } } }"
    )
    refused = (await client.post("/graphql", json={"query": fragmented})).json()
    assert refused["errors"][0]["extensions"]["code"] == "TOO_DEEP"

    six_aliases = "{ " + " ".join(f"a{i}: __typename" for i in range(6)) + " }"
    refused = (await client.post("/graphql", json={"query": six_aliases})).json()
    assert refused["errors"][0]["extensions"] == {"code": "TOO_MANY_ALIASES", "max": 5}
    signed = await client.post("/graphql", json={"query": six_aliases}, headers=auth(token()))
    assert signed.json()["data"]["a5"] == "Query"


async def test_introspection_stays_allowed_without_a_token(client: httpx.AsyncClient) -> None:
    """GraphiQL introspects before anyone typed a token; `ofType` nesting is not depth."""
    answer = await client.post("/graphql", json={"query": get_introspection_query(True)})
    assert "errors" not in answer.json()
    assert answer.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_can_be_switched_off(mongo_uri: str) -> None:
    async with client_with(mongo_uri, graphql_introspection=False) as client:
        for query in (get_introspection_query(), '{ __type(name: "Campaign") { name } }'):
            for headers in ({}, auth(token())):
                answer = await client.post("/graphql", json={"query": query}, headers=headers)
                error = answer.json()["errors"][0]
                assert error["extensions"]["code"] == "INTROSPECTION_DISABLED", answer.text
                assert answer.json().get("data") is None
        # `__typename` is not introspection: Apollo adds it to every selection.
        typename = await client.post(
            "/graphql", json={"query": "{ me { __typename userId } }"}, headers=auth(token())
        )
        assert typename.json()["data"]["me"]["__typename"] == "Viewer"


QUERY = "{ me { userId } }"


async def campaign_names(client: httpx.AsyncClient, tok: str) -> list[str]:
    query = "{ campaigns { edges { node { name } } } }"
    answer = await client.post("/graphql", json={"query": query}, headers=auth(tok))
    return [e["node"]["name"] for e in answer.json()["data"]["campaigns"]["edges"]]


CREATE = 'mutation { createCampaign(input: {name: "csrf", message: "hi"}) { campaign { id } } }'


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", f"query={CREATE}"),
        ("text/plain", json.dumps({"query": CREATE})),
        (
            "multipart/form-data; boundary=x",
            f'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{CREATE}\r\n--x--\r\n',
        ),
    ],
    ids=["form", "text-plain", "multipart"],
)
async def test_simple_posts_a_browser_sends_cross_site_are_refused(
    client: httpx.AsyncClient, content_type: str, body: str
) -> None:
    """A form or `fetch(..., {mode: "no-cors"})` from another site can send these without a
    preflight; none is run, so no mutation happens through a victim's browser."""
    tok = token()
    response = await client.post(
        "/graphql", content=body.encode(), headers={**auth(tok), "Content-Type": content_type}
    )
    assert response.status_code in (400, 415), response.text
    # Refused in GraphQL's own shape, not plain text.
    assert response.json()["errors"][0]["extensions"]["code"] in {
        "BAD_REQUEST",
        "UNSUPPORTED_MEDIA_TYPE",
    }
    assert await campaign_names(client, tok) == []


async def test_mutations_are_not_run_over_get(client: httpx.AsyncClient) -> None:
    tok = token()
    response = await client.get("/graphql", params={"query": CREATE}, headers=auth(tok))
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert await campaign_names(client, tok) == []
    # Queries over GET stay allowed (credentials travel only in the Authorization header).
    query = await client.get("/graphql", params={"query": QUERY}, headers=auth(tok))
    assert query.status_code == 200 and query.json()["data"]["me"]["userId"]
    # The control: the same mutation as a JSON POST does create (so the checks above can fail).
    await client.post("/graphql", json={"query": CREATE}, headers=auth(tok))
    assert await campaign_names(client, tok) == ["csrf"]
