"""Quiet hours: recipients are messaged only inside the organization's window, in their own
local time, and the campaign says when the waiting ones go out (`nextSendAt`).

The clock is frozen at 2026-11-27 14:00 UTC: 09:00 in New York and 14:00 in London (open),
06:00 in Los Angeles (opens at 16:00 UTC) and 23:00 in Tokyo (opens at 23:00 UTC).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId

from core.clock import parse_clock
from models import Organization, Recipient
from services.organizations.quiet_hours import SendWindow
from services.organizations.settings import OrganizationSettings
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from tests.support import FAST, Clock, Org, auth, campaign_body, gql, ledger_keys, token

FROZEN = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
NEW_YORK, LONDON, LOS_ANGELES, TOKYO = (
    "+12125551234",
    "+442079460018",
    "+14155551234",
    "+81312345678",
)
AUSTRALIAN_MOBILE = "+61412345678"  # its range spans Perth to Sydney: the organization's zone
OFFICE_HOURS = OrganizationSettings("08:00", "21:00", "America/New_York")

SETTINGS = "{ sendWindowStart sendWindowEnd timezone }"
READ = f"query {{ organizationSettings {SETTINGS} }}"
UPDATE = f"""
mutation ($input: UpdateOrganizationSettingsInput!) {{
  updateOrganizationSettings(input: $input) {{
    settings {SETTINGS}
    userErrors {{ field code message }}
  }}
}}"""
CAMPAIGN = "query ($id: ID!) { campaign(id: $id) { status nextSendAt stats { sent total } } }"
HOLDS = "query ($id: ID!) { campaign(id: $id) { holds { reason zone recipients until message } } }"


def window(start: str, end: str, zone: str = "America/New_York") -> SendWindow:
    opens, closes = parse_clock(start), parse_clock(end, end=True)
    assert opens is not None and closes is not None
    return SendWindow(opens, closes, zone)


def test_the_window_is_kept_in_each_numbers_own_zone() -> None:
    office = window("08:00", "21:00")
    assert office.is_open(NEW_YORK, FROZEN)
    assert office.is_open(LONDON, FROZEN)
    assert not office.is_open(LOS_ANGELES, FROZEN)
    assert office.next_opening(LOS_ANGELES, FROZEN) == datetime(2026, 11, 27, 16, tzinfo=UTC)
    assert not office.is_open(TOKYO, FROZEN)
    assert office.next_opening(TOKYO, FROZEN) == datetime(2026, 11, 27, 23, tzinfo=UTC)
    assert office.next_opening(NEW_YORK, FROZEN) == FROZEN
    # 01:00 in Sydney but 09:00 in New York: a number spanning zones takes the organization's.
    assert office.is_open(AUSTRALIAN_MOBILE, FROZEN)
    assert not window("08:00", "21:00", "Australia/Sydney").is_open(AUSTRALIAN_MOBILE, FROZEN)
    # 21:00 is the first closed minute; a window may cross midnight; 00:00-24:00 is all day.
    assert not office.is_open(NEW_YORK, datetime(2026, 11, 28, 2, tzinfo=UTC))
    assert office.is_open(NEW_YORK, datetime(2026, 11, 28, 1, 59, tzinfo=UTC))
    night = window("22:00", "06:00")
    assert night.is_open(NEW_YORK, datetime(2026, 11, 28, 4, tzinfo=UTC))  # 23:00
    assert not night.is_open(NEW_YORK, FROZEN)
    assert night.next_opening(NEW_YORK, FROZEN) == datetime(2026, 11, 28, 3, tzinfo=UTC)
    always = window("00:00", "24:00")
    assert all(always.is_open(TOKYO, FROZEN + timedelta(minutes=m)) for m in range(0, 1440, 7))
    assert parse_clock("24:00") is None  # only as an end


async def test_recipients_wait_for_their_window_and_the_campaign_says_when(
    client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    org = Org(client)
    admin = auth(token(org=org.id, roles=["admin"]))
    body = await gql(client, UPDATE, {"input": {"sendWindowStart": "08:00"}}, admin)
    assert body["data"]["updateOrganizationSettings"] == {
        "settings": {
            "sendWindowStart": "08:00",
            "sendWindowEnd": "24:00",  # the test service's default end was kept
            "timezone": "America/New_York",
        },
        "userErrors": [],
    }
    # Only what was sent is stored: the rest keeps following the service's defaults.
    [stored] = await org.tenant().raw_find(Organization, {}).to_list()
    assert {k for k in stored if k.startswith(("send", "time"))} == {"sendWindowStart"}
    body = await gql(client, UPDATE, {"input": {"sendWindowEnd": "21:00"}}, admin)
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == []
    # Two recipients in each zone.
    contacts = [
        {"firstName": f"{zone}{i}", "phoneNumber": number[:-1] + str(i)}
        for zone, number in (("ny", NEW_YORK), ("ldn", LONDON), ("la", LOS_ANGELES), ("tyo", TOKYO))
        for i in (1, 2)
    ]
    answer = await client.post(
        "/api/campaigns",
        json=campaign_body(newContacts=contacts, scheduleDate=None),
        headers=org.headers,
    )
    assert answer.status_code == 201, answer.text
    campaign_id = answer.json()["data"]["_id"]
    await org.mutate("sendCampaignNow", campaign_id)
    clock = Clock(FROZEN)
    ledger = tmp_path / "ledger.jsonl"
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))

    names = {c["phoneNumber"]: c["firstName"] for c in contacts}

    async def sent_to() -> set[str]:
        """Who the provider got a message for; each recipient's row says `sent` too."""
        rows = (
            await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
        )
        sent = {entry["to"] for entry in read_ledger(ledger)}
        assert sum(row["status"] == "sent" for row in rows) == len(sent)
        return {names[number] for number in sent}

    async def read() -> dict[str, Any]:
        body = await gql(client, CAMPAIGN, {"id": campaign_id}, org.headers)
        campaign: dict[str, Any] = body["data"]["campaign"]
        rest = (await org.campaign(campaign_id))["nextSendAt"]
        # The same instant in each API's date format (the legacy one has milliseconds and Z).
        graphql = campaign["nextSendAt"]
        assert (rest, graphql) == (None, None) or rest == graphql.replace("+00:00", ".000Z")
        return campaign

    with caplog.at_level(logging.INFO, logger="services.sending.dispatcher"):
        await dispatcher.tick()
        await dispatcher.tick()
    assert await sent_to() == {"ny1", "ny2", "ldn1", "ldn2"}
    assert await read() == {
        "status": "SENDING",
        "nextSendAt": "2026-11-27T16:00:00+00:00",
        "stats": {"sent": 4, "total": 8},
    }
    # Why they wait is said wherever the campaign is seen: both APIs, and the log once.
    body = await gql(client, HOLDS, {"id": campaign_id}, org.headers)
    holds = body["data"]["campaign"]["holds"]
    assert [(h["reason"], h["zone"], h["recipients"], h["until"]) for h in holds] == [
        ("QUIET_HOURS", "America/Los_Angeles", 2, "2026-11-27T16:00:00+00:00"),
        ("QUIET_HOURS", "Asia/Tokyo", 2, "2026-11-27T23:00:00+00:00"),
    ]
    assert "America/Los_Angeles" in holds[0]["message"]
    rest = (await org.campaign(campaign_id))["holds"]
    assert [(h["reason"], h["zone"], h["until"]) for h in rest] == [
        ("quiet_hours", "America/Los_Angeles", "2026-11-27T16:00:00.000Z"),
        ("quiet_hours", "Asia/Tokyo", "2026-11-27T23:00:00.000Z"),
    ]
    logged = [r.getMessage() for r in caplog.records if "held back" in r.getMessage()]
    assert len(logged) == 2 and any("Asia/Tokyo" in line for line in logged), logged
    # Operators see them waiting, not lagging.
    scraped = (await client.get("/metrics")).text.splitlines()
    assert "campaign_quiet_hours_waiting 4.0" in scraped
    assert "campaign_due_recipients 0.0" in scraped
    # Nothing changes while the window stays shut, however often the dispatcher looks.
    clock.now = datetime(2026, 11, 27, 15, 59, tzinfo=UTC)
    for _ in range(3):
        await dispatcher.tick()
    assert await sent_to() == {"ny1", "ny2", "ldn1", "ldn2"}

    clock.now = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    await dispatcher.tick()
    assert await sent_to() == {"ny1", "ny2", "ldn1", "ldn2", "la1", "la2"}
    assert (await read())["nextSendAt"] == "2026-11-27T23:00:00+00:00"

    clock.now = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    await dispatcher.tick()
    await dispatcher.tick()
    assert len(await sent_to()) == 8
    assert await read() == {
        "status": "COMPLETED",
        "nextSendAt": None,
        "stats": {"sent": 8, "total": 8},
    }
    body = await gql(client, HOLDS, {"id": campaign_id}, org.headers)
    assert body["data"]["campaign"]["holds"] == []
    assert sorted(ledger_keys(ledger).values()) == [1] * 8  # each once, none twice


