"""Measures the streamed CSV exports: memory stays flat as rows grow, and rows per second
against a raw cursor read of the same documents in the same run.

For each size (10,000 and 100,000 rows by default) the parent seeds one organization on a fresh
database: contacts on claimed list pages and one campaign with a recipient per contact, written
as the app writes them. Each export then runs in a child process of its own, so that peak memory
is that export's alone:

- the child starts the real app (`main.create_app`) and calls it over ASGI directly, counting
  and discarding each body chunk as it arrives (an HTTP client would hold the body);
- it exports a small organization first (imports, caches and pools warm), then samples its
  resident set every 2 ms while exporting: peak minus the level just before is the growth;
- the floor: a PyMongo cursor over the same documents (`{organizationId}` for contacts,
  `{organizationId, campaignId}` for recipients, the export's fields, batches of 5,000),
  counted and dropped, timed in the same child, alternating with the export, best of `--rounds`.
  The recipients export also reads each recipient's contact; its floor reads recipients only.

Run with
    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.export [--sizes 10000 100000] [--rounds 3]

Exits 1 when an export does not hold one row per document; figures are reported, never failed
on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from asgi_lifespan import LifespanManager
from beanie import PydanticObjectId
from bson import ObjectId
from fastapi import FastAPI

from bench.verdict import exit_code
from core.config import Settings
from core.db import create_client, init_database
from main import create_app
from models import Campaign, Contact, Recipient
from models.campaign import CreatedBy
from services.campaigns.recipients import recipient_documents
from services.contacts.export import CONTACT_COLUMNS
from services.contacts.records import ContactRef
from services.sending.export import RECIPIENT_FIELDS
from services.storage import positions
from services.storage.tenancy import RAW_BATCH, Tenant
from tests.support import TEST_JWT_SECRET, auth, token

WARM_ROWS = 1_000
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def bench_settings(uri: str, database: str) -> Settings:
    return Settings(
        environment="test",
        mongodb_uri=uri,
        mongodb_db=database,
        mongodb_timeout_ms=30_000,
        jwt_secret=TEST_JWT_SECRET,
        log_level="WARNING",
        dispatch_in_process=False,
    )


# -- seeding (parent) -----------------------------------------------------------------------


async def seed_organization(count: int, *, first_phone: int = 0) -> tuple[ObjectId, ObjectId]:
    """Writes `count` contacts on list pages and a campaign of all of them; returns the ids."""
    org = ObjectId()
    tenant = Tenant.for_organization(org)
    pages = await positions.claim_pages(tenant, count)
    contacts = [
        {
            "_id": ObjectId(),
            "phoneNumber": f"+1212{first_phone + i:07d}",
            "firstName": f"First{i}",
            "lastName": "Last, Name",
            "email": f"c{i}@example.com",
            "contactStatus": "New Lead",
            "tags": ["bench", "spring"],
            "optedOut": False,
            "page": pages[i // positions.CONTACTS_PER_PAGE],
        }
        for i in range(count)
    ]
    campaign = Campaign(
        organizationId=tenant.organization_id,
        name="Export bench",
        message="Hi",
        createdBy=CreatedBy(id=PydanticObjectId(), fullName="Bench"),
        nextSeq=count,
    )
    await tenant.insert(campaign)
    assert campaign.id is not None
    refs = [ContactRef.from_document(doc) for doc in contacts]
    recipients = recipient_documents(campaign.id, refs, [])
    for start in range(0, count, 5000):
        await tenant.raw_insert_many(Contact, contacts[start : start + 5000], ordered=False)
        await tenant.raw_insert_many(Recipient, recipients[start : start + 5000], ordered=False)
    return org, campaign.id


async def seed(uri: str, sizes: list[int]) -> tuple[str, dict[str, Any]]:
    database = f"bench_export_{uuid.uuid4().hex[:10]}"
    settings = bench_settings(uri, database)
    client = create_client(settings)
    await init_database(client, database)
    try:
        warm = await seed_organization(WARM_ROWS, first_phone=9_000_000)
        orgs = {}
        offset = 0
        for size in sizes:
            started = time.perf_counter()
            orgs[str(size)] = await seed_organization(size, first_phone=offset)
            offset += size
            print(
                f"seeded {size:,} contacts and recipients in {time.perf_counter() - started:.1f} s"
            )
        layout = {
            "warm": [str(i) for i in warm],
            "sizes": {k: [str(i) for i in v] for k, v in orgs.items()},
        }
        return database, layout
    finally:
        await client.close()


async def drop(uri: str, database: str) -> None:
    settings = bench_settings(uri, database)
    client = create_client(settings)
    try:
        await client.drop_database(database)
    finally:
        await client.close()


# -- measuring (child) ----------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


class PeakSampler:
    """Samples the resident set every 2 ms on a thread; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


