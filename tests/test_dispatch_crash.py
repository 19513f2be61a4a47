"""Worker processes killed with SIGKILL mid-send: every recipient still gets each step of a
two-step campaign (a first message and an autopilot follow-up) exactly once.

Two real `python -m worker` processes share the test's database and the simulated provider's
ledger (a real provider's record of what it accepted). Each time another eighth of the messages
went out, one of the workers holding a batch at that moment (picked at random) is killed and
restarted; its leases expire and the other (or its restarted self) takes the batches over,
retrying the interrupted recipients with the same idempotency keys. Three batches of each step
are enough for that: every kill lands on a holder mid-send. The smaller variant of the crash run
described in the README (which uses 10,000 recipients and 20 kills).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from pathlib import Path

import httpx
from bson import ObjectId

from core.config import Settings
from models import BatchCounts, BatchLease, Campaign, Recipient, StepSend
from models.recipient import RECIPIENT_BATCH
from services.sending.providers import read_ledger
from tests.support import Org, start_worker, stop_workers

RECIPIENTS = 3 * RECIPIENT_BATCH
MESSAGES = 2 * RECIPIENTS  # the first message and one follow-up each
KILLS = 6


async def holding(
    org: Org, campaign_id: str, workers: dict[str, subprocess.Popen[bytes]]
) -> list[str]:
    """The running workers holding an unfinished batch of the campaign (a lease's owner is
    named `host:pid:...`; a killed worker's leases name a pid no longer running)."""
    leases = (
        await org.tenant()
        .raw_find(BatchLease, {"campaignId": ObjectId(campaign_id), "done": False})
        .to_list()
    )
    pids = {int(lease["owner"].split(":")[1]) for lease in leases}
    return sorted(name for name, process in workers.items() if process.pid in pids)


async def test_killed_workers_never_message_a_recipient_twice(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    follow_up = [{"delayMinutes": 1, "message": "Still there, {{firstName|friend}}?"}]
    campaign_id = await org.create(RECIPIENTS, followUps=follow_up, isAutopilot=True)
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    workers = {
        name: start_worker(settings.mongodb_uri, settings.mongodb_db, ledger, name)
        for name in ("a", "b")
    }
    rng = random.Random(7)
    kills = 0
    try:
        await org.mutate("sendCampaignNow", campaign_id)
        status = "sending"
        for _ in range(600):  # at most ~120 s
            await asyncio.sleep(0.2)
            status = (await org.campaign(campaign_id))["status"]
            if status == "completed":
                break
            # Kill after each further eighth of the messages went out, a worker that holds a
            # batch then, so every kill lands mid-send however fast or slow the machine is.
            due = (kills + 1) * MESSAGES // (KILLS + 2)
            if kills < KILLS and len(read_ledger(ledger)) >= due:
                holders = await holding(org, campaign_id, workers)
                if not holders:
                    continue  # between two batches: the next look finds one held
                victim = rng.choice(holders)
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(timeout=10)
                kills += 1
                workers[victim] = start_worker(
                    settings.mongodb_uri, settings.mongodb_db, ledger, victim
                )
        assert status == "completed", (status, len(read_ledger(ledger)), kills)
    finally:
        stop_workers(workers)

    tenant = org.tenant()
    rows = await tenant.raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    keys = Counter(entry["key"] for entry in read_ledger(ledger))
    assert kills == KILLS
    assert len(keys) == MESSAGES and set(keys.values()) == {1}, keys.most_common(3)
    assert set(keys) == {str(row["_id"]) for row in rows} | {f"{row['_id']}:1" for row in rows}
    assert Counter(row["status"] for row in rows) == Counter({"sent": RECIPIENTS})
    steps = await tenant.raw_find(StepSend, {"campaignId": ObjectId(campaign_id)}).to_list()
    assert Counter(row["status"] for row in steps) == Counter({"sent": RECIPIENTS})
    stored = await tenant.get(Campaign, campaign_id)
    assert stored is not None and stored.stats.sent == RECIPIENTS
    answer = await org.campaign(campaign_id)
    assert answer["stats"]["sent"] == RECIPIENTS and answer["stats"]["successRate"] == "100%"
    assert answer["followUpStats"] == [
        {"step": 1, "sent": RECIPIENTS, "failed": 0, "skipped": 0, "replied": 0, "pending": 0}
    ]
    # A batch's counts carry its last holder's epoch (lease records of a finished campaign are
    # purged): above 0, the batch was claimed again after its holder was killed.
    counts = await tenant.raw_find(BatchCounts, {"campaignId": ObjectId(campaign_id)}).to_list()
    takeovers = sum(1 for row in counts if row["epoch"] > 0)
    assert takeovers > 0
    print(f"\n{kills} kills, {takeovers} batches taken over, {len(keys)} messages, none twice")
