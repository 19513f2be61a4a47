"""Run-once semantics for retried requests, decided by a unique index rather than a read.

The first request with a key reserves it (`in_progress`, with a lease and the result it plans
to produce, such as the id the new campaign will get), does the work and marks it `completed`.
A retry with the same key and request replays the result; the same key with another request is
a conflict. A retry that arrives while the first is working waits for it. If the first died
(its lease expired), one retry takes the reservation over: it asks `finished` whether the work
landed before the crash, and either completes the record or does the work itself.

FerretDB has no TTL indexes, so the app purges records past `IDEMPOTENCY_RETENTION_SECONDS`
itself (`purge_forever`, started with the app); a key is honoured for at least that long.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from core.errors import Conflict, FieldError, InvalidInput
from models import IdempotencyRecord, IdempotencyTakeover
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255
_REUSED = "Use a new key for a different request"
_IN_USE = "The first request with this key has not finished"
LEASE_SECONDS = 60.0


@dataclass
class Outcome:
    """The work's `value` when this call did it; `replayed` when an earlier call had."""

    replayed: bool
    result: dict[str, Any]
    value: object = None


Work = Callable[[dict[str, Any], bool], Awaitable[object]]
"""Does the work for a planned result; the flag says it resumes a crashed attempt."""


def request_hash(request: dict[str, Any]) -> str:
    """Hashes the canonical JSON of a request, so key order and spacing do not matter."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    """Returns the key trimmed, or refuses one that is empty or too long."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            "Invalid idempotency key",
            [
                FieldError(
                    ("idempotencyKey",),
                    "INVALID_IDEMPOTENCY_KEY",
                    f"Use 1 to {MAX_KEY_LENGTH} printable characters",
                )
            ],
        )
    return key


async def run_once(
    tenant: Tenant,
    *,
    scope: str,
    key: str,
    request: dict[str, Any],
    planned: dict[str, Any],
    work: Work,
    finished: Callable[[dict[str, Any]], Awaitable[bool]],
    wait_seconds: float = 30.0,
    lease_seconds: float = LEASE_SECONDS,
) -> Outcome:
    """Runs `work` at most once per (organization, scope, key) that succeeds."""
    key = check_key(key)
    digest = request_hash(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = 0.05
    while True:
        record = IdempotencyRecord(
            organizationId=tenant.organization_id,
            scope=scope,
            key=key,
            requestHash=digest,
            result=planned,
            leaseUntil=_lease(lease_seconds),
        )
        try:
            await tenant.insert(record)
        except DuplicateKeyError:
            pass
        else:
            return await _work_and_complete(tenant, record.id, planned, work, resumed=False)

        found = await tenant.find(IdempotencyRecord, {"scope": scope, "key": key}).first_or_none()
        if found is None:
            continue  # the first attempt failed and released the key: take it over
        if found.requestHash != digest:
            raise Conflict(
                "This idempotency key was already used with a different request",
                [FieldError(("idempotencyKey",), "IDEMPOTENCY_KEY_REUSED", _REUSED)],
            )
        result = found.result or {}
        if found.state == "completed":
            return Outcome(replayed=True, result=result)
        if found.leaseUntil <= tenant.now() and await _take_over(tenant, found, lease_seconds):
            if await finished(result):
                await _complete(tenant, found.id)
                return Outcome(replayed=True, result=result)
            return await _work_and_complete(tenant, found.id, result, work, resumed=True)
        if loop.time() >= deadline:
            raise Conflict(
                "A request with this idempotency key is still in progress; retry later",
                [FieldError(("idempotencyKey",), "IDEMPOTENCY_KEY_IN_USE", _IN_USE)],
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.5)


def _lease(seconds: float) -> datetime:
    return Tenant.now() + timedelta(seconds=seconds)


async def _take_over(tenant: Tenant, found: IdempotencyRecord, lease_seconds: float) -> bool:
    """Claims an expired reservation; of several racing retries exactly one wins.

    The winner is decided by a unique insert of (record, expired lease), not by a conditional
    update, which FerretDB does not apply atomically.
    """
    assert found.id is not None
    try:
        await tenant.insert(
            IdempotencyTakeover(
                organizationId=tenant.organization_id,
                recordId=found.id,
                leaseUntil=found.leaseUntil,
            )
        )
    except DuplicateKeyError:
        return False
    await tenant.update_one(
        IdempotencyRecord, {"_id": found.id}, {"$set": {"leaseUntil": _lease(lease_seconds)}}
    )
    return True


async def _work_and_complete(
    tenant: Tenant, record_id: Any, planned: dict[str, Any], work: Work, *, resumed: bool
) -> Outcome:
    try:
        value = await work(planned, resumed)
    except ConnectionFailure:
        raise  # the work may have landed: keep the reservation; after its lease a retry decides
    except BaseException:
        await tenant.delete_many(IdempotencyRecord, {"_id": record_id})
        raise
    await _complete(tenant, record_id)
    return Outcome(replayed=False, result=planned, value=value)


async def _complete(tenant: Tenant, record_id: Any) -> None:
    await tenant.update_one(
        IdempotencyRecord,
        {"_id": record_id},
        {"$set": {"state": "completed", "updatedAt": tenant.now()}},
    )


async def purge_expired(*, retention: timedelta) -> int:
    """Deletes records older than `retention`, organization by organization; returns how many.

    Touches only records no retry can still be waiting for (a completed record past
    retention, or a reservation whose lease ended that long ago).
    """
    cutoff = Tenant.now() - retention
    deleted = 0
    records = IdempotencyRecord.get_pymongo_collection()
    for organization_id in await records.distinct("organizationId"):
        tenant = Tenant.for_organization(organization_id)
        deleted += await tenant.delete_many(
            IdempotencyRecord,
            {
                "$or": [
                    {"state": "completed", "updatedAt": {"$lt": cutoff}},
                    {"state": "in_progress", "leaseUntil": {"$lt": cutoff}},
                ]
            },
        )
        await tenant.delete_many(IdempotencyTakeover, {"createdAt": {"$lt": cutoff}})
    return deleted


async def purge_forever(*, retention: timedelta, every: timedelta) -> None:
    """Runs `purge_expired` every `every` until cancelled; a failed round is logged, not fatal.

    FerretDB has no TTL indexes, so the application expires these records itself.
    """
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            deleted = await purge_expired(retention=retention)
        except PyMongoError:
            logger.warning("idempotency purge failed; retrying in %s", every, exc_info=True)
            continue
        if deleted:
            logger.info("purged %d idempotency records older than %s", deleted, retention)