async def test_only_admins_change_settings_and_bad_ones_are_refused_by_field(
    client: httpx.AsyncClient,
) -> None:
    org, other = ObjectId(), ObjectId()
    admin = auth(token(org=org, roles=["admin"]))
    rep = auth(token(org=org))
    defaults = {
        "sendWindowStart": "00:00",
        "sendWindowEnd": "24:00",
        "timezone": "America/New_York",
    }
    assert (await gql(client, READ, None, rep))["data"]["organizationSettings"] == defaults

    refused = await gql(client, UPDATE, {"input": {"sendWindowStart": "09:00"}}, rep)
    # A permission refusal is an error of the operation (as Apollo clients expect), not a
    # user error of the input.
    assert refused["data"] is None
    assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]
    assert "admin" in refused["errors"][0]["message"]

    bad = {"sendWindowStart": "9am", "sendWindowEnd": "25:00", "timezone": "Mars/Olympus"}
    payload = (await gql(client, UPDATE, {"input": bad}, admin))["data"][
        "updateOrganizationSettings"
    ]
    assert {(tuple(e["field"]), e["code"]) for e in payload["userErrors"]} == {
        (("input", "sendWindowStart"), "INVALID_TIME"),
        (("input", "sendWindowEnd"), "INVALID_TIME"),
        (("input", "timezone"), "INVALID_TIMEZONE"),
    }
    empty = {"sendWindowStart": "10:00", "sendWindowEnd": "10:00"}
    payload = (await gql(client, UPDATE, {"input": empty}, admin))["data"][
        "updateOrganizationSettings"
    ]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "sendWindowEnd"], "EMPTY_WINDOW")
    ]
    # Nothing of a refused change was kept.
    assert (await gql(client, READ, None, admin))["data"]["organizationSettings"] == defaults

    good = {"sendWindowStart": " 22:00 ", "sendWindowEnd": "06:00", "timezone": "Europe/Berlin"}
    payload = (await gql(client, UPDATE, {"input": good}, admin))["data"][
        "updateOrganizationSettings"
    ]
    changed = {"sendWindowStart": "22:00", "sendWindowEnd": "06:00", "timezone": "Europe/Berlin"}
    assert payload == {"settings": changed, "userErrors": []}
    assert (await gql(client, READ, None, rep))["data"]["organizationSettings"] == changed
    # Another organization keeps its own.
    theirs = auth(token(org=other))
    assert (await gql(client, READ, None, theirs))["data"]["organizationSettings"] == defaults


