"""Running totals per organization (contacts, campaigns, suppressed numbers): `totalCount`
without a count.

A count on FerretDB decodes every row it counts, so an unfiltered `totalCount` grew with the
organization (docs/performance.md#counts). The write paths that create or delete contacts and
campaigns add their change to a running total instead, and a total is read from a few small
documents.

A total is the sum of its writers' shares. Each process's event loop keeps its own `Tally`
document per organization and kind and changes it with `$inc`, one change at a time (a lock per
share). FerretDB runs `$inc` as read, add in Go, write back, so two `$inc` on one document at
once lose one (docs/database.md); one writer per document is exact on every server, and on
MongoDB it also keeps every process off one hot document.

A share changes after the write it counts: a process that dies between the two leaves its
total short by that write. `recount` puts an organization right (the start-up migration that
introduced totals ran it for every organization; an operator can run it again).
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from typing import Final

from models import Campaign, Contact, Suppression, Tally
from models.base import TenantDocument
from services.storage.tenancy import Tenant, size_estimates

CONTACTS: Final = "contacts"
CAMPAIGNS: Final = "campaigns"
SUPPRESSIONS: Final = "suppressions"
COUNTED: dict[str, type[TenantDocument]] = {
    CONTACTS: Contact,
    CAMPAIGNS: Campaign,
    SUPPRESSIONS: Suppression,
}
RECOUNT_WRITER: Final = "recount"
"""The share `recount` owns: the correction that makes the shares add up to the count."""

_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


def _writer() -> str:
    """This event loop's name as a writer: unique among live writers of every host."""
    loop = asyncio.get_running_loop()
    return f"{socket.gethostname()}:{os.getpid()}:{id(loop):x}"


async def add(tenant: Tenant, kind: str, delta: int) -> None:
    """Adds `delta` (negative for deletions) to the organization's total of `kind`."""
    if kind not in COUNTED:
        raise ValueError(f"no running total of {kind!r}")
    if not delta:
        return
    writer = _writer()
    share = f"{tenant.organization_id}:{kind}:{writer}"
    lock = _locks.get(share)
    if lock is None:
        lock = asyncio.Lock()
        _locks[share] = lock
    async with lock:
        await tenant.update_one(
            Tally,
            {"_id": share, "kind": kind, "writer": writer},
            {"$inc": {"n": delta}, "$set": {"updatedAt": tenant.now()}},
            upsert=True,
        )


async def total(tenant: Tenant, kind: str) -> int:
    """Returns the organization's total of `kind`: the sum of every writer's share."""
    shares = await tenant.raw_find(Tally, {"kind": kind}, {"n": 1}).to_list()
    return sum(int(doc.get("n", 0)) for doc in shares)


async def recount(tenant: Tenant, kind: str) -> int:
    """Counts the organization's documents of `kind` (reading them all, once) and sets the
    correction share so that the total equals the count; returns the count.

    Exact when nothing creates or deletes them meanwhile (at start-up, before serving);
    running it again changes nothing.
    """
    counted = await tenant.count(COUNTED[kind])
    others = 0
    async for doc in tenant.raw_find(Tally, {"kind": kind}, {"n": 1, "writer": 1}):
        if doc.get("writer") != RECOUNT_WRITER:
            others += int(doc.get("n", 0))
    await tenant.update_one(
        Tally,
        {"_id": f"{tenant.organization_id}:{kind}:{RECOUNT_WRITER}", "kind": kind},
        {"$set": {"n": counted - others, "writer": RECOUNT_WRITER, "updatedAt": tenant.now()}},
        upsert=True,
    )
    return counted


async def _contacts(tenant: Tenant) -> int:
    return await total(tenant, CONTACTS)


async def _campaigns(tenant: Tenant) -> int:
    return await total(tenant, CAMPAIGNS)


async def _suppressions(tenant: Tenant) -> int:
    return await total(tenant, SUPPRESSIONS)


size_estimates[Contact] = _contacts
size_estimates[Campaign] = _campaigns
size_estimates[Suppression] = _suppressions
