"""The suppression list and the opt-out footer (issue 21, compliance on by default).

A suppressed number is never texted: creation leaves it out (`SUPPRESSED` in failedDetails),
the dispatcher re-checks at send time (first messages and follow-ups: `skipped`), and a rep's
message is refused. The footer goes on the first message a contact gets from the organization,
once, decided by a unique insert even with two dispatchers racing.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from models import Contact, Suppression
from services.contacts import suppressions
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from tests.support import (
    FAST,
    Clock,
    Org,
    admin,
    auth,
    gql,
    make_contact,
    phones,
    statuses,
    token,
    until_done,
)

SUPPRESS = """
mutation ($input: SuppressNumbersInput!) {
  suppressNumbers(input: $input) {
    result { added alreadySuppressed failedDetailsTotal
             failedDetails { source index field value code } }
    userErrors { field code }
  }
}"""
UNSUPPRESS = """
mutation ($input: UnsuppressNumbersInput!) {
  unsuppressNumbers(input: $input) {
    result { removed notSuppressed failedDetails { source index code } }
    userErrors { field code }
  }
}"""
LIST = """
query ($first: Int, $after: String, $search: String) {
  suppressedNumbers(first: $first, after: $after, search: $search) {
    edges { node { phoneNumber reason createdAt } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""
FOOTER = "Reply STOP to opt out"
SETTINGS = """
mutation ($input: UpdateOrganizationSettingsInput!) {
  updateOrganizationSettings(input: $input) {
    settings { optOutFooter }
    userErrors { field code }
  }
}"""
PREVIEW = """
query ($message: String!, $contactId: ID!) {
  previewMessage(message: $message, contactId: $contactId) { preview { text segments } }
}"""


async def suppress(org: Org, **values: Any) -> dict[str, Any]:
    body = await gql(org.client, SUPPRESS, {"input": values}, org.headers)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["suppressNumbers"]
    return payload


async def listed(org: Org, **variables: Any) -> dict[str, Any]:
    body = await gql(org.client, LIST, variables, org.headers)
    assert "errors" not in body, body
    page: dict[str, Any] = body["data"]["suppressedNumbers"]
    return page


def numbers(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["phoneNumber"] for edge in page["edges"]]


async def test_numbers_are_imported_normalised_and_bad_ones_reported_per_entry(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    csv = "Name,Mobile\nAna,(415) 555-0103\nBo,not a phone\n\nCy,+1 415 555 0104\n"
    payload = await suppress(
        org,
        phoneNumbers=["+14155550101", "415-555-0102", "12", "+14155550101"],
        csv=csv,
        reason="Do not contact list",
    )
    assert payload["userErrors"] == []
    result = payload["result"]
    assert (result["added"], result["alreadySuppressed"], result["failedDetailsTotal"]) == (4, 0, 2)
    assert result["failedDetails"] == [
        {"source": "phoneNumbers", "index": 2, "field": "phoneNumber", "value": "12",
         "code": "INVALID_PHONE"},
        {"source": "csv", "index": 3, "field": None, "value": "not a phone",
         "code": "INVALID_PHONE"},
    ]  # fmt: skip
    again = await suppress(org, csv="+14155550101\n+14155550105")  # no header: first column
    assert (again["result"]["added"], again["result"]["alreadySuppressed"]) == (1, 1)

    page = await listed(org, first=2)
    assert numbers(page) == ["+14155550101", "+14155550102"]
    assert page["totalCount"] == 5 and page["pageInfo"]["hasNextPage"]
    assert page["edges"][0]["node"]["reason"] == "Do not contact list"
    rest = await listed(org, first=10, after=page["pageInfo"]["endCursor"])
    assert numbers(rest) == ["+14155550103", "+14155550104", "+14155550105"]
    assert not rest["pageInfo"]["hasNextPage"]
    found = await listed(org, search="1 (415) 555-0104")
    assert numbers(found) == ["+14155550104"] and found["totalCount"] == 1
    absent = await listed(org, search="+14155550199")  # a whole number: read by its key
    assert numbers(absent) == [] and absent["totalCount"] == 0

    # REST: the same list and the same service
    answer = await client.get("/api/suppressions?limit=3&search=%2B1415", headers=org.headers)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert [row["phoneNumber"] for row in data["data"]] == [*numbers(page), "+14155550103"]
    assert data["data"][0]["createdAt"].endswith("Z") and data["pagination"]["hasMore"]
    answer = await client.request(
        "DELETE",
        "/api/suppressions",
        json={"phoneNumbers": ["(415) 555-0101", "+14155550199", "x"]},
        headers=org.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {
        "removed": 1,
        "notSuppressed": 1,
        "failedDetails": [
            {"source": "phoneNumbers", "index": 2, "field": "phoneNumber", "value": "x",
             "code": "INVALID_PHONE", "message": "'x' is not a phone number"},
        ],
        "failedDetailsTotal": 1,
    }  # fmt: skip
    body = await gql(client, UNSUPPRESS, {"input": {"phoneNumbers": ["+14155550102"]}}, org.headers)
    assert body["data"]["unsuppressNumbers"]["result"]["removed"] == 1
    assert numbers(await listed(org)) == ["+14155550103", "+14155550104", "+14155550105"]


async def test_another_organizations_list_does_not_exist_here(client: httpx.AsyncClient) -> None:
    mine, theirs = Org(client), Org(client)
    await suppress(mine, phoneNumbers=["+14155550101", "+14155550102"])
    page = await listed(mine, first=1)
    assert (await listed(theirs))["edges"] == [] and (await listed(theirs))["totalCount"] == 0
    # my cursor names my organization: theirs refuses it rather than paging my list
    body = await gql(client, LIST, {"after": page["pageInfo"]["endCursor"]}, theirs.headers)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    answer = await client.get(
        f"/api/suppressions?after={page['pageInfo']['endCursor']}", headers=theirs.headers
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "INVALID_CURSOR"
    body = await gql(
        client, UNSUPPRESS, {"input": {"phoneNumbers": ["+14155550101"]}}, theirs.headers
    )
    assert body["data"]["unsuppressNumbers"]["result"] == {
        "removed": 0, "notSuppressed": 1, "failedDetails": []
    }  # fmt: skip
    again = await suppress(theirs, phoneNumbers=["+14155550101"])  # their own document
    assert again["result"]["added"] == 1
    assert (await listed(mine))["totalCount"] == 2


async def test_bad_input_gets_the_same_codes_and_fields_from_both_apis(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    cases: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
        ("suppress", {}, [("phoneNumbers", "REQUIRED")]),
        ("suppress", {"phoneNumbers": [], "csv": "  "}, [("phoneNumbers", "REQUIRED")]),
        ("suppress", {"phoneNumbers": ["+14155550101"], "reason": "r" * 201},
         [("reason", "TOO_LONG")]),
        ("suppress", {"phoneNumbers": "+14155550101", "csv": 5}, [("csv", "INVALID_TYPE")]),
        ("unsuppress", {"phoneNumbers": []}, [("phoneNumbers", "REQUIRED")]),
    ]  # fmt: skip
    for kind, values, expected in cases:
        method = "POST" if kind == "suppress" else "DELETE"
        answer = await client.request(method, "/api/suppressions", json=values, headers=org.headers)
        assert answer.status_code == 400, (values, answer.text)
        rest = [(e["field"], e["code"]) for e in answer.json()["errors"]]
        query = SUPPRESS if kind == "suppress" else UNSUPPRESS
        body = await gql(client, query, {"input": values}, org.headers)
        if "errors" in body:  # GraphQL's own type check, before any resolver
            found = [u for e in body["errors"] for u in e["extensions"]["userErrors"]]
            graphql = [(".".join(u["field"][1:]), u["code"]) for u in found]
        else:
            payload = body["data"][f"{kind}Numbers"]
            graphql = [(".".join(e["field"][1:]), e["code"]) for e in payload["userErrors"]]
        assert rest == graphql == expected, (values, rest, graphql)
    for first in (0, 101):
        body = await gql(client, LIST, {"first": first}, org.headers)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        answer = await client.get(f"/api/suppressions?limit={first}", headers=org.headers)
        assert answer.json()["errors"][0]["code"] == "INVALID_PAGE_SIZE"
    assert (await suppress(org, phoneNumbers=["bad"]))["result"]["added"] == 0  # never a 500


async def test_a_list_at_the_limit_imports_in_one_request_and_one_more_is_refused(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At most `MAX_NUMBERS` numbers per request: a list at the limit goes in whole, one
    more is refused before anything is stored. Shown at a limit just over one insert command
    (`INSERT_CHUNK`), so the import takes two; at the default limit, a full list's body
    reaches the count (the refusal is the count's, not the body size's)."""
    org = Org(client)
    limit = suppressions.INSERT_CHUNK + 2000
    monkeypatch.setattr(suppressions, "MAX_NUMBERS", limit)
    csv = "phone\n" + "".join(f"+1212{2000000 + i:07d}\n" for i in range(limit))
    answer = await client.post("/api/suppressions", json={"csv": csv}, headers=org.headers)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.json()["data"]["added"] == limit
    collection = Suppression.get_pymongo_collection()
    assert await collection.count_documents({"organizationId": org.id}) == limit
    other = Org(client)
    one_more = csv + f"+1212{2000000 + limit:07d}\n"
    answer = await client.post("/api/suppressions", json={"csv": one_more}, headers=other.headers)
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "TOO_MANY_NUMBERS"
    assert await collection.count_documents({"organizationId": other.id}) == 0
    monkeypatch.undo()
    too_many = "\n".join(["+12122000000"] * (suppressions.MAX_NUMBERS + 1))
    answer = await client.post("/api/suppressions", json={"csv": too_many}, headers=other.headers)
    assert answer.status_code == 413
    assert answer.json()["errors"][0]["code"] == "TOO_MANY_NUMBERS"


async def test_creation_leaves_suppressed_recipients_out_and_says_why(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    existing = await make_contact(org.id, "+12122000005", firstName="Ed")
    await suppress(org, phoneNumbers=["+12122000001", "+12122000005"])
    body = {
        "name": "Spring",
        "message": "Hi {{firstName|there}}",
        "newContacts": phones(3),
        "selectedExistingContacts": [{"_id": str(existing.id)}],
    }
    answer = await client.post("/api/campaigns", json=body, headers=org.headers)
    assert answer.status_code == 201, answer.text
    data = answer.json()["data"]
    assert data["stats"]["total"] == 2
    assert [(d["source"], d["index"], d["code"]) for d in data["failedDetails"]] == [
        ("newContacts", 1, "SUPPRESSED"),
        ("selectedExistingContacts", 0, "SUPPRESSED"),
    ]
    other = Org(client)  # another organization's list changes nothing here
    answer = await client.post("/api/campaigns", json=body | {"selectedExistingContacts": []},
                               headers=other.headers)  # fmt: skip
    assert answer.json()["data"]["stats"]["total"] == 3


async def test_the_dispatcher_skips_a_number_suppressed_after_creation(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    campaign_id = await org.create(5)
    await suppress(org, phoneNumbers=[phones(1, 2)[0]["phoneNumber"]])
    await org.mutate("sendCampaignNow", campaign_id)
    ledger = tmp_path / "ledger.jsonl"
    done = await until_done(org, campaign_id, Dispatcher(SimulatedProvider(ledger), FAST))
    assert (done["stats"]["sent"], done["stats"]["skipped"]) == (4, 1)
    assert phones(1, 2)[0]["phoneNumber"] not in {e["to"] for e in read_ledger(ledger)}
    answer = await client.get(f"/api/campaigns/{campaign_id}/failures", headers=org.headers)
    assert [(f["code"], f["retryable"], f["count"]) for f in answer.json()["data"]] == [
        ("SUPPRESSED", False, 1)
    ]


async def test_follow_ups_and_reps_messages_respect_the_list(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    cadence = [{"delayMinutes": 60, "message": "Still there?"}]
    campaign_id = await org.create(3, followUps=cadence, isAutopilot=True)
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(datetime.now(UTC))
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()
    assert len(read_ledger(ledger)) == 3
    late = phones(1, 1)[0]["phoneNumber"]
    await suppress(org, phoneNumbers=[late])
    clock.advance(timedelta(minutes=61))
    await until_done(org, campaign_id, dispatcher)
    step = [e for e in read_ledger(ledger) if e["key"].endswith(":1")]
    assert sorted(e["to"] for e in step) == sorted(
        p["phoneNumber"] for i, p in enumerate(phones(3)) if i != 1
    )
    assert all(e["body"] == "Still there?" for e in step)  # not their first message: no footer
    stats = (await org.campaign(campaign_id))["followUpStats"][0]
    assert (stats["sent"], stats["skipped"]) == (2, 1)

    contact_id = (await make_contact(org.id, "+14155550177")).id
    await suppress(org, phoneNumbers=["+14155550177"])
    answer = await client.post(
        f"/api/contacts/{contact_id}/messages",
        json={"body": "Hi"},
        headers={"Idempotency-Key": "k1", **org.headers},
    )
    assert answer.status_code == 409
    assert [(e["field"], e["code"]) for e in answer.json()["errors"]] == [
        ("contactId", "SUPPRESSED")
    ]


async def test_the_footer_goes_on_a_contacts_first_message_only(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    ledger = tmp_path / "ledger.jsonl"
    first = await org.create(3)
    second = await org.create(4)  # three of the same contacts, and a new one
    stop = await org.create(5, start=4, message="Hi {{firstName|there}}, reply stop to end")
    for campaign_id in (first, second, stop):
        await org.mutate("sendCampaignNow", campaign_id)
    # two dispatchers race over three campaigns to the same contacts
    one = Dispatcher(SimulatedProvider(ledger), FAST)
    two = Dispatcher(SimulatedProvider(ledger), FAST)
    await asyncio.gather(*(until_done(org, c, one, two) for c in (first, second, stop)))
    footers: dict[str, int] = {}
    for entry in read_ledger(ledger):
        footers[entry["to"]] = footers.get(entry["to"], 0) + entry["body"].endswith(FOOTER)
    assert footers == {p["phoneNumber"]: 1 for p in phones(4)} | {
        p["phoneNumber"]: 0 for p in phones(5, 4)
    }  # the stop template's own contacts got its words, not the footer
    rows = await org.tenant().raw_find(Contact, {"phoneNumber": {"$in": [
        phones(1)[0]["phoneNumber"], "+14155550160"]}}).to_list()  # fmt: skip
    reached = next(r for r in rows if r["phoneNumber"] == phones(1)[0]["phoneNumber"])
    fresh = await make_contact(org.id, "+14155550160")
    for contact_id, expected in ((reached["_id"], "Hi"), (fresh.id, f"Hi\n{FOOTER}")):
        answer = await client.post(
            f"/api/contacts/{contact_id}/messages",
            json={"body": "Hi"},
            headers={"Idempotency-Key": f"k-{contact_id}", **org.headers},
        )
        assert answer.json()["data"]["body"] == expected  # a rep's first message has it too

    contact_id = (await make_contact(org.id, "+14155550170", firstName="Al")).id
    variables = {"message": "Hi {{firstName}}", "contactId": str(contact_id)}
    body = await gql(client, PREVIEW, variables, org.headers)
    assert body["data"]["previewMessage"]["preview"]["text"] == f"Hi Al\n{FOOTER}"
    body = await gql(client, PREVIEW, variables | {"message": "Text STOP to quit"}, org.headers)
    assert body["data"]["previewMessage"]["preview"]["text"] == "Text STOP to quit"


async def test_the_footer_is_an_admins_setting_and_empty_turns_it_off(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    body = await gql(client, SETTINGS, {"input": {"optOutFooter": "Txt STOP"}}, org.headers)
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    body = await gql(client, SETTINGS, {"input": {"optOutFooter": "x" * 121}}, admin(org))
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == [
        {"field": ["input", "optOutFooter"], "code": "TOO_LONG"}
    ]
    body = await gql(client, SETTINGS, {"input": {"optOutFooter": ""}}, admin(org))
    assert body["data"]["updateOrganizationSettings"]["settings"] == {"optOutFooter": ""}
    answer = await client.post(
        "/api/campaigns",
        json={"name": "n", "message": "Hi {{firstName}}", "newContacts": phones(1)},
        headers=org.headers,
    )
    assert answer.json()["data"]["messageStats"]["characters"] == len("Hi P0")
    campaign_id = str(answer.json()["data"]["_id"])
    await org.mutate("sendCampaignNow", campaign_id)
    ledger = tmp_path / "ledger.jsonl"
    await until_done(org, campaign_id, Dispatcher(SimulatedProvider(ledger), FAST))
    assert [e["body"] for e in read_ledger(ledger)] == ["Hi P0"]
    assert (await statuses(org, campaign_id)) == {"sent": 1}
    other = auth(token(org=ObjectId(), roles=["admin"]))  # another organization keeps its own
    body = await gql(client, "{ organizationSettings { optOutFooter } }", None, other)
    assert body["data"]["organizationSettings"]["optOutFooter"] == FOOTER


async def test_a_suppressed_recipient_takes_no_frequency_cap_send(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    body = await gql(client, SETTINGS, {"input": {"frequencyCap": 1}}, admin(org))
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == []
    number = phones(1)[0]["phoneNumber"]
    ledger = tmp_path / "ledger.jsonl"
    dispatcher = Dispatcher(SimulatedProvider(ledger), FAST)
    first = await org.create(1)
    await suppress(org, phoneNumbers=[number])  # after creation: left out at send time
    await org.mutate("sendCampaignNow", first)
    assert (await until_done(org, first, dispatcher))["stats"]["skipped"] == 1
    await gql(client, UNSUPPRESS, {"input": {"phoneNumbers": [number]}}, org.headers)
    second = await org.create(1)
    await org.mutate("sendCampaignNow", second)
    assert (await until_done(org, second, dispatcher))["stats"]["sent"] == 1  # not capped
