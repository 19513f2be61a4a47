"""The same bad input gets the same answer from REST and GraphQL.

Every case of the creation bad-input catalogue goes through both APIs: the outcome (refused
or created), the error codes and their field paths must agree, and a refusal must write
nothing. GraphQL's type system refuses some inputs before a resolver runs; those errors carry
the same codes and paths in `extensions.userErrors`, which this test reads like a payload's
`userErrors`. REST spells paths dotted (`newContacts.0.phoneNumber`), GraphQL as a list under
`input`; REST's `_id` is GraphQL's `id`.

Left out on purpose, as GraphQL itself defines them: a single object where a list is expected
(GraphQL coerces it to a one-item list), `status: ""` (REST reads it as "not given"; GraphQL
has `null` for that and an enum cannot be empty), and body-size limits (the HTTP layer's).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from bson import ObjectId

from tests.support import auth, campaign_body, client_with, counts, token

MUTATION = """
mutation Create($input: CreateCampaignInput!) {
  createCampaign(input: $input) {
    campaign { id stats { total } failedDetails { source code } }
    userErrors { field code message }
  }
}
"""

UNKNOWN_ID = str(ObjectId())
PHONES = [{"phoneNumber": f"+1415555010{i}"} for i in range(6)]

CATALOGUE: dict[str, dict[str, Any]] = {
    "missing name": campaign_body(name=...),
    "null name": campaign_body(name=None),
    "blank name": campaign_body(name="   "),
    "missing message": campaign_body(message=...),
    "blank message": campaign_body(message=" \n "),
    "boolean as a string": campaign_body(isAutopilot="yes"),
    "date as a word": campaign_body(scheduleDate="tomorrow"),
    "impossible date": campaign_body(scheduleDate="2026-13-40T00:00:00Z"),
    "date in another format": campaign_body(scheduleDate="20/05/2027 15:00"),
    "date without a zone": campaign_body(scheduleDate="2099-05-20T15:00:00"),
    "date in the past": campaign_body(scheduleDate="2026-05-20T15:00:00.000Z"),
    "status sent": campaign_body(status="sent"),
    "status completed": campaign_body(status="completed"),
    "type email": campaign_body(type="email"),
    "unknown placeholders": campaign_body(message="Hi {{fristName}} {{company}}"),
    "rendering over 1600 characters": campaign_body(
        message="x" * 1590 + " {{firstName}}",
        newContacts=[{"firstName": "Alexandra!", "phoneNumber": "+14155550101"}],
    ),
    "template over 10 segments for anyone": campaign_body(message="x" * 1530 + " {{firstName}}"),
    "331 emoji": campaign_body(message="\U0001f600" * 331),
    "template over 6400 characters": campaign_body(message="{{ " * 3000),
    "malformed ids": campaign_body(userIds=["abc"], selectedExistingContacts=[{"_id": "abc"}]),
    "operator objects as ids": campaign_body(userIds=[{"$gt": ""}]),
    "operator object in a segment": campaign_body(
        segmentation={"contactStatus": [{"$regex": ".*"}]}
    ),
    "a segment of 101 tags": campaign_body(segmentation={"tags": [f"t{i}" for i in range(101)]}),
    "a segment of 101 tags and a blank name": campaign_body(
        name=" ", segmentation={"tags": [f"t{i}" for i in range(101)]}
    ),
    "too many follow-ups": campaign_body(
        followUps=[{"delayMinutes": 60, "message": "Again?"}] * 6, isAutopilot=True
    ),
    "follow-up delays out of range": campaign_body(
        followUps=[{"delayMinutes": 0, "message": "Hi"}, {"delayMinutes": 43_201, "message": "Hi"}]
    ),
    "follow-up with a bad template": campaign_body(
        followUps=[
            {"delayMinutes": 60, "message": "Ok"},
            {"delayMinutes": 60, "message": "{{nope}}"},
        ]
    ),
    "follow-up delay as a string": campaign_body(
        followUps=[{"delayMinutes": "60", "message": "Hi"}]
    ),
    "follow-up without a message": campaign_body(followUps=[{"delayMinutes": 60}]),
    "CSV without a phone column": campaign_body(
        rawCsvData={"csv": "First Name,Email\nAna,a@x.io\n"}
    ),
    "CSV mapping to a missing header": campaign_body(
        rawCsvData={"csv": "Name,Tel\nAna,+14155550101\n", "columns": {"phoneNumber": "Phone"}}
    ),
    "scheduled with no valid recipient": campaign_body(
        newContacts=[{"phoneNumber": "12"}], userIds=[UNKNOWN_ID]
    ),
    "more recipients than allowed": campaign_body(newContacts=PHONES),
    "unknown consent source": campaign_body(consent={"consentSource": "sms"}),
    "consent in the future": campaign_body(consent={"consentAt": "2090-01-01T00:00:00Z"}),
    # Partial failures: created, with the bad parts in failedDetails.
    "new contact without a phone": campaign_body(
        newContacts=[{"firstName": "Ana"}, {"phoneNumber": "+14155550101"}]
    ),
    "invalid phone in a draft": campaign_body(status="draft", newContacts=[{"phoneNumber": "12"}]),
    "unknown contact id": campaign_body(userIds=[UNKNOWN_ID]),
    "contact whose message is over 10 segments": campaign_body(
        message="x" * 1500 + " {{firstName}}",
        newContacts=[
            {"firstName": "Al", "phoneNumber": "+14155550101"},
            {"firstName": "B" * 60, "phoneNumber": "+14155550102"},
        ],
    ),
    "contact missing a placeholder value": campaign_body(
        message="Hi {{firstName}}",
        newContacts=[
            {"phoneNumber": "+14155550101"},
            {"firstName": "Bo", "phoneNumber": "+14155550102"},
        ],
    ),
}


def graphql_input(body: dict[str, Any]) -> dict[str, Any]:
    """The same request in GraphQL's spelling: `id` for `_id`, enum names for status and type."""
    data = copy.deepcopy(body)
    for ref in data.get("selectedExistingContacts") or []:
        if isinstance(ref, dict) and "_id" in ref:
            ref["id"] = ref.pop("_id")
    for name in ("status", "type"):
        if isinstance(data.get(name), str):
            data[name] = data[name].upper()
    return data


