"""An organization's senders: set by admins as a whole list, validated, and owned by one
organization only (the database's unique key decides, however the requests race)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
from bson import ObjectId

from models import ContactSender, Recipient, Sender
from services.organizations.senders import contact_senders
from services.sending.providers import read_ledger
from tests.support import (
    WEBHOOK_SETTINGS,
    Org,
    admin,
    client_with,
    contact,
    gql,
    own,
    send,
    service_sid,
    text,
    update_settings,
)


async def test_an_admin_replaces_the_senders_and_every_member_reads_them(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    senders = [{"phoneNumber": "(415) 555-0100"}, {"messagingServiceSid": service_sid(1)}]
    body = await update_settings(
        client, org, {"senders": senders, "helpText": "Acme: reply STOP to opt out"}
    )
    assert body["data"]["updateOrganizationSettings"] == {
        "settings": {
            "helpText": "Acme: reply STOP to opt out",
            "attributionWindowDays": 7,
            "inboundContactStatus": "New Lead",
            "senders": [
                {"phoneNumber": "+14155550100", "messagingServiceSid": None},
                {"phoneNumber": None, "messagingServiceSid": service_sid(1)},
            ],
        },
        "userErrors": [],
    }
    # Replaced as a whole: the number is dropped, a new one added.
    body = await update_settings(
        client,
        org,
        {"senders": [{"phoneNumber": "+14155550101"}, {"messagingServiceSid": service_sid(1)}]},
    )
    query = "{ organizationSettings { senders { phoneNumber messagingServiceSid } } }"
    read = await gql(client, query, None, org.headers)
    assert read["data"]["organizationSettings"]["senders"] == [
        {"phoneNumber": "+14155550101", "messagingServiceSid": None},
        {"phoneNumber": None, "messagingServiceSid": service_sid(1)},
    ]
    assert await org.tenant().count(Sender) == 2


async def test_only_an_admin_changes_the_senders(client: httpx.AsyncClient) -> None:
    org = Org(client)
    body = await update_settings(
        client, org, {"senders": [{"phoneNumber": "+14155550100"}]}, as_admin=False
    )
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await org.tenant().count(Sender) == 0


async def test_a_bad_sender_is_refused_by_field_and_nothing_is_written(
    client: httpx.AsyncClient,
) -> None:
    org = Org(client)
    senders = [
        {"phoneNumber": "+14155550100"},
        {"phoneNumber": "12"},
        {"messagingServiceSid": "MG123"},
        {"phoneNumber": "+14155550101", "messagingServiceSid": service_sid(2)},
        {},
    ]
    body = await update_settings(client, org, {"senders": senders, "attributionWindowDays": 0})
    errors = body["data"]["updateOrganizationSettings"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["input", "attributionWindowDays"], "OUT_OF_RANGE"),
        (["input", "senders", "1", "phoneNumber"], "INVALID_PHONE"),
        (["input", "senders", "2", "messagingServiceSid"], "INVALID_SENDER"),
        (["input", "senders", "3"], "INVALID_SENDER"),
        (["input", "senders", "4"], "INVALID_SENDER"),
    ]
    assert await org.tenant().count(Sender) == 0


async def test_a_sender_of_another_organization_is_taken(client: httpx.AsyncClient) -> None:
    first, second = Org(client), Org(client)
    await update_settings(client, first, {"senders": [{"phoneNumber": "+14155550100"}]})
    body = await update_settings(
        client,
        second,
        {"senders": [{"phoneNumber": "+14155550199"}, {"phoneNumber": "415-555-0100"}]},
    )
    errors = body["data"]["updateOrganizationSettings"]["userErrors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (["input", "senders", "1", "phoneNumber"], "SENDER_TAKEN")
    ]
    # Nothing of the refused list stays, not even the free number.
    assert await second.tenant().count(Sender) == 0
    # Once the first organization lets it go, it is free.
    await update_settings(client, first, {"senders": []})
    body = await update_settings(client, second, {"senders": [{"phoneNumber": "+14155550100"}]})
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == []


async def test_two_organizations_claiming_one_sender_at_once_get_one_owner(
    client: httpx.AsyncClient,
) -> None:
    orgs = [Org(client) for _ in range(6)]
    wanted = {"senders": [{"messagingServiceSid": service_sid(7)}]}
    bodies = await asyncio.gather(*(update_settings(client, org, wanted) for org in orgs))
    codes = Counter(
        tuple(e["code"] for e in body["data"]["updateOrganizationSettings"]["userErrors"])
        for body in bodies
    )
    assert codes == Counter({(): 1, ("SENDER_TAKEN",): 5})
    owners = await Sender.get_pymongo_collection().find({}).to_list()
    assert len(owners) == 1 and owners[0]["_id"] == f"service:{service_sid(7)}"
    winner = next(
        org for org, body in zip(orgs, bodies, strict=True)
        if not body["data"]["updateOrganizationSettings"]["userErrors"]
    )  # fmt: skip
    assert owners[0]["organizationId"] == ObjectId(winner.id)


async def test_senders_are_read_only_by_their_organization(client: httpx.AsyncClient) -> None:
    first, second = Org(client), Org(client)
    await update_settings(client, first, {"senders": [{"phoneNumber": "+14155550100"}]})
    query = "{ organizationSettings { senders { phoneNumber } } }"
    read = await gql(client, query, None, admin(second))
    assert read["data"]["organizationSettings"]["senders"] == []


async def test_campaigns_go_out_from_the_organizations_senders_the_same_one_per_contact(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org, shared = Org(client), Org(client)
    await own(client, org, "+14155550100", service_sid(7))
    keys = {"phone:+14155550100", f"service:{service_sid(7)}"}
    first = await send(org, 12, tmp_path)
    again = await send(org, 12, tmp_path)  # the same twelve contacts
    by_phone: dict[str, set[str | None]] = {}
    for campaign in (first, again):
        for entry in read_ledger(tmp_path / f"{campaign}.jsonl"):
            by_phone.setdefault(entry["to"], set()).add(entry["from"])
    assert len(by_phone) == 12
    assert all(len(used) == 1 and used <= keys for used in by_phone.values()), by_phone
    stored = await Recipient.find({"organizationId": org.id}).to_list()
    assert len(stored) == 24 and all(r.sender in keys for r in stored)
    # An organization with no sender of its own uses the deployment's (no key recorded).
    plain = await send(shared, 3, tmp_path, start=100)
    assert {e["from"] for e in read_ledger(tmp_path / f"{plain}.jsonl")} == {None}


def heard_from(tmp_path: Path, campaign: str) -> dict[str, str | None]:
    """Each phone's sender in a campaign's provider ledger."""
    return {e["to"]: e["from"] for e in read_ledger(tmp_path / f"{campaign}.jsonl")}


async def test_a_contact_keeps_its_sender_when_senders_are_added_and_moves_when_it_is_removed(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    a, b, c, d = (f"phone:+1415555010{i}" for i in range(4))
    # Five campaigns to the same contacts in a day: no frequency cap here.
    await own(client, org, "+14155550100", "+14155550101", frequencyCap=0)
    first = heard_from(tmp_path, await send(org, 12, tmp_path))
    assert set(first.values()) == {a, b}, first  # spread over the list
    # Senders added in front of the list: nobody moves; new contacts spread over all four.
    await own(client, org, "+14155550102", "+14155550103", "+14155550100", "+14155550101")
    again = heard_from(tmp_path, await send(org, 12, tmp_path))
    assert again == first
    newcomers = heard_from(tmp_path, await send(org, 24, tmp_path, start=50))
    assert set(newcomers.values()) <= {a, b, c, d} and len(set(newcomers.values())) > 2
    # `a` removed: its contacts move (and then stay); the others keep theirs.
    await own(client, org, "+14155550102", "+14155550103", "+14155550101")
    moved = heard_from(tmp_path, await send(org, 12, tmp_path))
    for phone, sender in first.items():
        if sender == a:
            assert moved[phone] in {b, c, d}
        else:
            assert moved[phone] == sender
    assert heard_from(tmp_path, await send(org, 12, tmp_path)) == moved


async def test_two_first_sends_at_once_agree_on_the_sender(client: httpx.AsyncClient) -> None:
    org = Org(client)
    tenant = org.tenant()
    contacts = [ObjectId() for _ in range(30)]
    # Two lists in different orders pick differently; the stored first pick decides for both.
    one, two = await asyncio.gather(
        contact_senders(tenant, ["phone:+14155550100", "phone:+14155550101"], contacts),
        contact_senders(tenant, ["phone:+14155550101", "phone:+14155550100"], contacts),
    )
    assert one == two
    stored = await tenant.raw_find(ContactSender, {}).to_list()
    assert {row["contactId"]: row["sender"] for row in stored} == one
    # A removed sender: racing moves agree too.
    left = ["phone:+14155550102", "phone:+14155550103"]
    three, four = await asyncio.gather(
        contact_senders(tenant, left, contacts), contact_senders(tenant, left[::-1], contacts)
    )
    assert three == four and set(three.values()) <= set(left)


async def test_stored_senders_belong_to_their_organization(client: httpx.AsyncClient) -> None:
    first, second = Org(client), Org(client)
    contact = ObjectId()
    mine = await contact_senders(first.tenant(), ["phone:+14155550100"], [contact])
    theirs = await contact_senders(second.tenant(), ["phone:+14155550199"], [contact])
    assert mine == {contact: "phone:+14155550100"}
    assert theirs == {contact: "phone:+14155550199"}
    again = await contact_senders(
        first.tenant(), ["phone:+14155550101", "phone:+14155550100"], [contact]
    )
    assert again == mine
    # Without senders of its own, nothing is stored and the deployment's sender is used.
    assert await contact_senders(Org(client).tenant(), [], [contact]) == {contact: None}


async def test_a_contact_that_texts_first_keeps_the_number_it_texted(mongo_uri: str) -> None:
    numbers = [f"+1415555010{i}" for i in range(4)]
    async with client_with(mongo_uri, **WEBHOOK_SETTINGS) as http:
        http.base_url = httpx.URL("http://internal:8000")
        org = Org(http)
        await own(http, org, *numbers)
        phones = [f"+1212200000{i}" for i in range(4)]
        for phone, number in zip(phones, numbers, strict=True):
            await text(http, frm=phone, to=number, body="hi, who is this?")
        ids = []
        for phone in phones:
            found = await contact(org, phone)
            assert found is not None
            ids.append(found["_id"])
        keys = [f"phone:{number}" for number in numbers]
        assert await contact_senders(org.tenant(), keys, ids) == dict(zip(ids, keys, strict=True))
