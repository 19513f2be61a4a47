"""Database commands the dispatcher sends per message while organizations send at their limit.

The multi-tenant throughput (`bench/dispatch.py --case tenants`) is bounded by the database,
and on a shared machine its msg/s swing by a third from run to run; the commands a message
costs do not. Here 5 organizations with one 300-recipient campaign each send at 10 messages a
second through the simulated provider, on one dispatcher and then on two (in this process, on
a clock the script moves a second per round, so every round is one second of each
organization's slots). After 3 rounds of warm-up, PyMongo's command monitoring counts what
the dispatchers send over 10 rounds; printed per message, by command, against the floor of
one recipient update (the write a message cannot avoid, 25 to a command: 0.04).

    uv run python -m scripts.dbserver run --data-dir .data/bench -- \\
        uv run python -m bench.turn_commands
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from bson import ObjectId
from pymongo import monitoring

from bench.create_campaign import ContactSource, bench_settings, serving
from main import create_app
from models.base import utcnow
from services.organizations.settings import set_rate_per_second
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import SimulatedProvider, read_ledger
from services.storage.tenancy import BULK_CHUNK, Tenant
from tests.support import ANY_HOUR, Clock, auth, token

ORGANIZATIONS = 5
SIZE = 300
RATE = 10
WARM_UP = 3
ROUNDS = 10
SEND_NOW = 'mutation { sendCampaignNow(id: "%s") { userErrors { code } } }'


class Commands(monitoring.CommandListener):
    """Counts the commands this process sends, by name, while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.counts = Counter[str]()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on:
            self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def measure(uri: str, dispatchers: int, commands: Commands) -> tuple[Counter[str], int]:
    settings = bench_settings(uri, SIZE, 1024 * 1024)
    source = ContactSource()
    message = "Hi {{firstName|there}}, our spring offer ends Friday."
    async with serving(create_app(settings)) as http:
        for _ in range(ORGANIZATIONS):
            org = ObjectId()
            headers = auth(token(org=org))
            body = {"name": "c", "message": message, "newContacts": source.take(SIZE)}
            answer = await http.post("/api/campaigns", json=body, headers=headers)
            campaign_id = answer.json()["data"]["_id"]
            await set_rate_per_second(Tenant.for_organization(org), RATE)
            await http.post("/graphql", json={"query": SEND_NOW % campaign_id}, headers=headers)
        clock = Clock(utcnow())
        with tempfile.TemporaryDirectory() as tmp:
            ledger = Path(tmp) / "ledger.jsonl"
            config = DispatchConfig(rate_per_second=RATE, clock=clock, defaults=ANY_HOUR)
            senders = [
                Dispatcher(SimulatedProvider(ledger), replace(config, owner=f"d{i}"))
                for i in range(dispatchers)
            ]
            sent_before = 0
            for round_ in range(WARM_UP + ROUNDS):
                if round_ == WARM_UP:
                    sent_before = len(read_ledger(ledger))
                    commands.on = True
                await asyncio.gather(*(d.tick() for d in senders))
                clock.advance(timedelta(seconds=1))
            commands.on = False
            sent = len(read_ledger(ledger)) - sent_before
        counts, commands.counts = commands.counts, Counter()
    from core.db import create_client

    admin = create_client(settings)
    await admin.drop_database(settings.mongodb_db)
    await admin.close()
    return counts, sent


async def main() -> int:
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        print("MONGODB_URI is not set; run through scripts.dbserver", file=sys.stderr)
        return 2
    commands = Commands()
    monitoring.register(commands)
    for dispatchers in (1, 2):
        counts, sent = await measure(uri, dispatchers, commands)
        total = sum(counts.values())
        detail = ", ".join(f"{name} {n / sent:.3f}" for name, n in counts.most_common())
        print(
            f"{dispatchers} dispatcher(s), {ORGANIZATIONS} organizations x {RATE}/s: {sent} "
            f"messages in {ROUNDS} s, {total / sent:.3f} commands a message ({detail}); "
            f"floor {1 / BULK_CHUNK:.3f} ({total / sent * BULK_CHUNK:.1f}x)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
