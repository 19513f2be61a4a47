"""Times importing N numbers to the suppression list in one request, against the raw floor.

Two cases on the same database server, alternating in every round:

(a) REST `POST /api/suppressions` with N numbers as CSV text, through the real app (ASGI, in
    process; a fresh organization each run): parsing, normalising and the bulk inserts;
(b) the floor: PyMongo `insert_many(ordered=False)` of the same N documents (built beforehand)
    in chunks of the service's size, into a collection with the app's indexes.

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.suppress [--numbers 100000 --runs 3]

Exits 1 when an import did not store N numbers; timings are reported, never failed on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

import httpx
from asgi_lifespan import LifespanManager
from bson import ObjectId

from bench.create_campaign import bench_settings
from bench.verdict import exit_code
from core.db import create_client, init_database
from main import create_app
from models import Suppression
from models.base import utcnow
from models.compliance import suppression_id
from services.contacts.suppressions import INSERT_CHUNK
from tests.support import auth, token


async def run(count: int, runs: int) -> int:
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
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b", timeout=600) as http:
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
                        "organizationId": org,
                        "createdAt": now,
                        "updatedAt": now,
                    }
                    for phone in numbers
                ]
                collection = Suppression.get_pymongo_collection()
                started = time.perf_counter()
                for start in range(0, count, INSERT_CHUNK):
                    await collection.insert_many(
                        documents[start : start + INSERT_CHUNK], ordered=False
                    )
                floor.append(time.perf_counter() - started)
    client = create_client(settings)
    await init_database(client, settings.mongodb_db)
    await client.drop_database(settings.mongodb_db)
    a, f = statistics.median(api), statistics.median(floor)
    print(f"{count:,} numbers, {len(csv):,} bytes of CSV, {runs} runs (medians)")
    print(f"  API  POST /api/suppressions: {a:.2f} s ({count / a:,.0f} numbers/s)")
    print(f"  floor insert_many:           {f:.2f} s ({count / f:,.0f} numbers/s)")
    print(f"  ratio API / floor: {a / f:.2f}x")
    return exit_code(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.numbers, args.runs)))


if __name__ == "__main__":
    main()
