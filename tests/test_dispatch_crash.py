"""Worker processes killed with SIGKILL mid-send: every recipient still messaged exactly once.

Two real `python -m worker` processes share the test's database and the simulated provider's
ledger (a real provider's record of what it accepted). At random moments a worker holding a
batch is killed and restarted; its leases expire and the other (or its restarted self) takes
the batches over, retrying the interrupted recipients with the same idempotency keys. Only a
holder is killed, so every kill interrupts a batch, and a killed batch keeps the campaign open
until it is taken over: the kills happen however fast the machine sends. The smaller variant
of the crash run described in the README (which uses 10,000 recipients and 20 kills).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import httpx
from bson import ObjectId

from core.config import Settings
from models import BatchLease, Campaign, Recipient
from services.sending.providers import read_ledger
from services.storage.tenancy import Tenant
from tests.support import Org, start_worker, stop_workers

RECIPIENTS = 600
KILLS = 3


async def holders(
    tenant: Tenant, campaign_id: str, workers: Mapping[str, subprocess.Popen[bytes]]
) -> list[str]:
    """The live workers holding one of the campaign's batches (a lease's owner names its
    holder's pid: `host:pid:id`)."""
    leases = await tenant.raw_find(
        BatchLease, {"campaignId": ObjectId(campaign_id), "done": False}
    ).to_list()
    held = {lease["owner"].split(":")[1] for lease in leases if not lease.get("released")}
    return sorted(name for name, process in workers.items() if str(process.pid) in held)


async def test_killed_workers_never_message_a_recipient_twice(
    client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    org = Org(client)
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    workers = {  # started first: they boot while the campaign is created
        name: start_worker(settings.mongodb_uri, settings.mongodb_db, ledger, name)
        for name in ("a", "b")
    }
    rng = random.Random(7)
    kills = 0
    try:
        campaign_id = await org.create(RECIPIENTS)
        await org.mutate("sendCampaignNow", campaign_id)
        status = "sending"
        for _ in range(600):  # at most ~120 s
            await asyncio.sleep(0.2)
            status = (await org.campaign(campaign_id))["status"]
            if status == "completed":
                break
            if kills < KILLS and rng.random() < 0.5 and len(read_ledger(ledger)) > 0:
                busy = await holders(org.tenant(), campaign_id, workers)
                if not busy:
                    continue
                victim = rng.choice(busy)
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
    assert len(keys) == RECIPIENTS and set(keys.values()) == {1}, keys.most_common(3)
    assert set(keys) == {str(row["_id"]) for row in rows}
    assert Counter(row["status"] for row in rows) == Counter({"sent": RECIPIENTS})
    stored = await tenant.get(Campaign, campaign_id)
    assert stored is not None and stored.stats.sent == RECIPIENTS
    answer = await org.campaign(campaign_id)
    assert answer["stats"]["sent"] == RECIPIENTS and answer["stats"]["successRate"] == "100%"
    leases = await tenant.raw_find(BatchLease, {"campaignId": ObjectId(campaign_id)}).to_list()
    takeovers = sum(1 for lease in leases if lease["epoch"] > 0)
    assert takeovers >= 1  # a killed holder's batch was finished by another
    print(f"\n{kills} kills, {takeovers} batches taken over, {len(keys)} messages, none twice")
