"""Messages contacts send: routed by the sender they were sent to, stored once, read for
keywords in the owning organization only, and a new phone becomes a contact there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from models import Contact, Message
from tests.support import (
    WEBHOOK_SETTINGS,
    Org,
    client_with,
    contact,
    make_contact,
    messages,
    own,
    phones,
    service_sid,
    text,
)

A_NUMBER = "+14155550100"
B_NUMBER = "+14155550200"
SHARED = "+15005550006"
ALICE = "+12122000000"  # `tests.support.phones` numbering
BOB = "+12122000001"


@pytest.fixture
async def hooked(mongo_uri: str) -> AsyncIterator[httpx.AsyncClient]:
    # The app sees itself as http://internal:8000 (behind a proxy); Twilio signed PUBLIC.
    async with client_with(mongo_uri, **WEBHOOK_SETTINGS, twilio_from_number=SHARED) as http:
        http.base_url = httpx.URL("http://internal:8000")
        yield http


async def two_orgs(client: httpx.AsyncClient) -> tuple[Org, Org]:
    """Two organizations with their own numbers, both having ALICE and BOB as contacts."""
    first, second = Org(client), Org(client)
    await own(client, first, A_NUMBER)
    await own(client, second, B_NUMBER)
    for org in (first, second):
        for person in phones(2):
            await make_contact(org.id, person["phoneNumber"], firstName=person["firstName"])
    return first, second


async def test_a_message_lands_only_in_the_organization_owning_the_number(
    hooked: httpx.AsyncClient,
) -> None:
    first, second = await two_orgs(hooked)
    answer = await text(hooked, frm=ALICE, to=A_NUMBER, body="yes, call me")
    assert answer.headers["content-type"].startswith("text/xml")
    assert "<Message>" not in answer.text
    [stored] = await messages(first)
    alice = await contact(first, ALICE)
    assert alice is not None
    assert {k: stored[k] for k in ("contactId", "direction", "body", "fromNumber", "toNumber")} == {
        "contactId": alice["_id"],
        "direction": "inbound",
        "body": "yes, call me",
        "fromNumber": ALICE,
        "toNumber": A_NUMBER,
    }
    assert stored["sender"] == f"phone:{A_NUMBER}"
    assert await messages(second) == []
    await text(hooked, frm=ALICE, to=B_NUMBER, body="who is this?")
    assert [m["body"] for m in await messages(second)] == ["who is this?"]
    assert len(await messages(first)) == 1


async def test_a_messaging_service_routes_whatever_number_it_used(
    hooked: httpx.AsyncClient,
) -> None:
    org, other = Org(hooked), Org(hooked)
    await own(hooked, org, service_sid(3))
    await own(hooked, other, "+14155550300")
    await text(
        hooked, frm=ALICE, to="+14155550399", body="hello", MessagingServiceSid=service_sid(3)
    )
    assert [m["sender"] for m in await messages(org)] == [f"service:{service_sid(3)}"]
    assert await messages(other) == []


async def test_a_number_nobody_owns_is_answered_counted_and_not_stored(
    hooked: httpx.AsyncClient,
) -> None:
    first, _ = await two_orgs(hooked)
    answer = await text(hooked, frm=ALICE, to="+14155550999", body="STOP")
    assert answer.status_code == 200 and "<Response>" in answer.text
    assert await Message.get_pymongo_collection().count_documents({}) == 0
    alice = await contact(first, ALICE)
    assert alice is not None and not alice.get("optedOut")
    metrics = (await hooked.get("/metrics")).text
    assert 'campaign_webhook_events_total{kind="inbound",outcome="unrouted"}' in metrics


async def test_twilio_retries_store_one_message(hooked: httpx.AsyncClient) -> None:
    first, _ = await two_orgs(hooked)
    sid = "SM" + "a" * 32
    await text(hooked, frm=ALICE, to=A_NUMBER, body="first", sid=sid)
    await asyncio.gather(
        *(text(hooked, frm=ALICE, to=A_NUMBER, body="first", sid=sid) for _ in range(5))
    )
    assert [m["body"] for m in await messages(first)] == ["first"]
    metrics = (await hooked.get("/metrics")).text
    assert 'campaign_webhook_events_total{kind="inbound",outcome="duplicate"}' in metrics


async def test_messages_arriving_out_of_order_are_all_kept(hooked: httpx.AsyncClient) -> None:
    first, _ = await two_orgs(hooked)
    second_sid, first_sid = "SM" + "2" * 32, "SM" + "1" * 32
    await text(hooked, frm=ALICE, to=A_NUMBER, body="second", sid=second_sid)
    await text(hooked, frm=ALICE, to=A_NUMBER, body="first", sid=first_sid)
    await text(hooked, frm=ALICE, to=A_NUMBER, body="second", sid=second_sid)
    stored = await messages(first)
    assert sorted((m["providerMessageId"], m["body"]) for m in stored) == [
        (first_sid, "first"),
        (second_sid, "second"),
    ]


async def test_media_are_kept_with_the_message(hooked: httpx.AsyncClient) -> None:
    first, _ = await two_orgs(hooked)
    await text(
        hooked,
        frm=ALICE,
        to=A_NUMBER,
        body="",
        NumMedia="2",
        MediaUrl0="https://api.twilio.com/media/1",
        MediaUrl1="https://api.twilio.com/media/2",
    )
    [stored] = await messages(first)
    assert stored["media"] == ["https://api.twilio.com/media/1", "https://api.twilio.com/media/2"]


async def test_a_new_phone_becomes_a_contact_of_that_organization_once(
    hooked: httpx.AsyncClient,
) -> None:
    first, second = await two_orgs(hooked)
    await own(hooked, second, B_NUMBER, inboundContactStatus="Inbound lead")
    stranger = "+12125550123"
    await asyncio.gather(
        *(text(hooked, frm=stranger, to=A_NUMBER, body=f"hi {i}") for i in range(4))
    )
    made = await first.tenant().raw_find(Contact, {"phoneNumber": stranger}).to_list()
    assert len(made) == 1
    assert made[0]["source"] == "inbound" and made[0]["contactStatus"] == "New Lead"
    assert await contact(second, stranger) is None
    assert len(await messages(first)) == 4
    await text(hooked, frm=stranger, to=B_NUMBER, body="hello")
    theirs = await contact(second, stranger)
    assert theirs is not None and theirs["contactStatus"] == "Inbound lead"


async def opted(org: Org, phone: str) -> bool:
    found = await contact(org, phone)
    assert found is not None
    return bool(found.get("optedOut"))


async def test_stop_opts_out_only_in_the_organization_owning_the_number(
    hooked: httpx.AsyncClient,
) -> None:
    first, second = await two_orgs(hooked)
    for body in ("please don't stop", "Stop it", "STOP!", "stopp", ""):
        await text(hooked, frm=ALICE, to=A_NUMBER, body=body)
    assert not await opted(first, ALICE)

    answer = await text(hooked, frm=ALICE, to=A_NUMBER, body="  stop \n")
    assert "<Message>" not in answer.text  # Twilio's own opt-out handling answers
    assert await opted(first, ALICE) and not await opted(second, ALICE)
    assert not await opted(first, BOB)
    words = ("STOPALL", "unsubscribe", "Cancel", "END", "quit", "optout", "Opt  Out", "REVOKE")
    for word in words:
        await text(hooked, frm=BOB, to=B_NUMBER, body=word)
        assert await opted(second, BOB), word
        assert not await opted(first, BOB), word
        await text(hooked, frm=BOB, to=B_NUMBER, body="START")
        assert not await opted(second, BOB), word
    await text(hooked, frm=ALICE, to=A_NUMBER, body="unstop")
    assert not await opted(first, ALICE)
    # The keywords stay in the thread.
    keywords = [m["keyword"] for m in await messages(first) if m["keyword"]]
    assert keywords == ["opt_out", "opt_in"]
    metrics = (await hooked.get("/metrics")).text
    assert 'campaign_webhook_events_total{kind="inbound",outcome="opted_out"}' in metrics


async def test_yes_opts_in_only_a_contact_who_opted_out(hooked: httpx.AsyncClient) -> None:
    first, _ = await two_orgs(hooked)
    await text(hooked, frm=ALICE, to=A_NUMBER, body="Yes")
    [reply] = await messages(first)
    assert reply["keyword"] is None  # an ordinary (and welcome) reply
    await text(hooked, frm=ALICE, to=A_NUMBER, body="STOP")
    await text(hooked, frm=ALICE, to=A_NUMBER, body="yes")
    assert not await opted(first, ALICE)
    assert [m["keyword"] for m in await messages(first)] == [None, "opt_out", "opt_in"]


async def test_help_is_answered_with_the_organizations_text(hooked: httpx.AsyncClient) -> None:
    first, second = await two_orgs(hooked)
    await own(hooked, first, A_NUMBER, helpText="Acme Sales: call 415-555-0100. STOP to end")
    answer = await text(hooked, frm=ALICE, to=A_NUMBER, body="help")
    assert "<Message>Acme Sales: call 415-555-0100. STOP to end</Message>" in answer.text
    thread = await messages(first)
    assert [(m["direction"], m["keyword"]) for m in thread] == [
        ("inbound", "help"),
        ("outbound", "help"),
    ]
    # No help text: no answer.
    answer = await text(hooked, frm=ALICE, to=B_NUMBER, body="INFO")
    assert "<Message>" not in answer.text
    assert [m["direction"] for m in await messages(second)] == ["inbound"]


async def test_twilios_opt_out_type_wins_over_the_words(hooked: httpx.AsyncClient) -> None:
    first, _ = await two_orgs(hooked)
    await own(hooked, first, A_NUMBER, helpText="Acme Sales")
    await text(hooked, frm=ALICE, to=A_NUMBER, body="Remove me please", OptOutType="STOP")
    assert await opted(first, ALICE)
    await text(hooked, frm=ALICE, to=A_NUMBER, body="go ahead", OptOutType="START")
    assert not await opted(first, ALICE)
    # Twilio answered HELP itself when it says it read one.
    answer = await text(hooked, frm=ALICE, to=A_NUMBER, body="help", OptOutType="HELP")
    assert "<Message>" not in answer.text


async def test_the_shared_sender_goes_to_the_organization_that_messaged_the_phone(
    hooked: httpx.AsyncClient,
) -> None:
    from datetime import timedelta

    from bson import ObjectId

    from models import Recipient
    from services.storage.tenancy import Tenant

    first, second = Org(hooked), Org(hooked)
    for org in (first, second):
        await make_contact(org.id, ALICE)
    # Nobody messaged ALICE through the shared number yet: nowhere to go.
    await text(hooked, frm=ALICE, to=SHARED, body="hello?")
    assert await messages(first) == [] and await messages(second) == []
    # The second organization's campaign reached ALICE last.
    now = Tenant.now()
    for org, ago in ((first, 3), (second, 1)):
        found = await contact(org, ALICE)
        assert found is not None
        await org.tenant().raw_insert_many(
            Recipient,
            [
                {
                    "_id": ObjectId(),
                    "campaignId": ObjectId(),
                    "contactId": found["_id"],
                    "status": "sent",
                    "sentAt": now - timedelta(hours=ago),
                }
            ],
            ordered=True,
        )
    await text(hooked, frm=ALICE, to=SHARED, body="yes please")
    assert [m["body"] for m in await messages(second)] == ["yes please"]
    assert await messages(first) == []
