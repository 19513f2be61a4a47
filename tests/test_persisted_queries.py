"""Automatic persisted queries, the protocol of Apollo's persisted-queries link."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
from bson import ObjectId

from tests.support import auth, client_with, token

QUERY = "query Me { me { organizationId } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


def persisted(digest: str = HASH) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


async def test_unknown_hash_then_register_then_hash_only_over_post_and_get(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    headers = auth(token(org=org))
    missing = await client.post("/graphql", json={"extensions": persisted()}, headers=headers)
    assert missing.status_code == 200
    assert missing.json()["errors"] == [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
    registered = await client.post(
        "/graphql", json={"query": QUERY, "extensions": persisted()}, headers=headers
    )
    expected = {"data": {"me": {"organizationId": str(org)}}}
    assert registered.json() == expected
    by_hash = await client.post("/graphql", json={"extensions": persisted()}, headers=headers)
    assert by_hash.json() == expected
    params = {"extensions": json.dumps(persisted()), "operationName": "Me"}
    over_get = await client.get("/graphql", params=params, headers=headers)
    assert over_get.status_code == 200 and over_get.json() == expected


async def test_a_hash_that_does_not_match_its_query_is_refused_and_not_stored(
    client: httpx.AsyncClient,
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    answer = await client.post(
        "/graphql", json={"query": QUERY, "extensions": persisted(wrong)}, headers=auth(token())
    )
    assert answer.json()["errors"][0] == {
        "message": "provided sha does not match query",
        "extensions": {"code": "BAD_USER_INPUT"},
    }
    later = await client.post(
        "/graphql", json={"extensions": persisted(wrong)}, headers=auth(token())
    )
    assert later.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    malformed = await client.post(
        "/graphql", json={"extensions": persisted("nothex")}, headers=auth(token())
    )
    assert malformed.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_the_store_is_bounded_least_recently_used_first_out(mongo_uri: str) -> None:
    queries = [f"query Q{i} {{ me {{ userId }} }}" for i in range(3)]
    digests = [hashlib.sha256(q.encode()).hexdigest() for q in queries]
    async with client_with(mongo_uri, graphql_persisted_queries=2) as http:
        for query, digest in zip(queries, digests, strict=True):
            stored = await http.post(
                "/graphql",
                json={"query": query, "extensions": persisted(digest)},
                headers=auth(token()),
            )
            assert "errors" not in stored.json()
        codes = []
        for digest in digests:
            answer = await http.post(
                "/graphql", json={"extensions": persisted(digest)}, headers=auth(token())
            )
            codes.append((answer.json().get("errors") or [{}])[0].get("extensions", {}).get("code"))
    assert codes == ["PERSISTED_QUERY_NOT_FOUND", None, None]


async def test_a_persisted_mutation_is_not_run_over_get(client: httpx.AsyncClient) -> None:
    mutation = 'mutation M { cancelCampaign(id: "x") { userErrors { code } } }'
    digest = hashlib.sha256(mutation.encode()).hexdigest()
    await client.post(
        "/graphql", json={"query": mutation, "extensions": persisted(digest)}, headers=auth(token())
    )
    over_get = await client.get(
        "/graphql", params={"extensions": json.dumps(persisted(digest))}, headers=auth(token())
    )
    assert over_get.status_code in (400, 405)
