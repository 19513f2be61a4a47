"""Run-once semantics for retried requests, decided by a unique index rather than a read.

The first request with a key reserves it (`in_progress`), does the work and stores a small
result; a retry with the same key and the same request replays that result; the same key with
a different request is a conflict. A retry that arrives while the first is still working
waits for it, up to `wait_seconds`, then answers a conflict it may retry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from core.errors import Conflict, InvalidInput
from models import IdempotencyRecord
from services.tenancy import Tenant

MAX_KEY_LENGTH = 255


@dataclass
class Outcome:
    """Either the fresh `value` of the work, or a replayed stored `result`."""

    replayed: bool
    result: dict[str, Any]
    value: object = None


def request_hash(request: dict[str, Any]) -> str:
    """Hashes the canonical JSON of a request, so key order and spacing do not matter."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def run_once(
    tenant: Tenant,
    *,
    scope: str,
    key: str,
    request: dict[str, Any],
    work: Callable[[], Awaitable[tuple[object, dict[str, Any]]]],
    wait_seconds: float = 30.0,
) -> Outcome:
    """Runs `work` at most once per (organization, scope, key)."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput("Invalid idempotency key", [])
    digest = request_hash(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.05
    while True:
        record = IdempotencyRecord(
            organizationId=tenant.organization_id, scope=scope, key=key, requestHash=digest
        )
        try:
            await tenant.insert(record)
        except DuplicateKeyError:
            found = await tenant.find(
                IdempotencyRecord, {"scope": scope, "key": key}
            ).first_or_none()
            if found is None:
                continue  # the first attempt failed and released the key: take it over
            if found.requestHash != digest:
                raise Conflict(
                    "This Idempotency-Key was already used with a different request"
                ) from None
            if found.state == "completed" and found.result is not None:
                return Outcome(replayed=True, result=found.result)
            if loop.time() >= deadline:
                raise Conflict(
                    "A request with this Idempotency-Key is still in progress; retry later"
                ) from None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        return await _work_and_store(tenant, record, work)


async def _work_and_store(
    tenant: Tenant,
    record: IdempotencyRecord,
    work: Callable[[], Awaitable[tuple[object, dict[str, Any]]]],
) -> Outcome:
    try:
        value, result = await work()
    except BaseException:
        await tenant.delete_many(IdempotencyRecord, {"_id": record.id})
        raise
    await tenant.update_one(
        IdempotencyRecord,
        {"_id": record.id},
        {"$set": {"state": "completed", "result": result, "updatedAt": tenant.now()}},
    )
    return Outcome(replayed=False, result=result, value=value)
