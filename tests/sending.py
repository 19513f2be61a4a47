"""Helpers for tests that send: an organization's API caller, and ticking dispatchers."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId

from models import Recipient
from services.organizations.settings import OrganizationSettings
from services.sending.dispatcher import DispatchConfig, Dispatcher
from services.sending.providers import read_ledger
from services.storage.tenancy import Tenant
from tests.factories import TEST_JWT_SECRET, auth, campaign_body, gql, phones, token

ANY_HOUR = OrganizationSettings("00:00", "24:00", "America/New_York")
"""No quiet hours: tests that are not about them send whatever the hour (they have their own)."""
FAST = DispatchConfig(
    lease_seconds=5, poll_seconds=0.05, retry_initial_s=0.01, retry_max_s=0.05, defaults=ANY_HOUR
)


class Org:
    """One organization's API caller."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.id = ObjectId()
        self.user = ObjectId()
        self.headers = auth(token(org=self.id, user=self.user))

    async def create(self, count: int, *, start: int = 0, **overrides: Any) -> str:
        body = campaign_body(newContacts=phones(count, start), scheduleDate=None, **overrides)
        answer = await self.client.post("/api/campaigns", json=body, headers=self.headers)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["data"]["_id"])

    async def mutate(self, name: str, campaign_id: str) -> dict[str, Any]:
        query = (
            f'mutation {{ {name}(id: "{campaign_id}") '
            "{ campaign { status } userErrors { code } } }"
        )
        body = await gql(self.client, query, None, self.headers)
        assert "errors" not in body, body
        payload: dict[str, Any] = body["data"][name]
        assert payload["userErrors"] == [], payload
        return payload

    async def campaign(self, campaign_id: str) -> dict[str, Any]:
        answer = await self.client.get(f"/api/campaigns/{campaign_id}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]
        return data

    def tenant(self) -> Tenant:
        return Tenant.for_organization(self.id)


async def until_done(
    org: Org, campaign_id: str, *dispatchers: Dispatcher, ticks: int = 40
) -> dict[str, Any]:
    """Ticks the dispatchers (concurrently) until the campaign leaves `sending`."""
    for _ in range(ticks):
        await asyncio.gather(*(d.tick() for d in dispatchers))
        campaign = await org.campaign(campaign_id)
        if campaign["status"] not in ("sending", "scheduled"):
            return campaign
    raise AssertionError(f"still {campaign['status']} after {ticks} ticks: {campaign['stats']}")


async def statuses(org: Org, campaign_id: str) -> Counter[str]:
    rows = await org.tenant().raw_find(Recipient, {"campaignId": ObjectId(campaign_id)}).to_list()
    return Counter(row["status"] for row in rows)


def ledger_keys(path: Path) -> Counter[str]:
    return Counter(entry["key"] for entry in read_ledger(path))


ROOT = Path(__file__).resolve().parent.parent


def start_worker(
    uri: str, database: str, ledger: Path, name: str, *, latency_ms: int = 5
) -> subprocess.Popen[bytes]:
    """A real `python -m worker` on that database, sending through the simulated provider into
    `ledger`, with short leases (a killed one's batches are taken over within 2 s) and no
    quiet hours or rate limit; its output goes to `<name>.log` beside the ledger."""
    env = {
        **os.environ,
        "MONGODB_URI": uri,
        "MONGODB_DB": database,
        "JWT_SECRET": TEST_JWT_SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "DISPATCH_PROVIDER": "simulated",
        "SIMULATED_LEDGER": str(ledger),
        "SIMULATED_LATENCY_MS": str(latency_ms),
        "DISPATCH_LEASE_SECONDS": "2",
        "DISPATCH_POLL_SECONDS": "0.2",
        "DISPATCH_RATE_PER_SECOND": "0",
        "SEND_WINDOW_START": "00:00",
        "SEND_WINDOW_END": "24:00",
    }
    log = (ledger.parent / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )


def stop_workers(workers: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """Stops worker processes as a supervisor would: SIGTERM, then SIGKILL after 15 s."""
    for process in workers.values():
        process.terminate()
    for process in workers.values():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