@pytest.mark.parametrize("query", [READ, UPDATE])
async def test_settings_need_a_token(client: httpx.AsyncClient, query: str) -> None:
    body = await gql(client, query, {"input": {"sendWindowStart": "09:00"}}, {})
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


MIAMI, DALLAS, NEW_ORLEANS = "+13055550123", "+12145550123", "+15045550123"


def test_state_rules_narrow_the_window_for_their_numbers() -> None:
    """Florida: 8:00-20:00; Texas: from noon on Sundays; Louisiana: no Sundays or holidays;
    New York has no rule of its own here. The organization's window is 08:00-21:00."""
    office = window("08:00", "21:00")
    friday_evening = datetime(2026, 11, 28, 1, 30, tzinfo=UTC)  # 20:30 in Miami and New York
    assert office.is_open(NEW_YORK, friday_evening)
    assert not office.is_open(MIAMI, friday_evening)
    assert office.next_opening(MIAMI, friday_evening) == datetime(2026, 11, 28, 13, tzinfo=UTC)
    assert office.held_in(MIAMI, friday_evening) == ("America/New_York", "FL")
    assert not replace(office, state_rules=False).is_open(
        MIAMI, datetime(2026, 11, 28, 2, tzinfo=UTC)
    )

    sunday_morning = datetime(2026, 11, 29, 16, tzinfo=UTC)  # 10:00 in Dallas
    assert not office.is_open(DALLAS, sunday_morning)
    assert office.next_opening(DALLAS, sunday_morning) == datetime(2026, 11, 29, 18, tzinfo=UTC)
    assert office.is_open(DALLAS, datetime(2026, 11, 30, 15, tzinfo=UTC))  # Monday 09:00

    thanksgiving = datetime(2026, 11, 26, 16, tzinfo=UTC)  # 10:00 in New Orleans
    assert not office.is_open(NEW_ORLEANS, thanksgiving)
    assert office.next_opening(NEW_ORLEANS, thanksgiving) == datetime(2026, 11, 27, 14, tzinfo=UTC)
    saturday_night = datetime(2026, 11, 29, 3, tzinfo=UTC)  # Saturday 21:00: closed till Monday
    assert office.next_opening(NEW_ORLEANS, saturday_night) == datetime(
        2026, 11, 30, 14, tzinfo=UTC
    )
    assert office.held_in(NEW_YORK, friday_evening) == ("America/New_York", None)


