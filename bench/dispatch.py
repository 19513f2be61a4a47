"""Messages per second through the dispatcher, against the raw write floor in the same run.

For each size (default 10,000 and 100,000 recipients) a fresh database gets one campaign of that
many new contacts (through the API), plus another organization's campaign of 2,000 that is not
sent. Then, in a child process per size (so peak RSS is that size's alone):

(a) one `Dispatcher` sends the campaign through the simulated provider with zero latency, no
    rate limit and 100 sends in flight, until the campaign is `completed`;
(b) the floor, on a copy of the same recipients: PyMongo marks them `sent` in the same batches
    (100 recipients, written `BULK_CHUNK` statements per command as the dispatcher must on
    FerretDB), plus one counts write per batch — the writes (a) cannot avoid, with no reads,
    rendering or provider calls.

Prints messages per second, the ratio (a)/(b) and peak RSS of each child.

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
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne

from bench.create_campaign import ContactSource, bench_settings, serving
from bench.verdict import exit_code
from core.config import Settings
from main import create_app
from models import Campaign, Recipient
from services.dispatch import DispatchConfig, Dispatcher
from services.organizations import OrganizationSettings
from services.providers import SimulatedProvider, read_ledger
from services.tenancy import BULK_CHUNK, Tenant
from tests.factories import auth, token

TARGET = 0.7
SEND_NOW = 'mutation { sendCampaignNow(id: "%s") { userErrors { code } } }'


async def seed(settings: Settings, size: int) -> tuple[str, str]:
    """Creates the campaign to send (and another organization's) through the API."""
    phones = ContactSource()
    org = ObjectId()
    async with serving(create_app(settings)) as http:
        other = {
            "name": "other",
            "message": "Hi",
            "newContacts": phones.take(2000),
        }
        answer = await http.post("/api/campaigns", json=other, headers=auth(token()))
        assert answer.status_code == 201, answer.text[:300]
        body = {
            "name": f"bench {size}",
            "message": "Hi {{firstName|there}}, our spring offer ends Friday.",
            "newContacts": phones.take(size),
        }
        answer = await http.post("/api/campaigns", json=body, headers=auth(token(org=org)))
        assert answer.status_code == 201, answer.text[:300]
        campaign_id = str(answer.json()["data"]["_id"])
        answer = await http.post(
            "/graphql",
            json={"query": SEND_NOW % campaign_id},
            headers=auth(token(org=org)),
        )
        assert answer.json()["data"]["sendCampaignNow"]["userErrors"] == [], answer.text
    return str(org), campaign_id


async def child(settings: Settings, org: str, campaign_id: str, size: int) -> dict[str, Any]:
    """Runs (b) then (a) in this process; returns the figures."""
    from core.db import create_client, init_database

    client = create_client(settings)
    await init_database(client, settings.mongodb_db)
    db = client[settings.mongodb_db]
    tenant = Tenant.for_organization(org)
    cid = ObjectId(campaign_id)
    rows = await db.recipients.find(
        {"campaignId": cid, "organizationId": ObjectId(org)}, {"_id": 1, "batch": 1}
    ).to_list()
    assert len(rows) == size, len(rows)

    # (b) the floor, on a copy of the recipients.
    copy = db.floor_recipients
    await copy.drop()
    await copy.insert_many(
        [{"_id": r["_id"], "batch": r["batch"], "status": "pending"} for r in rows]
    )
    by_batch: dict[int, list[Any]] = {}
    for r in rows:
        by_batch.setdefault(int(r["batch"]), []).append(r["_id"])
    started = time.perf_counter()
    for batch, ids in by_batch.items():
        ops = [
            UpdateOne(
                {"_id": i},
                {"$set": {"status": "sent", "providerMessageId": f"m{i}", "leaseEpoch": 0}},
            )
            for i in ids
        ]
        for start in range(0, len(ops), BULK_CHUNK):
            await copy.bulk_write(ops[start : start + BULK_CHUNK], ordered=True)
        await db.floor_counts.update_one({"_id": batch}, {"$inc": {"sent": len(ids)}}, upsert=True)
    floor_s = time.perf_counter() - started
    await copy.drop()

    # (a) the dispatcher.
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        dispatcher = Dispatcher(
            SimulatedProvider(ledger),
            DispatchConfig(
                max_in_flight=100,
                chunk=100,
                defaults=OrganizationSettings("00:00", "24:00", "UTC"),  # no quiet hours
            ),
        )
        started = time.perf_counter()
        while True:
            await dispatcher.tick()
            campaign = await tenant.get(Campaign, campaign_id)
            assert campaign is not None
            if campaign.status.value == "completed":
                break
        send_s = time.perf_counter() - started
        sent = len(read_ledger(ledger))
    problems = []
    if sent != size:
        problems.append(f"ledger holds {sent} messages for {size} recipients")
    if campaign.stats.sent != size:
        problems.append(f"stats.sent is {campaign.stats.sent}")
    left = await tenant.count(Recipient, {"campaignId": cid, "status": "pending"})
    if left:
        problems.append(f"{left} recipients still pending")
    await client.close()
    return {
        "size": size,
        "send_s": send_s,
        "floor_s": floor_s,
        "send_rate": size / send_s,
        "floor_rate": size / floor_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "problems": problems,
    }


def run_child(args: argparse.Namespace) -> int:
    settings = bench_settings(os.environ["MONGODB_URI"], args.size, 64 * 1024 * 1024)
    settings = settings.model_copy(update={"mongodb_db": args.db})
    result = asyncio.run(child(settings, args.org, args.campaign, args.size))
    print(json.dumps(result))
    return 0


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    results = []
    for size in args.sizes:
        settings = bench_settings(uri, size, 64 * 1024 * 1024)
        print(f"seeding {size:,} recipients ...", flush=True)
        org, campaign_id = await seed(settings, size)
        command = [sys.executable, "-m", "bench.dispatch", "--child", "--db", settings.mongodb_db,
                   "--org", org, "--campaign", campaign_id, "--size", str(size)]  # fmt: skip
        out = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, check=False
        )
        if out.returncode:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        result = json.loads(out.stdout.strip().splitlines()[-1])
        results.append(result)
        from core.db import create_client

        admin = create_client(settings)
        await admin.drop_database(settings.mongodb_db)
        await admin.close()
        print(
            f"{size:>8,} recipients: dispatcher {result['send_rate']:7.0f} msg/s "
            f"({result['send_s']:.1f} s), floor {result['floor_rate']:7.0f} msg/s "
            f"({result['floor_s']:.1f} s), ratio {result['send_rate'] / result['floor_rate']:.2f}, "
            f"peak RSS {result['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    for r in results:
        ratio = r["send_rate"] / r["floor_rate"]
        verdict = "meets" if ratio >= TARGET else "misses"
        print(f"target at {r['size']:,}: {ratio:.2f}x the floor {verdict} >= {TARGET}x")
    if len(results) > 1:
        growth = results[-1]["peak_rss_mb"] / results[0]["peak_rss_mb"]
        sizes = f"{results[0]['size']:,} -> {results[-1]['size']:,}"
        print(f"peak RSS {sizes}: {growth:.2f}x (target <= 1.5x)")
    return exit_code([p for r in results for p in r["problems"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
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