async def asgi_get(app: FastAPI, path: str, headers: dict[str, str]) -> tuple[int, int, int]:
    """Calls the app for `path`; returns (status, body lines, chunks), keeping no body."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    requested = False
    status, lines, chunks = 0, 0, 0

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client never leaves
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, lines, chunks
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            lines += message.get("body", b"").count(b"\n")
            chunks += 1

    await app(scope, receive, send)
    return status, lines, chunks


async def raw_read(kind: str, org: ObjectId, campaign: ObjectId) -> int:
    tenant = Tenant.for_organization(org)
    if kind == "contacts":
        projection = {name: 1 for name in CONTACT_COLUMNS if name != "contactId"}
        cursor = tenant.raw_find(Contact, None, projection)
    else:
        cursor = tenant.raw_find(Recipient, {"campaignId": campaign}, RECIPIENT_FIELDS)
    count = 0
    async for _ in cursor.batch_size(RAW_BATCH):
        count += 1
    return count


def export_path(kind: str, campaign: ObjectId) -> str:
    return (
        "/api/contacts.csv" if kind == "contacts" else f"/api/campaigns/{campaign}/recipients.csv"
    )


async def child(args: argparse.Namespace) -> dict[str, Any]:
    uri = os.environ["MONGODB_URI"]
    org, campaign = ObjectId(args.org), ObjectId(args.campaign)
    warm_org, warm_campaign = ObjectId(args.warm[0]), ObjectId(args.warm[1])
    app = create_app(bench_settings(uri, args.database))
    async with LifespanManager(app):
        headers = auth(token(org=warm_org))
        await asgi_get(app, export_path(args.kind, warm_campaign), headers)
        await raw_read(args.kind, warm_org, warm_campaign)
        headers = auth(token(org=org))
        path = export_path(args.kind, campaign)
        before = rss_bytes()
        with PeakSampler() as sampler:
            started = time.perf_counter()
            status, lines, chunks = await asgi_get(app, path, headers)
            export_seconds = [time.perf_counter() - started]
        raw_seconds: list[float] = []
        raw_rows = 0
        for round_ in range(args.rounds):
            started = time.perf_counter()
            raw_rows = await raw_read(args.kind, org, campaign)
            raw_seconds.append(time.perf_counter() - started)
            if round_ + 1 < args.rounds:
                started = time.perf_counter()
                await asgi_get(app, path, headers)
                export_seconds.append(time.perf_counter() - started)
    return {
        "status": status,
        "rows": lines - 1,
        "chunks": chunks,
        "raw_rows": raw_rows,
        "export_s": min(export_seconds),
        "raw_s": min(raw_seconds),
        "rss_before": before,
        "rss_growth": sampler.peak - before,
    }


# -- driving (parent) -----------------------------------------------------------------------


@dataclass
class Result:
    kind: str
    size: int
    rows: int
    export_rate: float
    raw_rate: float
    growth_mb: float
    chunks: int
    before_mb: float


def run_child(
    args: argparse.Namespace, database: str, kind: str, ids: list[str], warm: list[str]
) -> dict[str, Any]:
    command = [
        sys.executable, "-m", "bench.export", "--child", kind,
        "--database", database, "--org", ids[0], "--campaign", ids[1],
        "--warm", *warm, "--rounds", str(args.rounds),
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


async def main_async(args: argparse.Namespace) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    database, layout = await seed(uri, args.sizes)
    problems: list[str] = []
    results: list[Result] = []
    try:
        for kind in ("contacts", "recipients"):
            for size in args.sizes:
                ids = layout["sizes"][str(size)]
                got = await asyncio.to_thread(run_child, args, database, kind, ids, layout["warm"])
                if got["status"] != 200 or got["rows"] != size or got["raw_rows"] != size:
                    problems.append(f"{kind} at {size}: {got}")
                results.append(
                    Result(
                        kind,
                        size,
                        got["rows"],
                        got["rows"] / got["export_s"],
                        got["raw_rows"] / got["raw_s"],
                        got["rss_growth"] / 2**20,
                        got["chunks"],
                        got["rss_before"] / 2**20,
                    )
                )
    finally:
        await drop(uri, database)
    print()
    print(f"{'export':<11}{'rows':>9}{'chunks':>8}{'rows/s':>10}{'raw rows/s':>12}"
          f"{'x raw':>8}{'peak RSS growth':>17}")  # fmt: skip
    for r in results:
        print(
            f"{r.kind:<11}{r.rows:>9,}{r.chunks:>8,}{r.export_rate:>10,.0f}{r.raw_rate:>12,.0f}"
            f"{r.export_rate / r.raw_rate:>8.2f}{r.growth_mb:>14.2f} MB"
        )
    for kind in ("contacts", "recipients"):
        mine = [r for r in results if r.kind == kind]
        if len(mine) >= 2:
            small, large = mine[0], mine[-1]
            print(
                f"{kind}: peak RSS {large.before_mb + large.growth_mb:.1f} MB at {large.size:,} "
                f"rows, {small.before_mb + small.growth_mb:.1f} MB at {small.size:,}: "
                f"{(large.before_mb + large.growth_mb) / (small.before_mb + small.growth_mb):.2f}x"
            )
    return exit_code(problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["contacts", "recipients"], help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--org", help=argparse.SUPPRESS)
    parser.add_argument("--campaign", help=argparse.SUPPRESS)
    parser.add_argument("--warm", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.kind = args.child
        print(json.dumps(asyncio.run(child(args))))
        return 0
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
