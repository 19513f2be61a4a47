"""Rules the two APIs share give the same answer whichever API (or path) applies them."""

from __future__ import annotations

import httpx
import pytest
from bson import ObjectId

from tests.support import auth, campaign_body, make_contact, token


@pytest.mark.parametrize(
    ("rest_path", "graphql_query"),
    [
        ("/api/contacts?limit=101", "{ contacts(first: 101) { totalCount } }"),
        ("/api/campaigns?limit=0", "{ campaigns(first: 0) { totalCount } }"),
    ],
)
async def test_a_page_size_out_of_range_gets_one_code_from_both_apis(
    client: httpx.AsyncClient, rest_path: str, graphql_query: str
) -> None:
    headers = auth(token(org=ObjectId()))
    rest = await client.get(rest_path, headers=headers)
    assert rest.status_code == 400
    assert [e["code"] for e in rest.json()["errors"]] == ["INVALID_PAGE_SIZE"]
    graphql = await client.post("/graphql", json={"query": graphql_query}, headers=headers)
    (error,) = graphql.json()["errors"]
    assert [e["code"] for e in error["extensions"]["userErrors"]] == ["INVALID_PAGE_SIZE"]


async def test_a_replayed_creation_lists_user_ids_in_recipient_order(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()
    high, low = ObjectId("ffffffffffffffffffffff01"), ObjectId("000000000000000000000001")
    await make_contact(org, "+14155550111", id=high)
    await make_contact(org, "+14155550112", id=low)
    headers = {**auth(token(org=org)), "Idempotency-Key": "order-1"}
    body = campaign_body(newContacts=[], userIds=[str(high), str(low)])
    first = await client.post("/api/campaigns", json=body, headers=headers)
    replay = await client.post("/api/campaigns", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert first.json()["data"]["userIds"] == [str(high), str(low)]
    assert replay.json() == first.json()
