"""Retries with an idempotency key replay the first result instead of creating again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from models import Campaign, IdempotencyRecord
from services.storage.tenancy import Tenant
from tests.support import auth, counts, future, gql, principal, token
from tests.support import campaign_body as body

ORG = ObjectId()
BODY: dict[str, Any] = {
    "name": "Retry-safe",
    "message": "Hi {{firstName|there}}",
    "newContacts": [{"firstName": "Ana", "phoneNumber": "+14155550101"}],
    "scheduleDate": future(),
}


def headers(key: str, org: ObjectId = ORG) -> dict[str, str]:
    return {**auth(token(org=org)), "Idempotency-Key": key}


async def test_retry_with_same_key_and_body_replays_the_first_response(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/campaigns", json=BODY, headers=headers("k-1"))
    again = await client.post("/api/campaigns", json=BODY, headers=headers("k-1"))
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert await counts("campaigns", "recipients") == {"campaigns": 1, "recipients": 1}


async def test_concurrent_requests_with_one_key_create_one_campaign(
    client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(client.post("/api/campaigns", json=BODY, headers=headers("k-race")) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5
    assert len({r.json()["data"]["_id"] for r in responses}) == 1
    assert (await counts("campaigns"))["campaigns"] == 1


async def test_same_key_with_a_different_body_is_a_conflict(client: httpx.AsyncClient) -> None:
    await client.post("/api/campaigns", json=BODY, headers=headers("k-2"))
    other = await client.post(
        "/api/campaigns", json={**BODY, "name": "Other"}, headers=headers("k-2")
    )
    assert other.status_code == 409
    assert other.json() == {
        "success": False,
        "message": "This idempotency key was already used with a different request",
        "errors": [
            {
                "field": "Idempotency-Key",
                "code": "IDEMPOTENCY_KEY_REUSED",
                "message": "Use a new key for a different request",
            }
        ],
    }
    assert (await counts("campaigns"))["campaigns"] == 1


async def test_keys_are_scoped_to_the_organization(client: httpx.AsyncClient) -> None:
    a = await client.post("/api/campaigns", json=BODY, headers=headers("shared", ObjectId()))
    b = await client.post("/api/campaigns", json=BODY, headers=headers("shared", ObjectId()))
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["data"]["_id"] != b.json()["data"]["_id"]


async def test_a_refused_request_does_not_burn_its_key(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/api/campaigns", json={**BODY, "scheduleDate": "2020-01-01T00:00Z"}, headers=headers("k-3")
    )
    assert bad.status_code == 400
    fixed = await client.post(
        "/api/campaigns", json={**BODY, "scheduleDate": "2020-01-01T00:00Z"}, headers=headers("k-3")
    )
    assert fixed.status_code == 400  # the same body is checked again, not replayed as 409
    assert (await counts("idempotency_keys"))["idempotency_keys"] == 0


MUTATION = """
mutation Create($input: CreateCampaignInput!) {
  createCampaign(input: $input) { campaign { id stats { total } } userErrors { field code } }
}"""


async def test_graphql_idempotency_key_replays_the_same_campaign(
    client: httpx.AsyncClient,
) -> None:
    variables = {
        "input": {
            "name": "G",
            "message": "Hi",
            "idempotencyKey": "g-1",
            "newContacts": [{"phoneNumber": "+14155550101"}],
        }
    }
    first = await gql(client, MUTATION, variables, auth(token(org=ORG)))
    again = await gql(client, MUTATION, variables, auth(token(org=ORG)))
    assert (
        first["data"]["createCampaign"]["campaign"]["id"]
        == again["data"]["createCampaign"]["campaign"]["id"]
    )
    assert (await counts("campaigns"))["campaigns"] == 1


async def test_records_past_retention_are_purged_and_fresh_ones_kept(
    client: httpx.AsyncClient,
) -> None:
    from datetime import timedelta

    from models import IdempotencyRecord
    from models.base import utcnow
    from services.storage.idempotency import purge_expired

    other = ObjectId()  # the purge runs organization by organization: both are covered
    await client.post("/api/campaigns", json=BODY, headers=headers("old"))
    await client.post("/api/campaigns", json=BODY, headers=headers("old", other))
    await client.post("/api/campaigns", json=BODY, headers=headers("new", other))
    collection = IdempotencyRecord.get_pymongo_collection()
    long_ago = utcnow() - timedelta(days=2)
    await collection.update_many({"key": "old"}, {"$set": {"updatedAt": long_ago}})

    assert await purge_expired(retention=timedelta(days=1)) == 2
    assert [r["key"] async for r in collection.find({}, {"key": 1})] == ["new"]


# Odd keys, and requests that crashed while holding their key.

FIXED = future(days=40)


async def post(http: httpx.AsyncClient, payload: Any, key: str | None = None) -> httpx.Response:
    request_headers = headers(key) if key is not None else auth(token(org=ORG))
    return await http.post("/api/campaigns", json=payload, headers=request_headers)


@pytest.mark.parametrize("key", ["x" * 1000])
async def test_overlong_idempotency_key_is_a_field_error(
    client: httpx.AsyncClient, key: str
) -> None:
    response = await post(client, body(), key=key)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"  # REST names the header


async def test_empty_idempotency_key_is_ignored(client: httpx.AsyncClient) -> None:
    response = await post(client, body(), key=" ")
    assert response.status_code == 201


async def _stale_reservation(key: str, campaign_id: ObjectId) -> None:
    tenant = Tenant(principal(ORG))
    from services.inputs import parse_input
    from services.storage.idempotency import request_hash

    record = IdempotencyRecord(
        organizationId=ORG,
        scope="createCampaign",
        key=key,
        requestHash=request_hash(parse_input(body(scheduleDate=FIXED)).fingerprint_source()),
        result={"campaignId": str(campaign_id)},
        leaseUntil=tenant.now() - timedelta(minutes=5),
    )
    await tenant.insert(record)


async def test_key_of_a_crashed_request_is_taken_over(client: httpx.AsyncClient) -> None:
    planned = ObjectId()
    await _stale_reservation("crashed", planned)
    response = await post(client, body(scheduleDate=FIXED), key="crashed")
    assert response.status_code == 201, response.text
    assert response.json()["data"]["_id"] == str(planned)
    again = await post(client, body(scheduleDate=FIXED), key="crashed")
    assert again.json()["data"]["_id"] == str(planned)
    assert (await counts("campaigns"))["campaigns"] == 1


async def test_crash_after_the_campaign_landed_replays_it(client: httpx.AsyncClient) -> None:
    first = await post(client, body(scheduleDate=FIXED))
    landed = ObjectId(first.json()["data"]["_id"])
    await _stale_reservation("landed", landed)
    response = await post(client, body(scheduleDate=FIXED), key="landed")
    assert response.json()["data"]["_id"] == str(landed)
    assert await Campaign.find_all().count() == 1


async def test_racing_retries_of_a_crashed_request_create_one_campaign(
    client: httpx.AsyncClient,
) -> None:
    planned = ObjectId()
    await _stale_reservation("crashed-race", planned)
    responses = await asyncio.gather(
        *(post(client, body(scheduleDate=FIXED), key="crashed-race") for _ in range(5))
    )
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    assert {r.json()["data"]["_id"] for r in responses} == {str(planned)}
    assert await counts("campaigns", "recipients") == {"campaigns": 1, "recipients": 1}
