"""Lease records the dispatchers no longer read are purged; the ones that decide anything are
kept, and fencing still stops an old holder.

Time is a clock the test moves (leases, rate slots and the purge's period follow it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
from bson import ObjectId

from models import BatchCounts, BatchLease
from models.base import utcnow
from services.organizations.settings import set_rate_per_second
from services.sending.dispatcher import Dispatcher
from services.sending.lease_records import PURGE_EVERY, purge_superseded
from services.sending.leases import Claim
from services.sending.providers import SimulatedProvider
from tests.support import FAST, Clock, Org, ledger_keys


async def epochs(org: Org, campaign_id: str) -> dict[int, list[int]]:
    rows = await org.tenant().raw_find(BatchLease, {"campaignId": ObjectId(campaign_id)}).to_list()
    found: dict[int, list[int]] = {}
    for row in rows:
        found.setdefault(int(row["batch"]), []).append(int(row["epoch"]))
    return {batch: sorted(values) for batch, values in found.items()}


async def test_superseded_epochs_are_purged_the_latest_and_the_done_ones_kept(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A rate-limited batch takes a turn (a lease epoch) a second. Once a purge period has
    passed, only each batch's latest epoch is left; an old holder is still fenced out though
    the epoch after its own is gone; the campaign completes, and then only each batch's done
    record is left."""
    org = Org(client)
    campaign = await org.create(210)  # batches of 100, 100 and 10, at 10 a second
    await set_rate_per_second(org.tenant(), 10)
    clock = Clock(utcnow())
    ledger = tmp_path / "l.jsonl"
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", campaign)
    for _ in range(6):
        await dispatcher.tick()
        clock.advance(timedelta(seconds=1))
    assert await epochs(org, campaign) == {0: [0, 1, 2, 3, 4, 5]}  # one record per turn

    # A live lease (held, unexpired) of another batch, and a purge period later.
    tenant = org.tenant()
    held = await dispatcher.claim(tenant, ObjectId(campaign), 2)
    assert held is not None
    clock.advance(PURGE_EVERY)
    await dispatcher.purge_leases()
    assert await epochs(org, campaign) == {0: [5], 2: [0]}
    # The holder of epoch 3 is still fenced out: a later epoch exists, though not its next.
    old = Claim(tenant, ObjectId(campaign), 0, 3, takeover=False)
    assert not await dispatcher.leases.holds(old)
    assert await dispatcher.leases.holds(Claim(tenant, ObjectId(campaign), 0, 5, False))

    # An epoch superseded less than two leases ago stays: a claim read that recently could
    # otherwise insert its number again.
    await dispatcher.tick()
    clock.advance(timedelta(seconds=1))
    await dispatcher.tick()
    assert await epochs(org, campaign) == {0: [5, 6, 7], 2: [0]}
    recently = clock() - 2 * timedelta(seconds=FAST.lease_seconds)
    assert await purge_superseded(tenant, ObjectId(campaign), recently) == 1
    assert await epochs(org, campaign) == {0: [6, 7], 2: [0]}

    await dispatcher.leases.release(held, done=False)
    for _ in range(40):
        if (await org.campaign(campaign))["status"] == "completed":
            break
        clock.advance(timedelta(seconds=1))
        await dispatcher.tick()
    assert (await org.campaign(campaign))["stats"]["sent"] == 210
    assert set(ledger_keys(ledger).values()) == {1}
    await dispatcher.tick()  # the next look purges what the completed campaign left
    # Each batch keeps its done record only (a retry of failed messages reads them).
    left = await tenant.raw_find(BatchLease, {"campaignId": ObjectId(campaign)}).to_list()
    assert sorted(int(row["batch"]) for row in left) == [0, 1, 2]
    assert all(row["done"] for row in left)
    # What the batches' holders did is still on their counts.
    counts = await tenant.raw_find(BatchCounts, {"campaignId": ObjectId(campaign)}).to_list()
    assert sorted(int(row["batch"]) for row in counts) == [0, 1, 2]


async def test_a_paused_campaign_keeps_its_leases_and_a_cancelled_one_does_not(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    paused, cancelled = await org.create(200), await org.create(200, start=200)
    await set_rate_per_second(org.tenant(), 40)
    clock = Clock(utcnow())
    dispatcher = Dispatcher(SimulatedProvider(tmp_path / "l.jsonl"), replace(FAST, clock=clock))
    for campaign in (paused, cancelled):
        await org.mutate("sendCampaignNow", campaign)
    for _ in range(3):
        await dispatcher.tick()
        clock.advance(timedelta(seconds=1))
    assert await epochs(org, paused) and await epochs(org, cancelled)
    await org.mutate("pauseCampaign", paused)
    await org.mutate("cancelCampaign", cancelled)
    kept = await epochs(org, paused)
    await dispatcher.tick()  # both leave the lane at this look
    await dispatcher.tick()
    assert await epochs(org, paused) == kept
    assert await epochs(org, cancelled) == {}
    # Resuming continues where it stopped: every recipient once.
    await org.mutate("resumeCampaign", paused)
    for _ in range(20):
        if (await org.campaign(paused))["status"] == "completed":
            break
        clock.advance(timedelta(seconds=1))
        await dispatcher.tick()
    assert (await org.campaign(paused))["stats"]["sent"] == 200
    keys = ledger_keys(tmp_path / "l.jsonl")
    assert set(keys.values()) == {1} and Counter(keys.values())[1] >= 200
