"""An operator sets an organization's own sending rate from the command line; a campaign held
back by its organization's rate limit says so."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

from scripts import org_rate
from services.sending.dispatcher import Dispatcher
from services.sending.providers import SimulatedProvider
from tests.support import FAST, Clock, Org, make_settings, release_database


async def test_an_operator_sets_and_clears_an_organizations_rate(mongo_uri: str) -> None:
    settings = make_settings(mongo_uri)
    org = ObjectId()
    reader: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        organizations = reader[settings.mongodb_db]["organizations"]
        await org_rate.apply(settings, org, 20)
        stored = await organizations.find_one({"_id": org})
        assert stored is not None and stored["ratePerSecond"] == 20
        await org_rate.apply(settings, org, None)
        stored = await organizations.find_one({"_id": org})
        assert stored is not None and "ratePerSecond" not in stored
    finally:
        await reader.close()
        await release_database(settings)


def test_bad_arguments_are_refused_before_touching_the_database() -> None:
    assert org_rate.main(["--org", "not-an-id", "--rate", "20"]) == 2
    assert org_rate.main(["--org", str(ObjectId()), "--rate", "fast"]) == 2
    assert org_rate.main(["--org", str(ObjectId()), "--rate", "0"]) == 2


async def test_a_campaign_held_by_the_rate_limit_says_so(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    campaign_id = await org.create(200)
    clock = Clock(datetime.now(UTC))
    config = replace(FAST, clock=clock, rate_per_second=10)
    dispatcher = Dispatcher(SimulatedProvider(tmp_path / "ledger.jsonl"), config)
    await org.mutate("sendCampaignNow", campaign_id)
    await dispatcher.tick()  # one second's worth, then the lane waits for the next second
    campaign = await org.campaign(campaign_id)
    assert campaign["stats"]["sent"] == 10
    [hold] = campaign["holds"]
    assert (hold["reason"], hold["recipients"], hold["zone"]) == ("rate_limit", 190, None)
    assert "10 a second" in hold["message"]
    clock.advance(timedelta(seconds=30))
    for _ in range(20):
        await dispatcher.tick()
        clock.advance(timedelta(seconds=1))
    campaign = await org.campaign(campaign_id)
    assert campaign["status"] == "completed" and campaign["holds"] == []
