"""One organization floods the API; does another organization notice?

A real `uvicorn` process serves the app (its own process, so the load generator does not share
its event loop). Organization B reads its first contact page (`GET /api/contacts?limit=20`)
four times a second (within its own budget), first alone, then while organization A runs
`--flooders` concurrent loops of reads and GraphQL queries as fast as it can, from a child
process at the lowest CPU priority (an attacker's client does not run on the server's cores).
The figure is B's p95 under the flood against its p95 alone (the issue's target: within 1.5x),
with the request limits on (the defaults: 600 a minute per organization, 300 per user, and
each refusal held a second), on with refusals answered at once, and off, and B's p95 under
the flood with limits against without (the same run, so the same machine); also the server's
CPU per request of A's. The floor, in the same run, is a raw PyMongo read of the same page.

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.request_flood [--seconds 20] [--flooders 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

from tests.support import TEST_JWT_SECRET, auth, token

ROOT = Path(__file__).resolve().parent.parent
PAGE = "/api/contacts?limit=20"
READS_A_SECOND = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


async def serve(
    uri: str, database: str, limit: str, pause: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DB": database,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "DISPATCH_IN_PROCESS": "false",
        "API_RATE_LIMIT": limit,
        "API_USER_RATE_LIMIT": limit and "300/minute",
        "API_REFUSAL_PAUSE_SECONDS": pause,
    }
    process = _start(
        [sys.executable, "-m", "uvicorn", "main:create_app", "--factory", "--port", str(port)], env
    )
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                await client.get(f"{url}/healthz")
                return process, url
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def _start(
    command: list[str], env: dict[str, str] | None = None, *, nice: bool = False
) -> subprocess.Popen[bytes]:
    out = subprocess.PIPE if nice else subprocess.DEVNULL
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=None if nice else subprocess.DEVNULL,
        preexec_fn=(lambda: os.nice(19)) if nice else None,
    )


def server_cpu(pid: int) -> float:
    """Seconds of CPU the process used so far (user and system, from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def reader(client: httpx.AsyncClient, headers: dict[str, str], seconds: float) -> list[float]:
    """B's reads, `READS_A_SECOND` of them a second (a busy user, within its own budget), each
    timed (milliseconds); every answer must be 200."""
    took: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        answer = await client.get(PAGE, headers=headers)
        took.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text
        await asyncio.sleep(max(0.0, 1 / READS_A_SECOND - (time.perf_counter() - started)))
    return took


async def flood(
    client: httpx.AsyncClient, headers: dict[str, str], seconds: float, loops: int
) -> Counter[int]:
    statuses = Counter[int]()
    deadline = time.perf_counter() + seconds
    query = {"query": "{ contacts(first: 20) { totalCount edges { node { id } } } }"}

    async def loop(i: int) -> None:
        while time.perf_counter() < deadline:
            try:
                if i % 2:
                    answer = await client.post("/graphql", json=query, headers=headers)
                else:
                    answer = await client.get(PAGE, headers=headers)
            except httpx.HTTPError:
                statuses[0] += 1  # the connection gave way: counted, not fatal
                continue
            statuses[answer.status_code] += 1

    await asyncio.gather(*(loop(i) for i in range(loops)))
    return statuses


async def floor(uri: str, database: str, org: ObjectId, seconds: float) -> list[float]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    took: list[float] = []
    try:
        contacts = client[database]["contacts"]
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await contacts.find({"organizationId": org, "page": 0}).to_list(20)
            took.append((time.perf_counter() - started) * 1000)
    finally:
        await client.close()
    return took


async def run(seconds: float, flooders: int) -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    database = f"bench_flood_{uuid.uuid4().hex[:8]}"
    victim, flooder = ObjectId(), ObjectId()
    victim_headers = auth(token(org=victim))
    flooder_headers = auth(token(org=flooder))
    results = {}
    runs = (
        ("limits on", "600/minute", "1"),
        ("limits on, refusals not held", "600/minute", "0"),
        ("limits off", "", "0"),
    )
    for label, limit, pause in runs:
        process, url = await serve(uri, database, limit, pause)
        try:
            limits = httpx.Limits(max_connections=flooders + 4)
            async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
                if label == "limits on":
                    for i in range(10):
                        await client.post(
                            "/api/contacts",
                            json={"firstName": f"V{i}", "phoneNumber": f"+1415555{i:04d}"},
                            headers=victim_headers,
                        )
                await reader(client, victim_headers, 1.0)  # warm
                alone = await reader(client, victim_headers, seconds)
                # The flood comes from a child at the lowest CPU priority: a remote client's
                # own work does not run on the server's cores.
                child = _start(
                    [
                        sys.executable,
                        "-m",
                        "bench.request_flood",
                        "--flood-child",
                        url,
                        flooder_headers["Authorization"],
                        "--seconds",
                        str(seconds),
                        "--flooders",
                        str(flooders),
                    ],
                    nice=True,
                )
                await asyncio.sleep(1.0)
                cpu_before = server_cpu(process.pid)
                under = await reader(client, victim_headers, seconds - 1.5)
                cpu = server_cpu(process.pid) - cpu_before
                out, _ = await asyncio.to_thread(child.communicate)
                statuses = Counter({int(k): int(v) for k, v in json.loads(out).items()})
        finally:
            process.terminate()
            process.wait(timeout=30)
        results[label] = (alone, under, statuses)
        # The server's CPU while B read under the flood, per request of A's in that time
        # (A's count over the whole flood, scaled to the reading time).
        per_request = cpu / (sum(statuses.values()) * (seconds - 1.5) / seconds)
        print(
            f"{label}: B alone p50 {statistics.median(alone):.1f} ms, p95 {p95(alone):.1f} ms; "
            f"under A's flood p50 {statistics.median(under):.1f} ms, p95 {p95(under):.1f} ms "
            f"(p95 x{p95(under) / p95(alone):.2f}); A's answers {dict(statuses)}; "
            f"server CPU {per_request * 1e6:.0f} us per request of A's",
            flush=True,
        )
    raw = await floor(uri, database, victim, 3.0)
    print(
        f"floor (raw PyMongo read of B's page): p50 {statistics.median(raw):.1f} ms, "
        f"p95 {p95(raw):.1f} ms"
    )
    for label, (_, under, _) in results.items():
        print(f"{label}: B's p95 under the flood is {p95(under) / p95(raw):.1f}x the floor's p95")
    on, off = p95(results["limits on"][1]), p95(results["limits off"][1])
    print(f"B's p95 under the flood, limits on against off: {on / off:.2f}x")
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
    await mongo.drop_database(database)
    await mongo.close()
    return 0


async def flood_child(url: str, authorization: str, seconds: float, loops: int) -> None:
    limits = httpx.Limits(max_connections=loops + 4)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        statuses = await flood(client, {"Authorization": authorization}, seconds, loops)
    print(json.dumps(statuses))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--flooders", type=int, default=32)
    parser.add_argument("--flood-child", nargs=2, metavar=("URL", "AUTHORIZATION"))
    args = parser.parse_args(argv)
    if args.flood_child:
        url, authorization = args.flood_child
        asyncio.run(flood_child(url, authorization, args.seconds, args.flooders))
        return 0
    return asyncio.run(run(args.seconds, args.flooders))


if __name__ == "__main__":
    sys.exit(main())
