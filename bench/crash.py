"""The full crash run: workers killed with SIGKILL mid-send, and still no recipient messaged twice.

A campaign of 10,000 recipients (and another organization's 2,000, not sent) is created through
the API; two `python -m worker` processes send it through the simulated provider, whose durable
ledger is what a real provider would have accepted. At random moments (0.3-1.5 s apart) one of
the two, picked at random, is killed with SIGKILL and restarted, 20 times, each time after
more messages went out since the previous kill (so every kill lands mid-send). At the end:

- every recipient is in the ledger exactly once, or is `unknown` (reported: the simulated
  provider honours idempotency keys, so there should be none);
- recipient states and the campaign's stats agree, and the campaign is `completed`;
- the figures: elapsed time, kills, batches taken over, messages, duplicates, unknown.

`--follow-ups N` gives the campaign N autopilot steps of one minute each (half a second in the
workers, `FOLLOW_UP_MINUTE_SECONDS`): every step of every recipient must then be in the ledger
exactly once too (key `<recipient>:<step>`).

`tests/test_dispatch_crash.py` is the smaller variant `make test` runs (with one follow-up).

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.crash [--recipients 10000 --kills 20 --follow-ups 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bson import ObjectId

from bench.create_campaign import bench_settings
from bench.dispatch import seed
from bench.verdict import exit_code
from core.db import create_client, init_database
from models import BatchCounts, Campaign, Recipient, StepSend
from schema.outputs import success_rate
from services.campaigns.stats import live_stats
from services.sending.providers import read_ledger
from services.storage.tenancy import Tenant
from tests.support import start_worker, stop_workers


async def run(
    recipients: int, kills_wanted: int, latency_ms: int, seed_value: int, follow_ups: int
) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    settings = bench_settings(uri, recipients, 64 * 1024 * 1024)
    print(f"seeding {recipients:,} recipients (and 2,000 of another organization) ...", flush=True)
    seeded = await seed(settings, recipients)
    org, campaign_id = seeded.org, seeded.campaign_id
    client = create_client(settings)
    await init_database(client, settings.mongodb_db)
    tenant = Tenant.for_organization(org)
    if follow_ups:
        steps = [{"delayMinutes": 1, "message": f"Step {n}"} for n in range(1, follow_ups + 1)]
        await tenant.update_one(
            Campaign,
            {"_id": ObjectId(campaign_id)},
            {"$set": {"followUps": steps, "isAutopilot": True}},
        )
    rng = random.Random(seed_value)
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        ledger.touch()

        def start(name: str) -> subprocess.Popen[bytes]:
            return start_worker(
                settings.mongodb_uri, settings.mongodb_db, ledger, name, latency_ms=latency_ms
            )

        workers = {name: start(name) for name in ("a", "b")}
        kills = accepted_at_kill = 0
        started = time.perf_counter()
        next_kill = started + rng.uniform(0.3, 1.5)
        status = "sending"
        try:
            while time.perf_counter() - started < 900:
                await asyncio.sleep(0.1)
                campaign = await tenant.get(Campaign, campaign_id)
                assert campaign is not None
                status = campaign.status.value
                if status == "completed":
                    break
                accepted = ledger.read_bytes().count(b"\n")
                # A kill lands mid-send: after messages went out since the previous one.
                due = time.perf_counter() >= next_kill and accepted > accepted_at_kill
                if kills < kills_wanted and due:
                    victim = rng.choice(list(workers))
                    workers[victim].send_signal(signal.SIGKILL)
                    workers[victim].wait(timeout=10)
                    kills += 1
                    accepted_at_kill = accepted
                    print(
                        f"  kill {kills:>2}: worker {victim} at {accepted:,} messages", flush=True
                    )
                    workers[victim] = start(victim)
                    next_kill = time.perf_counter() + rng.uniform(0.3, 1.5)
        finally:
            stop_workers(workers)
        elapsed = time.perf_counter() - started
        entries = read_ledger(ledger)
        logs = {name: (Path(tmp) / f"{name}.log").read_text(errors="replace") for name in "ab"}

    keys = Counter(entry["key"] for entry in entries)
    rows = await tenant.raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    states = Counter(row["status"] for row in rows)
    ids = {str(row["_id"]) for row in rows}
    unknown = {str(row["_id"]) for row in rows if row["status"] == "unknown"}
    steps_sent = await tenant.raw_find(
        StepSend, {"campaignId": ObjectId(campaign_id)}, {"status": 1}
    ).to_list()
    unknown |= {str(row["_id"]) for row in steps_sent if row["status"] == "unknown"}
    ids |= {f"{rid}:{n}" for rid in list(ids) for n in range(1, follow_ups + 1)}
    twice = sum(1 for count in keys.values() if count > 1)
    # A batch's counts carry its last holder's epoch (lease records of a finished campaign are
    # purged): above 0, the batch was claimed again after its holder was killed.
    counts = await tenant.raw_find(BatchCounts, {"campaignId": ObjectId(campaign_id)}).to_list()
    takeovers = sum(1 for row in counts if row["epoch"] > 0)
    stored = await tenant.get(Campaign, campaign_id)
    assert stored is not None
    stats = await live_stats(tenant, stored)

    if status != "completed":
        problems.append(f"the campaign is {status} after {elapsed:.0f} s")
    if kills < kills_wanted:
        problems.append(f"only {kills} of {kills_wanted} kills: the campaign finished first")
    if twice:
        problems.append(f"{twice} messages went more than once")
    if set(keys) - ids:
        problems.append(f"{len(set(keys) - ids)} ledger keys name no recipient")
    if ids - set(keys) - unknown:
        problems.append(f"{len(ids - set(keys) - unknown)} recipients neither messaged nor unknown")
    first_unknown = states["unknown"]
    if states != Counter(sent=states["sent"], unknown=first_unknown):
        problems.append(f"recipient states {dict(states)}")
    if (stats.sent, stats.unknown, stats.total) != (states["sent"], first_unknown, recipients):
        problems.append(f"stats {stats} disagree with recipient states {dict(states)}")
    for name, text in logs.items():
        if "Traceback" in text:
            problems.append(f"worker {name} logged a traceback (see its log)")
            print(text[-3000:], file=sys.stderr)
    await client.drop_database(settings.mongodb_db)
    await client.close()

    print(
        f"{recipients:,} recipients x {follow_ups + 1} steps, 2 workers, {kills} SIGKILLs: "
        f"completed in {elapsed:.1f} s; "
        f"{len(keys):,} messages in the ledger, {twice} messages went twice, "
        f"{len(unknown)} unknown, {takeovers} batches taken over after a kill; "
        f"stats sent {stats.sent:,} / unknown {stats.unknown} / total {stats.total:,} "
        f"(successRate {success_rate(stats)})"
    )
    return exit_code(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=20, help="the simulated provider's")
    parser.add_argument("--seed", type=int, default=20261127, help="of the kill schedule")
    parser.add_argument("--follow-ups", type=int, default=0, help="autopilot steps (0-5)")
    args = parser.parse_args(argv)
    return asyncio.run(
        run(args.recipients, args.kills, args.latency_ms, args.seed, args.follow_ups)
    )


if __name__ == "__main__":
    sys.exit(main())
