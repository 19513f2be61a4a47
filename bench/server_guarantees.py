"""Counts how often the server keeps (or breaks) the guarantees the code's design rests on.

`tests/test_database_guarantees.py` asserts them; this prints the rates (docs/database.md),
also for judging a new server version. Run under the bootstrap, as `make bench` does:

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.server_guarantees [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError


async def measure(db: Any, rounds: int) -> dict[str, str]:
    out: dict[str, str] = {}

    await db.claims.create_index([("key", ASCENDING)], unique=True)
    single = 0
    for r in range(rounds):
        results = await asyncio.gather(
            *(db.claims.insert_one({"key": r}) for _ in range(5)), return_exceptions=True
        )
        ok = sum(not isinstance(x, BaseException) for x in results)
        dup = sum(isinstance(x, DuplicateKeyError) for x in results)
        single += ok == 1 and dup == 4
    out["unique insert, 5 racing: exactly one winner"] = f"{single} of {rounds} rounds"

    several = 0
    for r in range(rounds):
        await db.jobs.insert_one({"_id": r, "state": "pending"})
        results = await asyncio.gather(
            *(
                db.jobs.find_one_and_update(
                    {"_id": r, "state": "pending"},
                    {"$set": {"state": "taken", "by": i}},
                    return_document=ReturnDocument.AFTER,
                )
                for i in range(5)
            )
        )
        several += sum(x is not None for x in results) > 1
    out["findAndModify {_id, state}, 5 racing: more than one winner"] = (
        f"{several} of {rounds} rounds"
    )

    several = 0
    for r in range(rounds):
        await db.jobs2.insert_one({"_id": r, "state": "pending"})
        results = await asyncio.gather(
            *(
                db.jobs2.update_one({"_id": r, "state": "pending"}, {"$set": {"state": "taken"}})
                for _ in range(5)
            )
        )
        several += sum(x.modified_count for x in results) > 1
    out["update_one {_id, state}, 5 racing: more than one modified"] = (
        f"{several} of {rounds} rounds"
    )

    lost, lowest = 0, 50
    for r in range(rounds):
        await db.counters.insert_one({"_id": r, "n": 0})

        async def bump(doc_id: int = r) -> None:
            for _ in range(10):
                await db.counters.update_one({"_id": doc_id}, {"$inc": {"n": 1}})

        await asyncio.gather(*(bump() for _ in range(5)))
        n = (await db.counters.find_one({"_id": r}))["n"]
        lost += n < 50
        lowest = min(lowest, n)
    out["5 x 10 $inc on one document: ended below 50"] = (
        f"{lost} of {rounds} rounds (lowest {lowest})"
    )
    return out


async def main_async(rounds: int) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run under scripts.dbserver", file=sys.stderr)
        return 2
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    name = f"guarantees_{uuid.uuid4().hex[:8]}"
    try:
        info = await client.admin.command("buildInfo")
        server = f"FerretDB {info['ferretdbVersion']}" if "ferretdbVersion" in info else "MongoDB"
        print(f"server: {server} {info.get('version', '')}")
        for what, result in (await measure(client[name], rounds)).items():
            print(f"  {what:<62} {result}")
    finally:
        await client.drop_database(name)
        await client.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    return asyncio.run(main_async(parser.parse_args(argv).rounds))


if __name__ == "__main__":
    sys.exit(main())
