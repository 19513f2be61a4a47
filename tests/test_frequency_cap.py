"""The frequency cap: at most N campaign messages per contact per rolling 24 hours across all of
an organization's campaigns, exactly, with several dispatchers sending at once; the rest wait,
and the campaign says so."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId

from models import ContactSend
from services.sending.dispatcher import Dispatcher
from services.sending.frequency import cap_for
from services.sending.providers import SimulatedProvider, read_ledger
from tests.support import FAST, Clock, Org, admin, gql, phones, update_settings

CONTACTS = 10


async def test_three_campaigns_to_the_same_contacts_stop_at_the_cap(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    body = await update_settings(client, org, {"frequencyCap": 2})
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == [], body
    first = await org.create(CONTACTS)
    # The same contacts (reused by phone) in two more campaigns.
    others = [await org.create(CONTACTS, name=f"Again {i}") for i in (1, 2)]
    ledger = tmp_path / "ledger.jsonl"
    clock = Clock(datetime.now(UTC))
    dispatchers = [
        Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock, owner=name))
        for name in ("a", "b")
    ]
    for campaign_id in (first, *others):
        await org.mutate("sendCampaignNow", campaign_id)
    for _ in range(3):
        await asyncio.gather(*(d.tick() for d in dispatchers))

    per_phone = Counter(entry["to"] for entry in read_ledger(ledger))
    assert per_phone == {c["phoneNumber"]: 2 for c in phones(CONTACTS)}
    sends = await org.tenant().raw_find(ContactSend, {}).to_list()
    assert len(sends) == 2 * CONTACTS
    held = [(await org.campaign(campaign_id))["holds"] for campaign_id in (first, *others)]
    waiting = [h for holds in held for h in holds]
    # The third message of each contact waits, in whichever campaign it fell.
    assert {h["reason"] for h in waiting} == {"frequency_cap"}
    assert sum(h["recipients"] for h in waiting) == CONTACTS
    assert all("24 hours" in h["message"] for h in waiting)

    clock.advance(timedelta(hours=24, minutes=1))
    for _ in range(3):
        await asyncio.gather(*(d.tick() for d in dispatchers))
    per_phone = Counter(entry["to"] for entry in read_ledger(ledger))
    assert set(per_phone.values()) == {3}
    statuses = {(await org.campaign(c))["status"] for c in (first, *others)}
    assert statuses == {"completed"}


def test_a_states_cap_lowers_the_organizations() -> None:
    assert cap_for("+13055550123", 5) == 3  # Florida: 3 a day
    assert cap_for("+13055550123", 2) == 2
    assert cap_for("+13055550123", None) == 3
    assert cap_for("+12125550123", 5) == 5  # New York: the organization's
    assert cap_for("+12125550123", None) is None


async def test_the_cap_is_an_admins_setting_within_bounds(client: httpx.AsyncClient) -> None:
    org = Org(client)
    read = "{ organizationSettings { frequencyCap } }"
    assert (await gql(client, read, None, org.headers))["data"]["organizationSettings"] == {
        "frequencyCap": 3
    }
    for bad in (-1, 51):
        body = await update_settings(client, org, {"frequencyCap": bad})
        errors = body["data"]["updateOrganizationSettings"]["userErrors"]
        assert [(e["field"], e["code"]) for e in errors] == [
            (["input", "frequencyCap"], "OUT_OF_RANGE")
        ]
    body = await update_settings(client, org, {"frequencyCap": 0})
    assert body["data"]["updateOrganizationSettings"]["userErrors"] == []
    answer = await gql(client, read, None, admin(org))
    assert answer["data"]["organizationSettings"] == {"frequencyCap": 0}
    other = Org(client)
    theirs = await gql(client, read, None, other.headers)
    assert theirs["data"]["organizationSettings"] == {"frequencyCap": 3}
    assert ObjectId.is_valid(str(org.id))
