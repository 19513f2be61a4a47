"""A rep's message: through the provider once per idempotency key, refused for an opted-out
contact, held by quiet hours unless the contact wrote within 24 hours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from bson import ObjectId

from core.auth import Principal
from models import Message
from services.conversations import outbound
from services.organizations.settings import OrganizationSettings
from services.sending.providers import SimulatedProvider, read_ledger
from services.storage.tenancy import Tenant
from tests.support import (
    WEBHOOK_SETTINGS,
    Org,
    client_with,
    contact,
    gql,
    make_contact,
    make_settings,
    own,
    signed,
    status_path,
    text,
)

NUMBER = "+14155550100"
ALICE = "+12122000000"  # New York

SEND = """
mutation ($input: SendMessageInput!) {
  sendMessage(input: $input) {
    message { id body direction status to nextSendAt }
    userErrors { field code }
  }
}"""


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.jsonl"


@pytest.fixture
async def hooked(mongo_uri: str, ledger: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = {
        **WEBHOOK_SETTINGS,
        "dispatch_provider": "simulated",
        "simulated_ledger": str(ledger),
    }
    async with client_with(mongo_uri, **settings) as http:
        http.base_url = httpx.URL("http://internal:8000")
        yield http


async def send_message(org: Org, **values: Any) -> dict[str, Any]:
    body = await gql(org.client, SEND, {"input": values}, org.headers)
    assert "errors" not in body, body
    payload: dict[str, Any] = body["data"]["sendMessage"]
    return payload


async def test_a_reps_message_goes_out_once_per_key(
    hooked: httpx.AsyncClient, ledger: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    alice = await make_contact(org.id, ALICE, firstName="Alice")
    values = {"contactId": str(alice.id), "body": "Hi {{firstName}}!", "idempotencyKey": "k-1"}
    first = await send_message(org, **values)
    again = await send_message(org, **values)
    assert first == again
    assert first["userErrors"] == []
    assert first["message"]["body"] == "Hi Alice!\nReply STOP to opt out"  # her first message
    assert (first["message"]["direction"], first["message"]["status"]) == ("OUTBOUND", "sent")
    assert first["message"]["to"] == ALICE
    assert [entry["to"] for entry in read_ledger(ledger)] == [ALICE]
    stored = await Message.get_pymongo_collection().find({}).to_list()
    assert len(stored) == 1 and stored[0]["sender"] == f"phone:{NUMBER}"
    reused = await send_message(org, **{**values, "body": "Something else"})
    assert reused["userErrors"] == [
        {"field": ["input", "idempotencyKey"], "code": "IDEMPOTENCY_KEY_REUSED"}
    ]
    missing = await send_message(org, **{**values, "body": "{{email}}", "idempotencyKey": "k2"})
    assert missing["userErrors"] == [{"field": ["input", "body"], "code": "MISSING_VALUE"}]


async def test_an_opted_out_contact_is_not_messaged(
    hooked: httpx.AsyncClient, ledger: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    await text(hooked, frm=ALICE, to=NUMBER, body="STOP")
    found = await contact(org, ALICE)
    assert found is not None
    payload = await send_message(
        org, contactId=str(found["_id"]), body="Please?", idempotencyKey="k-1"
    )
    assert payload == {
        "message": None,
        "userErrors": [{"field": ["input", "contactId"], "code": "OPTED_OUT"}],
    }
    outbound_rows = await Message.get_pymongo_collection().count_documents(
        {"direction": "outbound"}
    )
    assert outbound_rows == 0


async def test_another_organizations_contact_is_not_found(hooked: httpx.AsyncClient) -> None:
    org, other = Org(hooked), Org(hooked)
    alice = await make_contact(org.id, ALICE)
    for contact_id in (str(alice.id), str(ObjectId())):
        payload = await send_message(
            other, contactId=contact_id, body="hi", idempotencyKey=f"k-{contact_id}"
        )
        assert payload["userErrors"] == [{"field": ["input", "contactId"], "code": "NOT_FOUND"}]


def closed_now() -> OrganizationSettings:
    """A sending window that is closed in New York right now (it opens in two hours)."""
    hour = Tenant.now().astimezone(ZoneInfo("America/New_York")).hour
    start, end = (hour + 2) % 24, (hour + 3) % 24
    return OrganizationSettings(f"{start:02d}:00", f"{end:02d}:00", "America/New_York")


async def test_quiet_hours_hold_a_cold_message_but_not_an_answer(
    hooked: httpx.AsyncClient, mongo_uri: str, tmp_path: Path
) -> None:
    org = Org(hooked)
    await own(hooked, org, NUMBER)
    alice = await make_contact(org.id, ALICE)
    tenant = Tenant(Principal(org.user, org.id, "Alex Rep", ("rep",)))
    provider = SimulatedProvider(tmp_path / "quiet.jsonl")
    settings = make_settings(mongo_uri)
    now = Tenant.now()
    held = await outbound.send_message(
        tenant,
        outbound.Outgoing(str(alice.id), "Good morning", "cold-1"),
        provider=provider,
        settings=settings,
        defaults=closed_now(),
        now=now,
    )
    assert held.status == "waiting" and held.nextSendAt is not None
    assert timedelta(hours=1) < held.nextSendAt - now <= timedelta(hours=2)
    assert read_ledger(tmp_path / "quiet.jsonl") == []
    # Not yet due: nothing goes; once the window opens, it goes once.
    assert await outbound.send_due(provider, now) == 0
    assert await outbound.send_due(provider, held.nextSendAt) == 1
    assert await outbound.send_due(provider, held.nextSendAt) == 0
    assert [e["to"] for e in read_ledger(tmp_path / "quiet.jsonl")] == [ALICE]
    # ALICE writes: an answer within 24 hours goes at once, window or not.
    await text(hooked, frm=ALICE, to=NUMBER, body="who is this?")
    answer = await outbound.send_message(
        tenant,
        outbound.Outgoing(str(alice.id), "Alex from Acme", "answer-1"),
        provider=provider,
        settings=settings,
        defaults=closed_now(),
        now=Tenant.now(),
    )
    assert (answer.status, answer.nextSendAt) == ("sent", None)
    # A day later it is cold again.
    later = await outbound.send_message(
        tenant,
        outbound.Outgoing(str(alice.id), "Following up", "later-1"),
        provider=provider,
        settings=settings,
        defaults=closed_now(),
        now=Tenant.now() + timedelta(hours=25),
    )
    assert later.status == "waiting"


async def test_delivery_reports_move_a_reps_message_forward(
    hooked: httpx.AsyncClient, ledger: Path
) -> None:
    org = Org(hooked)
    alice = await make_contact(org.id, ALICE)
    sent = await send_message(org, contactId=str(alice.id), body="Hi", idempotencyKey="k-1")
    message_id = sent["message"]["id"]

    async def report(org_named: object, status: str) -> str:
        path = status_path(message_id, org_named)
        form = {"MessageSid": "SM" + "c" * 32, "MessageStatus": status}
        answer = await hooked.post(path, data=form, headers=signed(path, form))
        assert answer.status_code == 204
        [stored] = await Message.get_pymongo_collection().find({}).to_list()
        return str(stored["status"])

    assert await report(Org(hooked).id, "delivered") == "sent"  # not that organization's
    assert await report(None, "queued") == "queued"  # a URL from before it named one
    assert await report(org.id, "delivered") == "delivered"
    assert await report(org.id, "sent") == "delivered"
