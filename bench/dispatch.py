"""Messages per second through the dispatcher, against the raw write floor in the same run.

For each size (default 10,000 and 100,000 recipients) a fresh database gets, through the API,
two campaigns of that many new contacts in one organization (one to send, one for the floor)
and another organization's campaign of 2,000 that is not sent. Then, each in a child process of
its own (so peak RSS is that part's alone):

(b) the floor, on the second campaign's recipients (the same collection, indexes and document
    shape): PyMongo marks them `sent` batch by batch (100 recipients, `BULK_CHUNK` statements
    per command as the dispatcher must write on FerretDB, filtered and set like the
    dispatcher's), plus one counts `$inc` per batch: the writes (a) cannot avoid, with no
    reads beyond the batch's ids, rendering or provider calls;
(a) one `Dispatcher` sends the first campaign through the simulated provider with zero
    latency, no rate limit and 100 sends in flight, until the campaign is `completed`.

Prints messages per second, the ratio (a)/(b) and the dispatcher's peak RSS.

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.dispatch [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient, UpdateOne

from bench.create_campaign import ContactSource, bench_settings, serving
from bench.verdict import exit_code
from core.config import Settings
from main import create_app
from models import Campaign, Recipient
from services.campaigns.stats import batch_count
from services.organizations.settings import OrganizationSettings
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import SimulatedProvider
from services.storage.tenancy import BULK_CHUNK, Tenant
from tests.support import auth, token

TARGET = 0.7
SEND_NOW = 'mutation { sendCampaignNow(id: "%s") { userErrors { code } } }'


@dataclass
class Seeded:
    org: str
    campaign_id: str
    """The campaign the dispatcher sends (already `sending`)."""
    floor_campaign_id: str | None
    """A draft of as many other new contacts in the same organization, for the floor."""


async def seed(settings: Settings, size: int, *, floor: bool = False) -> Seeded:
    """Creates the campaign to send, another organization's (not sent) and, with `floor`, a
    second campaign of the same size for the floor to mark, all through the API."""
    phones = ContactSource()
    org = ObjectId()
    headers = auth(token(org=org))
    message = "Hi {{firstName|there}}, our spring offer ends Friday."

    async def create(http: httpx.AsyncClient, name: str, count: int, who: dict[str, str]) -> str:
        body = {"name": name, "message": message, "newContacts": phones.take(count)}
        answer = await http.post("/api/campaigns", json=body, headers=who)
        assert answer.status_code == 201, answer.text[:300]
        return str(answer.json()["data"]["_id"])

    async with serving(create_app(settings)) as http:
        await create(http, "other", 2000, auth(token()))
        floor_id = await create(http, f"floor {size}", size, headers) if floor else None
        campaign_id = await create(http, f"bench {size}", size, headers)
        answer = await http.post(
            "/graphql", json={"query": SEND_NOW % campaign_id}, headers=headers
        )
        assert answer.json()["data"]["sendCampaignNow"]["userErrors"] == [], answer.text
    return Seeded(str(org), campaign_id, floor_id)


async def connect(settings: Settings) -> AsyncMongoClient[dict[str, Any]]:
    from core.db import create_client, init_database

    client = create_client(settings)
    await init_database(client, settings.mongodb_db)
    return client


async def floor_child(settings: Settings, org: str, campaign_id: str, size: int) -> dict[str, Any]:
    """(b): marks the floor campaign's recipients sent, as the dispatcher must write them."""
    client = await connect(settings)
    recipients = client[settings.mongodb_db].recipients
    counts = client[settings.mongodb_db].floor_counts
    oid, cid = ObjectId(org), ObjectId(campaign_id)
    started = time.perf_counter()
    written = 0
    for batch in range(batch_count(size)):
        ids = [
            row["_id"]
            async for row in recipients.find(
                {"organizationId": oid, "campaignId": cid, "batch": batch}, {"_id": 1}
            )
        ]
        now = datetime.now(UTC)
        ops = [
            UpdateOne(
                {"organizationId": oid, "_id": i},
                {
                    "$set": {
                        "status": "sent",
                        "leaseEpoch": 0,
                        "updatedAt": now,
                        "errorCode": None,
                        "error": None,
                        "providerMessageId": f"sim-{i}",
                        "sentAt": now,
                    }
                },
            )
            for i in ids
        ]
        for start in range(0, len(ops), BULK_CHUNK):
            await recipients.bulk_write(ops[start : start + BULK_CHUNK], ordered=True)
        await counts.update_one({"_id": batch}, {"$inc": {"sent": len(ids)}}, upsert=True)
        written += len(ids)
    floor_s = time.perf_counter() - started
    await client.close()
    problems = [] if written == size else [f"the floor marked {written} of {size}"]
    return {"floor_s": floor_s, "peak_rss_mb": peak_rss_mb(), "problems": problems}


