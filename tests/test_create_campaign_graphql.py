"""`createCampaign` over GraphQL: the same service, payload errors, the same campaign."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from tests.support import auth, counts, future, gql, make_contact, token

SEED = json.loads((Path(__file__).parent / "data" / "seed_request.json").read_text())

MUTATION = """
mutation Create($input: CreateCampaignInput!) {
  createCampaign(input: $input) {
    campaign {
      id organizationId name message type status scheduleDate isAutopilot process contactStatus
      userIds failedUserIds
      failedDetails { source index field value code message }
      stats { total sent failed skipped successRate }
      messageStats { encoding segments characters recipientsMissingValues }
      createdBy { id fullName }
      createdAt updatedAt
    }
    userErrors { field code message }
  }
}"""


def seed_as_graphql() -> dict[str, Any]:
    return {
        "name": SEED["name"],
        "message": SEED["message"],
        "newContacts": SEED["newContacts"],
        "selectedExistingContacts": [{"id": c["_id"]} for c in SEED["selectedExistingContacts"]],
        "scheduleDate": future(days=10),
        "isAutopilot": SEED["isAutopilot"],
        "type": "SMS",
    }


async def test_seed_through_graphql_matches_the_rest_campaign(client: httpx.AsyncClient) -> None:
    org, user = ObjectId(), ObjectId()
    for ref in SEED["selectedExistingContacts"]:
        await make_contact(org, ref["phoneNumber"], id=ref["_id"], firstName=ref["firstName"])
    headers = auth(token(org=org, user=user))
    body = await gql(client, MUTATION, {"input": seed_as_graphql()}, headers)
    assert body.get("errors") is None, body
    payload = body["data"]["createCampaign"]
    assert payload["userErrors"] == []
    campaign = payload["campaign"]
    rest = (
        await client.post(
            "/api/campaigns", json={**SEED, "scheduleDate": future(days=10)}, headers=headers
        )
    ).json()["data"]

    assert campaign["status"] == "SCHEDULED" and campaign["type"] == "SMS"
    assert campaign["createdBy"] == {"id": str(user), "fullName": "Alex Rep"}
    assert campaign["stats"] == {
        "total": 3,
        "sent": 0,
        "failed": 0,
        "skipped": 0,
        "successRate": "0%",
    }
    assert sorted(campaign["userIds"]) == sorted(rest["userIds"])
    for key in ("organizationId", "name", "message", "isAutopilot", "failedUserIds"):
        assert campaign[key] == rest[key], key
    assert (await counts("contacts"))["contacts"] == 3


async def test_input_errors_come_back_as_user_errors_with_paths(client: httpx.AsyncClient) -> None:
    variables = {
        "input": {
            "name": " ",
            "message": "Hi {{nope}}",
            "selectedExistingContacts": [{"id": "xyz"}],
        }
    }
    body = await gql(client, MUTATION, variables, auth(token()))
    assert body.get("errors") is None
    payload = body["data"]["createCampaign"]
    assert payload["campaign"] is None
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "name"], "REQUIRED"),
        (["input", "message"], "UNKNOWN_PLACEHOLDER"),
        (["input", "selectedExistingContacts", "0", "id"], "INVALID_ID"),
    ]
    assert await counts("campaigns", "contacts") == {"campaigns": 0, "contacts": 0}


async def test_partial_failures_are_in_failed_details(client: httpx.AsyncClient) -> None:
    variables = {
        "input": {
            "name": "P",
            "message": "Hi {{firstName|there}}",
            "newContacts": [{"phoneNumber": "+14155550101"}, {"phoneNumber": "555"}],
            "userIds": [str(ObjectId())],
        }
    }
    body = await gql(client, MUTATION, variables, auth(token()))
    campaign = body["data"]["createCampaign"]["campaign"]
    assert campaign["stats"]["total"] == 1
    assert [d["code"] for d in campaign["failedDetails"]] == ["INVALID_PHONE", "CONTACT_NOT_FOUND"]
    assert len(campaign["failedUserIds"]) == 1


async def test_unknown_status_is_refused_by_the_schema(client: httpx.AsyncClient) -> None:
    variables = {"input": {"name": "P", "message": "Hi", "status": "SENT"}}
    body = await gql(client, MUTATION, variables, auth(token()))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "SENT" in body["errors"][0]["message"]


async def test_mutation_without_token_is_unauthenticated(client: httpx.AsyncClient) -> None:
    body = await gql(client, MUTATION, {"input": {"name": "P", "message": "Hi"}})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await counts("campaigns"))["campaigns"] == 0


async def test_scheduled_without_recipients_is_a_user_error(client: httpx.AsyncClient) -> None:
    variables = {"input": {"name": "P", "message": "Hi", "status": "SCHEDULED"}}
    body = await gql(client, MUTATION, variables, auth(token()))
    errors = body["data"]["createCampaign"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [(["input", "status"], "NO_RECIPIENTS")]