async def test_a_campaign_held_by_a_states_rules_says_which(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    contacts = [
        {"firstName": "Fl", "phoneNumber": MIAMI},
        {"firstName": "Ny", "phoneNumber": NEW_YORK},
    ]
    answer = await client.post(
        "/api/campaigns",
        json=campaign_body(newContacts=contacts, scheduleDate=None),
        headers=org.headers,
    )
    assert answer.status_code == 201, answer.text
    campaign_id = answer.json()["data"]["_id"]
    await org.mutate("sendCampaignNow", campaign_id)
    clock = Clock(datetime(2026, 11, 28, 1, 30, tzinfo=UTC))  # 20:30 in both
    ledger = tmp_path / "ledger.jsonl"
    hours = OrganizationSettings("08:00", "21:00", "America/New_York")
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock, defaults=hours))
    await dispatcher.tick()
    assert [entry["to"] for entry in read_ledger(ledger)] == [NEW_YORK]
    body = await gql(client, HOLDS_STATE, {"id": campaign_id}, org.headers)
    [hold] = body["data"]["campaign"]["holds"]
    assert (hold["reason"], hold["zone"], hold["state"], hold["until"]) == (
        "QUIET_HOURS",
        "America/New_York",
        "FL",
        "2026-11-28T13:00:00+00:00",
    )
    assert "FL's rules" in hold["message"]
    clock.now = datetime(2026, 11, 28, 13, tzinfo=UTC)
    await dispatcher.tick()
    assert sorted(entry["to"] for entry in read_ledger(ledger)) == sorted([NEW_YORK, MIAMI])


HOLDS_STATE = "query ($id: ID!) { campaign(id: $id) { holds { reason zone state until message } } }"


async def test_a_window_that_never_meets_a_states_hours_skips_the_number(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """07:00-08:00 never overlaps Florida's 08:00-20:00: the Florida recipient is skipped with
    a reason (never held for ever), the New York one goes when its window opens."""
    org = Org(client)
    contacts = [{"phoneNumber": MIAMI}, {"phoneNumber": NEW_YORK}]
    answer = await client.post(
        "/api/campaigns",
        json=campaign_body(message="Hi there", newContacts=contacts, scheduleDate=None),
        headers=org.headers,
    )
    campaign_id = answer.json()["data"]["_id"]
    await org.mutate("sendCampaignNow", campaign_id)
    clock = Clock(datetime(2026, 11, 27, 12, 30, tzinfo=UTC))  # 07:30 in both
    ledger = tmp_path / "ledger.jsonl"
    early = OrganizationSettings("07:00", "08:00", "America/New_York")
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock, defaults=early))
    await dispatcher.tick()
    await dispatcher.tick()
    done = await org.campaign(campaign_id)
    assert done["status"] == "completed"
    assert [entry["to"] for entry in read_ledger(ledger)] == [NEW_YORK]
    failures = (
        await client.get(f"/api/campaigns/{campaign_id}/failures", headers=org.headers)
    ).json()
    assert [(f["stage"], f["code"]) for f in failures["data"]] == [("skipped", "NO_SENDING_WINDOW")]
    assert "FL" in failures["data"][0]["reason"] or "state" in failures["data"][0]["reason"]