async def send_child(settings: Settings, org: str, campaign_id: str, size: int) -> dict[str, Any]:
    """(a): one dispatcher sends the campaign until it is completed."""
    client = await connect(settings)
    tenant = Tenant.for_organization(org)
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        config = DispatchConfig(
            max_in_flight=100,
            chunk=100,
            defaults=OrganizationSettings("00:00", "24:00", "UTC"),  # no quiet hours
        )
        dispatcher = Dispatcher(SimulatedProvider(ledger), config)
        started = time.perf_counter()
        while True:
            await dispatcher.tick()
            campaign = await tenant.get(Campaign, campaign_id)
            assert campaign is not None
            if campaign.status.value == "completed":
                break
        send_s = time.perf_counter() - started
        rss = peak_rss_mb()  # before the check below reads the ledger
        with ledger.open("rb") as handle:
            sent = sum(1 for _ in handle)
    problems = []
    if sent != size:
        problems.append(f"ledger holds {sent} messages for {size} recipients")
    if campaign.stats.sent != size:
        problems.append(f"stats.sent is {campaign.stats.sent}")
    left = await tenant.count(Recipient, {"campaignId": ObjectId(campaign_id), "status": "pending"})
    if left:
        problems.append(f"{left} recipients still pending")
    await client.close()
    return {"send_s": send_s, "peak_rss_mb": rss, "problems": problems}


def peak_rss_mb() -> float:
    """This process's peak resident set (`VmHWM`). Not `getrusage`'s `ru_maxrss`: Linux carries
    that over `fork` and `exec`, so a child of the seeding parent would report the parent's
    peak (the seeding parent's, 371 MB at 100,000, was reported as the dispatcher's once)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def run_child(args: argparse.Namespace) -> int:
    settings = bench_settings(os.environ["MONGODB_URI"], args.size, 64 * 1024 * 1024)
    settings = settings.model_copy(update={"mongodb_db": args.db})
    work = floor_child if args.child == "floor" else send_child
    result = asyncio.run(work(settings, args.org, args.campaign, args.size))
    print(json.dumps(result))
    return 0


async def in_child(kind: str, settings: Settings, org: str, campaign: str, size: int) -> Any:
    command = [sys.executable, "-m", "bench.dispatch", "--child", kind, "--db", settings.mongodb_db]
    command += ["--org", org, "--campaign", campaign, "--size", str(size)]
    out = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False
    )
    if out.returncode:
        print(out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(1)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    results = []
    for size in args.sizes:
        settings = bench_settings(uri, size, 64 * 1024 * 1024)
        print(f"seeding 2 x {size:,} recipients ...", flush=True)
        seeded = await seed(settings, size, floor=True)
        assert seeded.floor_campaign_id is not None
        floor = await in_child("floor", settings, seeded.org, seeded.floor_campaign_id, size)
        send = await in_child("send", settings, seeded.org, seeded.campaign_id, size)
        from core.db import create_client

        admin = create_client(settings)
        await admin.drop_database(settings.mongodb_db)
        await admin.close()
        result = {
            "size": size,
            "send_s": send["send_s"],
            "floor_s": floor["floor_s"],
            "send_rate": size / send["send_s"],
            "floor_rate": size / floor["floor_s"],
            "peak_rss_mb": send["peak_rss_mb"],
            "problems": send["problems"] + floor["problems"],
        }
        results.append(result)
        print(
            f"{size:>8,} recipients: dispatcher {result['send_rate']:7.0f} msg/s "
            f"({result['send_s']:.1f} s), floor {result['floor_rate']:7.0f} msg/s "
            f"({result['floor_s']:.1f} s), ratio {result['send_rate'] / result['floor_rate']:.2f}, "
            f"dispatcher peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    for r in results:
        ratio = r["send_rate"] / r["floor_rate"]
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"target at {r['size']:,}: {ratio:.2f}x the floor {verdict} >= {TARGET}x")
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        sizes = f"{results[0]['size']:,} -> {results[-1]['size']:,}"
        print(f"dispatcher peak RSS {sizes}: {growth:.2f}x (target <= 1.5x)")
    return exit_code([p for r in results for p in r["problems"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", choices=["floor", "send"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--org", help=argparse.SUPPRESS)
    parser.add_argument("--campaign", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
