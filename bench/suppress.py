"""Times the suppression list at N numbers: listing a page and prefix searches, and importing N
numbers in one request, each against the raw floor measured in the same run.

Listing: one organization imports N numbers and another N/5 beside it, through the API. Each
case is a REST `GET /api/suppressions` through the real app (ASGI, in process), repeated
(median), against the one raw read it stands on, also repeated: a list page by equality
(`{organizationId, page}`) for list pages and short prefixes, one prefix-key bucket
(`{organizationId, prefixKey}`) for long prefixes. The previous layout's read (an `_id` range
sorted by `_id`, limit 21) is timed once for comparison.

Import, two cases alternating in every round:

(a) REST `POST /api/suppressions` with N numbers as CSV text (a fresh organization each run):
    parsing, normalising, page claims and the bulk inserts;
(b) the floor: PyMongo `insert_many(ordered=False)` of the same N documents (built beforehand,
    with their pages and prefix keys) in chunks of the service's size, into a collection with
    the app's indexes;
(c) the same raw insert in the previous layout (no page or prefix key, its one index
    `(organizationId, _id)`): what the list's two indexed fields cost an insert.

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.suppress [--numbers 100000 --runs 3 --reads 15]

Exits 1 when an import did not store N numbers or a search answered wrongly; timings are
reported, never failed on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from bson import ObjectId

from bench.create_campaign import bench_settings
from bench.verdict import exit_code
from core.config import Settings
from core.db import create_client, init_database
from main import create_app
from models import Suppression
from models.base import utcnow
from models.compliance import prefix_key, suppression_id
from services.contacts.suppressions import INSERT_CHUNK, LIST_SCOPE
from services.storage.pages import Cursors
from services.storage.positions import SUPPRESSIONS_PER_PAGE
from tests.support import auth, token

Case = tuple[str, dict[str, str], str, dict[str, Any], int]
"""(label, query parameters, what the floor reads, the floor's filter, numbers expected)."""


async def timed(read: Callable[[], Awaitable[object]], times: int) -> float:
    """The median of `times` runs of `read`, in seconds."""
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        await read()
        taken.append(time.perf_counter() - started)
    return statistics.median(taken)


async def listing(
    http: httpx.AsyncClient, settings: Settings, count: int, reads: int, problems: list[str]
) -> None:
    """Lists and searches an organization of `count` numbers with another's beside it."""
    org, beside = ObjectId(), ObjectId()
    numbers = [f"+1212{2000000 + i:07d}" for i in range(count)]
    for owner, listed in ((org, numbers), (beside, numbers[: count // 5])):
        body = {"csv": "phone\n" + "\n".join(listed) + "\n"}
        answer = await http.post("/api/suppressions", json=body, headers=auth(token(org=owner)))
        if not answer.is_success or answer.json()["data"]["added"] != len(listed):
            problems.append(f"setup import: {answer.text[:200]}")
            return
    headers = auth(token(org=org))
    middle = count // SUPPRESSIONS_PER_PAGE // 2
    cursor = Cursors(settings, LIST_SCOPE).encode(f"{middle}:", org)
    dense = numbers[count // 2][:8]  # 8 characters: up to 111 buckets, the first one full
    long = numbers[count // 2][:10]  # a key's length: one bucket
    cases: list[Case] = [
        ("list: first page", {}, "page", {"page": 0}, 20),
        ("list: a middle page", {"after": cursor}, "page", {"page": middle}, 20),
        (f"prefix {long} (9 digits)", {"search": long}, "bucket", {"prefixKey": long}, 20),
        (f"prefix {dense} (7 digits)", {"search": dense}, "bucket", {"prefixKey": long}, 20),
        ("prefix +1415555 (7 digits, none)", {"search": "+1415555"}, "bucket",
         {"prefixKey": long}, 0),
        ("prefix +1212 (4 digits, dense)", {"search": "+1212"}, "page", {"page": 0}, 20),
        ("prefix +1415 (4 digits, none)", {"search": "+1415"}, "page", {"page": 0}, 0),
    ]  # fmt: skip
    collection = Suppression.get_pymongo_collection()
    print(f"listing {count:,} numbers ({count // 5:,} of another organization beside), "
          f"medians of {reads}")  # fmt: skip
    for label, params, floor_kind, floor_filter, expected in cases:

        async def api(params: dict[str, str] = params) -> list[Any]:
            answer = await http.get("/api/suppressions", params=params, headers=headers)
            rows: list[Any] = answer.json()["data"] if answer.is_success else []
            return rows

        async def floor(query: dict[str, Any] = floor_filter) -> list[Any]:
            return await collection.find({"organizationId": org, **query}).to_list()

        got = await api()
        if len(got) != expected:
            problems.append(f"{label}: {len(got)} numbers, expected {expected}")
        a = await timed(api, reads)
        f = await timed(floor, reads)
        print(f"  {label:<36} API {a * 1000:7.1f} ms   floor (one {floor_kind} read) "
              f"{f * 1000:6.1f} ms   ratio {a / f:5.2f}x")  # fmt: skip
    prefix = f"{org}:+"
    started = time.perf_counter()
    await collection.find({"organizationId": org, "_id": {"$gte": prefix, "$lt": prefix + "~"}})\
        .sort([("_id", 1)]).limit(21).to_list()  # fmt: skip
    print(f"  previous layout (_id range, sorted, limit 21): {time.perf_counter() - started:.2f} s")


async def run(count: int, runs: int, reads: int) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    numbers = [f"+1212{2000000 + i:07d}" for i in range(count)]
    csv = "phone\n" + "\n".join(numbers) + "\n"
    settings = bench_settings(uri, count, len(csv))
    app = create_app(settings)
    problems: list[str] = []
    api: list[float] = []
    floor: list[float] = []
    before: list[float] = []
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=600) as http:
            if reads:
                await listing(http, settings, count, reads, problems)
            previous = Suppression.get_pymongo_collection().database["suppressions_previous"]
            await previous.create_index([("organizationId", 1), ("_id", 1)], name="org_id")
            for _ in range(runs):
                org = ObjectId()
                started = time.perf_counter()
                answer = await http.post(
                    "/api/suppressions", json={"csv": csv}, headers=auth(token(org=org))
                )
                api.append(time.perf_counter() - started)
                added = answer.json().get("data", {}).get("added") if answer.is_success else None
                if added != count:
                    problems.append(f"the API stored {added} of {count}: {answer.text[:200]}")

                org = ObjectId()
                now = utcnow()
                documents = [
                    {
                        "_id": suppression_id(org, phone),
                        "phoneNumber": phone,
                        "reason": None,
                        "page": i // SUPPRESSIONS_PER_PAGE,
                        "prefixKey": prefix_key(phone),
                        "organizationId": org,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for i, phone in enumerate(numbers)
                ]
                collection = Suppression.get_pymongo_collection()
                started = time.perf_counter()
                for start in range(0, count, INSERT_CHUNK):
                    await collection.insert_many(
                        documents[start : start + INSERT_CHUNK], ordered=False
                    )
                floor.append(time.perf_counter() - started)

                # (c) the same raw insert in the previous layout: no page or prefix key, and
                # the one index it had, to show what the two indexed fields cost an insert
                org = ObjectId()
                bare = [
                    {
                        "_id": suppression_id(org, phone),
                        "phoneNumber": phone,
                        "reason": None,
                        "organizationId": org,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for phone in numbers
                ]
                started = time.perf_counter()
                for start in range(0, count, INSERT_CHUNK):
                    await previous.insert_many(bare[start : start + INSERT_CHUNK], ordered=False)
                before.append(time.perf_counter() - started)
    client = create_client(settings)
    await init_database(client, settings.mongodb_db)
    await client.drop_database(settings.mongodb_db)
    if not runs:
        return exit_code(problems)
    a, f = statistics.median(api), statistics.median(floor)
    print(f"importing {count:,} numbers, {len(csv):,} bytes of CSV, {runs} runs (medians)")
    print(f"  API  POST /api/suppressions: {a:.2f} s ({count / a:,.0f} numbers/s)")
    print(f"  floor insert_many:           {f:.2f} s ({count / f:,.0f} numbers/s)")
    print(f"  ratio API / floor: {a / f:.2f}x")
    b = statistics.median(before)
    print(
        f"  the previous layout's raw insert (one index): {b:.2f} s; the floor / it: {f / b:.2f}x"
    )
    return exit_code(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="import rounds (0: none)")
    parser.add_argument("--reads", type=int, default=15, help="reads per listing case (0: none)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.numbers, args.runs, args.reads)))


if __name__ == "__main__":
    main()
