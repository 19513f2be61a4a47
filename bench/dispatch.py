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

The multi-tenant case (`--case tenants`): 20 organizations with one campaign of 1,000 each, all
sending at once at 10 messages a second each, through the simulated provider with 50 ms of
latency, on one `python -m worker` process and then on two. Over a measured window it prints
the aggregate rate against the sum of the limits (target >= 0.9x), the spread between the
slowest and the fastest organization (target: the slowest within 20 % of the fastest), and how
long a late organization's 20-recipient campaign waits for its first message (target <= 5 s).

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.dispatch [--case single|tenants|all] [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
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
from tests.support import TEST_JWT_SECRET, auth, token

TARGET = 0.7
TENANTS = 20
TENANT_SIZE = 1000
TENANT_RATE = 10
LATENCY_MS = 50
AGGREGATE_TARGET = 0.9
SPREAD_TARGET = 0.8
FIRST_MESSAGE_TARGET_S = 5.0
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


@dataclass
class Tenants:
    """The multi-tenant case's campaigns: every organization's phones, to tell its messages
    apart in the ledger, and the late campaigns (one per run) with their own."""

    phones: dict[str, str]
    """Phone -> organization (the late ones under "late")."""
    late: list[tuple[str, dict[str, str]]]
    """Per run: the late campaign's id and its organization's headers."""


async def seed_tenants(settings: Settings, runs: int) -> Tenants:
    """Creates and sends one campaign per organization, and creates (not sends) the late
    organization's small campaigns, all through the API."""
    source = ContactSource()
    phones: dict[str, str] = {}
    late: list[tuple[str, dict[str, str]]] = []
    message = "Hi {{firstName|there}}, our spring offer ends Friday."

    async def create(http: httpx.AsyncClient, org: str, count: int, headers: dict[str, str]) -> str:
        contacts = source.take(count)
        phones.update({c["phoneNumber"]: org for c in contacts})
        body = {"name": f"{org} campaign", "message": message, "newContacts": contacts}
        answer = await http.post("/api/campaigns", json=body, headers=headers)
        assert answer.status_code == 201, answer.text[:300]
        return str(answer.json()["data"]["_id"])

    async with serving(create_app(settings)) as http:
        sends = []
        for _ in range(TENANTS):
            org = ObjectId()
            headers = auth(token(org=org))
            sends.append((await create(http, str(org), TENANT_SIZE, headers), headers))
        late_org = ObjectId()
        late_headers = auth(token(org=late_org))
        for _ in range(runs):
            late.append((await create(http, "late", 20, late_headers), late_headers))
        for campaign_id, headers in sends:  # all at once, once every campaign exists
            answer = await http.post(
                "/graphql", json={"query": SEND_NOW % campaign_id}, headers=headers
            )
            assert answer.json()["data"]["sendCampaignNow"]["userErrors"] == [], answer.text
    return Tenants(phones, late)


class LedgerTail:
    """Reads the lines the workers append to the shared ledger since the last look."""

    def __init__(self, path: Path, phones: dict[str, str]) -> None:
        self.path = path
        self.phones = phones
        self.offset = 0

    def read(self) -> list[str]:
        """The organizations of the messages accepted since the last read, in order."""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        return [
            self.phones.get(json.loads(line)["to"], "?") for line in data[:end].splitlines() if line
        ]


def start_dispatcher(settings: Settings, ledger: Path, name: str) -> subprocess.Popen[bytes]:
    """A real `python -m worker`: the simulated provider with 50 ms of latency, 10 messages a
    second per organization, no quiet hours."""
    env = {
        **os.environ,
        "MONGODB_URI": settings.mongodb_uri,
        "MONGODB_DB": settings.mongodb_db,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "DISPATCH_PROVIDER": "simulated",
        "SIMULATED_LEDGER": str(ledger),
        "SIMULATED_LATENCY_MS": str(LATENCY_MS),
        "DISPATCH_RATE_PER_SECOND": str(TENANT_RATE),
        "DISPATCH_MAX_IN_FLIGHT": "200",
        "SEND_WINDOW_START": "00:00",
        "SEND_WINDOW_END": "24:00",
    }
    log = (ledger.parent / f"{name}.log").open("ab")
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "worker"]
    return subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log)


