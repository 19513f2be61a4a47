"""Fair sending: each organization's rate limit caps that organization only, its campaigns take
turns, and waiting for a rate slot never holds up anyone else.

Time is a clock the test moves (rate slots are seconds of the dispatchers' clock), so a
"second" here is one step of the test, never a wall-clock measurement.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from bson import ObjectId

from models import BatchLease, Recipient, SendSlot
from models.base import utcnow
from services.organizations.settings import set_rate_per_second
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from tests.support import FAST, Clock, Org, ledger_keys


def sent_by(ledger: Path, starts: dict[str, int]) -> Counter[str]:
    """Messages in the ledger per organization, told apart by their phones' number ranges."""
    counts = Counter[str]()
    bounds = sorted((start, name) for name, start in starts.items())
    for entry in read_ledger(ledger):
        number = int(entry["to"][-7:]) - 2000000
        counts[[name for start, name in bounds if number >= start][-1]] += 1
    return counts


def dispatchers(count: int, ledger: Path, config: DispatchConfig) -> list[Dispatcher]:
    """`count` dispatchers with owners of their own, as separate processes would be."""
    return [
        Dispatcher(SimulatedProvider(ledger), replace(config, owner=f"{config.owner}-{i}"))
        for i in range(count)
    ]


async def test_each_organization_gets_its_own_limit_and_a_small_campaign_is_not_held_up(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Limits of 5 and 10 a second, two campaigns of 1,000 sending at once: 5 and 10 messages
    in each second; a third organization's 20 recipients, sent later, finish before either.
    First on one dispatcher, then on two (as two processes would be) sharing the limits. Ten
    batches each: more than two dispatchers take at once, and more than 16 seconds send."""
    slow, fast, small = Org(client), Org(client), Org(client)
    starts = {"slow": 0, "fast": 1000, "small": 2000}
    big_slow = await slow.create(1000, start=starts["slow"])
    big_fast = await fast.create(1000, start=starts["fast"])
    late = [await small.create(20, start=starts["small"] + 20 * i) for i in range(2)]
    await set_rate_per_second(slow.tenant(), 5)
    await set_rate_per_second(fast.tenant(), 10)  # `small` keeps the deployment's 10
    clock = Clock(utcnow())
    ledger = tmp_path / "l.jsonl"
    config = replace(FAST, rate_per_second=10, clock=clock)
    await slow.mutate("sendCampaignNow", big_slow)
    await fast.mutate("sendCampaignNow", big_fast)

    for phase, processes in enumerate((1, 2)):
        senders = dispatchers(processes, ledger, replace(config, owner=f"p{phase}"))
        seconds: list[Counter[str]] = []
        done_at = None
        for second in range(8):
            if second == 2:
                await small.mutate("sendCampaignNow", late[phase])
            before = sent_by(ledger, starts)
            await asyncio.gather(*(d.tick() for d in senders))
            seconds.append(sent_by(ledger, starts) - before)
            if done_at is None and (await small.campaign(late[phase]))["status"] == "completed":
                done_at = second
                assert (await slow.campaign(big_slow))["status"] == "sending"
                assert (await fast.campaign(big_fast))["status"] == "sending"
            clock.now += timedelta(seconds=1)
        slow_rate = sum(s["slow"] for s in seconds) / len(seconds)
        fast_rate = sum(s["fast"] for s in seconds) / len(seconds)
        assert 4 <= slow_rate <= 5 and 8 <= fast_rate <= 10, (processes, seconds)
        assert all(s["slow"] <= 5 and s["fast"] <= 10 for s in seconds), (processes, seconds)
        # The small campaign went out at its own 10 a second, in the two seconds after `send`.
        assert done_at == 3, (processes, seconds)
        assert [s["small"] for s in seconds[2:4]] == [10, 10], (processes, seconds)
    assert set(ledger_keys(ledger).values()) == {1}
    # The slots agree: each second's claims add up to the organization's rate, never more.
    for org, rate in ((slow, 5), (fast, 10)):
        slots = await org.tenant().raw_find(SendSlot, {}).to_list()
        per_second = Counter[int]()
        for row in slots:
            per_second[row["second"]] += row["size"]
        assert set(per_second.values()) == {rate}, per_second


@pytest.mark.parametrize("processes", [1, 2])
async def test_waiting_for_a_rate_slot_holds_nothing_up(
    client: httpx.AsyncClient, tmp_path: Path, processes: int
) -> None:
    """The clock stands still, so the limited organization's second never ends: it sends its 5
    and waits, holding no lease and no send, while another organization's campaign goes out
    whole."""
    limited, other = Org(client), Org(client)
    waiting = await limited.create(300)
    free = await other.create(200, start=1000)  # a batch for each of two dispatchers
    await set_rate_per_second(limited.tenant(), 5)
    ledger = tmp_path / "l.jsonl"
    config = replace(FAST, clock=Clock(utcnow()))  # no deployment limit: `other` has none
    senders = dispatchers(processes, ledger, config)
    await limited.mutate("sendCampaignNow", waiting)
    await other.mutate("sendCampaignNow", free)
    stop = asyncio.Event()
    running = [asyncio.create_task(d.run(stop)) for d in senders]
    try:
        for _ in range(600):
            if (await other.campaign(free))["status"] == "completed":
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.gather(*running)
    assert (await other.campaign(free))["stats"]["sent"] == 200
    assert sent_by(ledger, {"limited": 0, "other": 1000})["limited"] == 5
    assert (await limited.campaign(waiting))["status"] == "sending"
    # What the limited organization's lane left: its batches given back, nobody `sending`.
    leases = await limited.tenant().raw_find(BatchLease, {}).to_list()
    assert leases and all(row.get("released") for row in leases)
    rows = await limited.tenant().raw_find(Recipient, {"campaignId": ObjectId(waiting)}).to_list()
    assert Counter(row["status"] for row in rows) == Counter({"pending": 295, "sent": 5})


async def test_a_small_campaign_takes_turns_with_a_big_one_of_the_same_organization(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    org = Org(client)
    big = await org.create(1000)
    small = await org.create(20, start=1000)
    await set_rate_per_second(org.tenant(), 10)
    clock = Clock(utcnow())
    ledger = tmp_path / "l.jsonl"
    dispatcher = Dispatcher(SimulatedProvider(ledger), replace(FAST, clock=clock))
    await org.mutate("sendCampaignNow", big)
    for _ in range(5):
        await dispatcher.tick()
        clock.now += timedelta(seconds=1)
    await org.mutate("sendCampaignNow", small)
    seconds = 0
    while (await org.campaign(small))["status"] != "completed" and seconds < 10:
        await dispatcher.tick()
        clock.now += timedelta(seconds=1)
        seconds += 1
    # Every other turn of the organization's 10 a second: the 20 are out in 4 seconds at most.
    assert seconds <= 4
    assert (await org.campaign(small))["stats"]["sent"] == 20
    assert (await org.campaign(big))["status"] == "sending"
    assert len(read_ledger(ledger)) == 10 * (5 + seconds)
