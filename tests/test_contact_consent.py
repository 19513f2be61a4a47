"""Each contact records where its consent came from, when, and a reference to the proof, set
through either API or by how the contact came in, and shown by both APIs and the export."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
from bson import ObjectId

from services.conversations.inbound import contact_for
from services.storage.tenancy import Tenant
from tests.support import Org, auth, campaign_body, gql, token

CREATE = """
mutation($input: CreateContactInput!) {
  createContact(input: $input) {
    contact { id consentSource consentAt consentFile }
    userErrors { field code }
  }
}
"""
UPDATE = """
mutation($id: ID!, $input: UpdateContactInput!) {
  updateContact(id: $id, input: $input) {
    contact { consentSource consentAt consentFile }
    userErrors { field code }
  }
}
"""


async def rest_contact(client: httpx.AsyncClient, org: Org, contact_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/contacts/{contact_id}", headers=org.headers)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


async def test_consent_set_in_graphql_shows_in_rest(client: httpx.AsyncClient) -> None:
    org = Org(client)
    given = {
        "phoneNumber": "+14155550101",
        "consentSource": "FORM",
        "consentAt": "2026-01-02T03:04:05Z",
        "consentFile": "signup-form-17",
    }

    body = await gql(client, CREATE, {"input": given}, org.headers)

    created = body["data"]["createContact"]
    assert created["userErrors"] == []
    assert created["contact"]["consentSource"] == "FORM"
    shown = await rest_contact(client, org, created["contact"]["id"])
    assert (shown["consentSource"], shown["consentFile"]) == ("form", "signup-form-17")
    assert shown["consentAt"].startswith("2026-01-02T03:04:05")


async def test_a_contact_typed_in_without_consent_records_manual_now(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)

    answer = await client.post(
        "/api/contacts", json={"phoneNumber": "+14155550102"}, headers=org.headers
    )

    data = answer.json()["data"]
    assert (data["consentSource"], data["consentFile"]) == ("manual", None)
    assert data["consentAt"] is not None


async def test_consent_edited_in_rest_shows_in_graphql(client: httpx.AsyncClient) -> None:
    org = Org(client)
    created = await client.post(
        "/api/contacts", json={"phoneNumber": "+14155550103"}, headers=org.headers
    )
    contact_id = created.json()["data"]["_id"]

    changed = await client.patch(
        f"/api/contacts/{contact_id}",
        json={"consentSource": "Import", "consentFile": "spring.csv"},
        headers=org.headers,
    )
    cleared = await gql(
        client, UPDATE, {"id": contact_id, "input": {"consentSource": None}}, org.headers
    )

    assert changed.status_code == 200, changed.text
    assert (changed.json()["data"]["consentSource"], changed.json()["data"]["consentFile"]) == (
        "import",
        "spring.csv",
    )
    assert cleared["data"]["updateContact"]["contact"] == {
        "consentSource": None,
        "consentAt": None,
        "consentFile": None,
    }


async def test_bad_consent_is_refused_with_the_same_codes_in_both_apis(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    bad = {"phoneNumber": "+14155550104", "consentAt": "2090-01-01T00:00:00Z"}

    rest = await client.post(
        "/api/contacts", json={**bad, "consentSource": "sms"}, headers=org.headers
    )
    graphql = await gql(client, CREATE, {"input": bad}, org.headers)
    graphql_enum = await gql(
        client, CREATE, {"input": {**bad, "consentSource": "SMS"}}, org.headers
    )

    assert rest.status_code == 400
    assert {(e["field"], e["code"]) for e in rest.json()["errors"]} == {
        ("consentSource", "INVALID_CONSENT_SOURCE"),
        ("consentAt", "DATE_IN_FUTURE"),
    }
    assert graphql["data"]["createContact"]["userErrors"] == [
        {"field": ["input", "consentAt"], "code": "DATE_IN_FUTURE"}
    ]
    [error] = graphql_enum["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    codes = {e["code"] for e in error["extensions"]["userErrors"]}
    assert codes == {"INVALID_CONSENT_SOURCE"}


async def test_a_campaign_import_records_the_consent_of_the_contacts_it_creates(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    existing = await client.post(
        "/api/contacts",
        json={"phoneNumber": "+14155550110", "consentSource": "form"},
        headers=org.headers,
    )
    assert existing.status_code == 201
    body = campaign_body(
        newContacts=[{"phoneNumber": "+14155550111"}],
        rawCsvData={"csv": "Phone\n+14155550112\n+14155550110\n"},
        consent={"consentFile": "spring.csv"},
        scheduleDate=None,
    )

    answer = await client.post("/api/campaigns", json=body, headers=org.headers)

    assert answer.status_code == 201, answer.text
    export = await client.get("/api/contacts.csv", headers=org.headers)
    rows = {r["phoneNumber"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert rows["+14155550110"]["consentSource"] == "form"  # an existing contact keeps its own
    assert (rows["+14155550111"]["consentSource"], rows["+14155550111"]["consentFile"]) == (
        "manual",
        "spring.csv",
    )
    assert (rows["+14155550112"]["consentSource"], rows["+14155550112"]["consentFile"]) == (
        "import",
        "spring.csv",
    )
    assert rows["+14155550112"]["consentAt"].endswith("Z")


async def test_a_contact_that_texts_first_records_inbound_consent(
    client: httpx.AsyncClient,
) -> None:
    org = ObjectId()

    contact = await contact_for(Tenant.for_organization(org), "+14155550120", "New Lead")

    answer = await client.get(f"/api/contacts/{contact.id}", headers=auth(token(org=org)))
    assert answer.json()["data"]["consentSource"] == "inbound"