Outcome = tuple[str, list[tuple[str, str]]]


async def via_rest(http: httpx.AsyncClient, body: dict[str, Any], org: ObjectId) -> Outcome:
    response = await http.post("/api/campaigns", json=body, headers=auth(token(org=org)))
    envelope = response.json()
    if response.status_code == 201:
        data = envelope["data"]
        return "created", _details(data["failedDetails"], data["stats"]["total"])
    assert response.status_code in (400, 413), response.text
    return "refused", sorted((_rest_path(e["field"]), e["code"]) for e in envelope["errors"])


async def via_graphql(http: httpx.AsyncClient, body: dict[str, Any], org: ObjectId) -> Outcome:
    response = await http.post(
        "/graphql",
        json={"query": MUTATION, "variables": {"input": graphql_input(body)}},
        headers=auth(token(org=org)),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    if answer.get("errors"):
        assert all(e["extensions"]["code"] == "BAD_USER_INPUT" for e in answer["errors"])
        found = [u for e in answer["errors"] for u in e["extensions"]["userErrors"]]
        return "refused", sorted((_graphql_path(u["field"]), u["code"]) for u in found)
    payload = answer["data"]["createCampaign"]
    if payload["campaign"] is None:
        errors = payload["userErrors"]
        return "refused", sorted((_graphql_path(u["field"]), u["code"]) for u in errors)
    assert payload["userErrors"] == []
    campaign = payload["campaign"]
    return "created", _details(campaign["failedDetails"], campaign["stats"]["total"])


def _details(failed: list[dict[str, Any]], total: int) -> list[tuple[str, str]]:
    return sorted([(d["source"], d["code"]) for d in failed] + [("total", str(total))])


def _rest_path(dotted: str) -> str:
    return dotted.replace("._id", ".id")


def _graphql_path(field: list[str]) -> str:
    assert field[0] == "input", field
    return ".".join(field[1:]) or "body"


@pytest.mark.parametrize("case", list(CATALOGUE))
async def test_both_apis_answer_alike(mongo_uri: str, case: str) -> None:
    body = CATALOGUE[case]
    nothing = {"campaigns": 0, "contacts": 0, "recipients": 0}
    async with client_with(mongo_uri, max_recipients=5) as http:
        rest = await via_rest(http, body, ObjectId())
        before = await counts("campaigns", "contacts", "recipients")
        if rest[0] == "refused":
            assert before == nothing
        graphql = await via_graphql(http, body, ObjectId())
        if graphql[0] == "refused":
            assert await counts("campaigns", "contacts", "recipients") == before
    assert rest[1], "every case reports something"
    assert graphql == rest


async def test_a_segment_over_its_limit_is_reported_with_the_other_errors(mongo_uri: str) -> None:
    body = CATALOGUE["a segment of 101 tags and a blank name"]
    async with client_with(mongo_uri) as http:
        outcome = await via_rest(http, body, ObjectId())
    assert outcome == ("refused", [("name", "REQUIRED"), ("segmentation.tags", "TOO_MANY")])


def test_the_catalogue_has_both_outcomes() -> None:
    partial = {"new contact without a phone", "unknown contact id", "invalid phone in a draft"}
    assert partial <= set(CATALOGUE) and "missing name" in CATALOGUE