async def tenants_run(
    settings: Settings, tenants: Tenants, run: int, processes: int, window_s: float
) -> dict[str, Any]:
    """Starts `processes` workers, skips a warm-up, counts every organization's messages over
    `window_s`, sends the late campaign in the middle and times its first message."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "ledger.jsonl"
        ledger.touch()
        tail = LedgerTail(ledger, tenants.phones)
        workers = [start_dispatcher(settings, ledger, f"w{i}") for i in range(processes)]
        try:
            # Warm-up: until every organization's messages flow (workers start slowly on a
            # busy machine), then one more second.
            flowing: set[str] = set()
            organizations = set(tenants.phones.values()) - {"late"}
            deadline = time.perf_counter() + 180
            while flowing != organizations and time.perf_counter() < deadline:
                await asyncio.sleep(0.2)
                flowing.update(tail.read())
            await asyncio.sleep(1.0)
            tail.read()
            counts: dict[str, int] = {}
            late_id, late_headers = tenants.late[run]
            started = time.perf_counter()
            sent_at: float | None = None
            first_s: float | None = None
            async with serving(create_app(settings)) as http:
                while (elapsed := time.perf_counter() - started) < window_s:
                    if sent_at is None and elapsed >= window_s / 2:
                        answer = await http.post(
                            "/graphql", json={"query": SEND_NOW % late_id}, headers=late_headers
                        )
                        assert answer.json()["data"]["sendCampaignNow"]["userErrors"] == []
                        sent_at = time.perf_counter()
                    for org in tail.read():
                        counts[org] = counts.get(org, 0) + 1
                        if org == "late" and first_s is None and sent_at is not None:
                            first_s = time.perf_counter() - sent_at
                    await asyncio.sleep(0.02)
            measured = time.perf_counter() - started
        finally:
            stopping = time.perf_counter()
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    problems.append("a worker did not stop within 120 s of SIGTERM")
            stop_s = time.perf_counter() - stopping
        keys = [json.loads(line)["key"] for line in ledger.read_text().splitlines() if line]
        if len(keys) != len(set(keys)):
            problems.append(f"{len(keys) - len(set(keys))} messages sent twice")
    per_org = [counts.get(org, 0) / measured for org in set(tenants.phones.values()) - {"late"}]
    if first_s is None:
        problems.append("the late campaign sent nothing within the window")
    return {
        "processes": processes,
        "aggregate": sum(per_org),
        "min": min(per_org),
        "max": max(per_org),
        "first_s": first_s,
        "stop_s": stop_s,
        "problems": problems,
    }


async def tenants_case(uri: str, window_s: float) -> list[str]:
    settings = bench_settings(uri, TENANT_SIZE, 64 * 1024 * 1024)
    print(f"seeding {TENANTS} organizations x {TENANT_SIZE:,} recipients ...", flush=True)
    tenants = await seed_tenants(settings, runs=2)
    problems: list[str] = []
    limit = TENANTS * TENANT_RATE
    for run, processes in enumerate((1, 2)):
        result = await tenants_run(settings, tenants, run, processes, window_s)
        problems += result["problems"]
        ratio = result["aggregate"] / limit
        spread = result["min"] / result["max"] if result["max"] else 0.0
        first = result["first_s"]
        print(
            f"{TENANTS} organizations x {TENANT_RATE}/s on {processes} process(es): "
            f"{result['aggregate']:.1f} msg/s of {limit} ({ratio:.2f}x, target >= "
            f"{AGGREGATE_TARGET}x); per organization {result['min']:.1f}-{result['max']:.1f} "
            f"msg/s (min/max {spread:.2f}, target >= {SPREAD_TARGET}); late campaign's first "
            f"message after {'-' if first is None else f'{first:.2f}'} s "
            f"(target <= {FIRST_MESSAGE_TARGET_S:.0f} s); stopped {result['stop_s']:.1f} s "
            "after SIGTERM",
            flush=True,
        )
    from core.db import create_client

    admin = create_client(settings)
    await admin.drop_database(settings.mongodb_db)
    await admin.close()
    return problems


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    problems: list[str] = []
    if args.case in ("tenants", "all"):
        problems += await tenants_case(uri, args.window)
    if args.case == "tenants":
        return exit_code(problems)
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
    return exit_code(problems + [p for r in results for p in r["problems"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["single", "tenants", "all"], default="all")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured per run")
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
