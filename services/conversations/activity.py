"""The organization's inbox log: one entry per stored message, appended, numbered densely.

An entry claims its number `n` with a unique insert (`_id` = `"<organizationId>:<n>"`), so
two writers never share one. The highest number is found by equality probes on `_id` from a
per-process hint, as `services.storage.positions` finds its last page; an inbox page reads
whole pages of entries (`n // ACTIVITY_PAGE`) by equality, from the last one back.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from models import Activity
from models.conversation import ACTIVITY_PAGE, Direction
from services.storage.sequences import last_claimed
from services.storage.tenancy import Tenant

_known_last: dict[str, int] = {}
"""The highest entry this process has seen per organization: a hint, never trusted."""
_locks: dict[str, asyncio.Lock] = {}


async def append(
    tenant: Tenant,
    *,
    contact_id: ObjectId,
    message_id: ObjectId,
    direction: Direction,
    at: datetime,
) -> int:
    """Appends an entry for a stored message; returns its number.

    Appends of one organization take turns within a process (a burst of replies would
    otherwise race for every number: 20 at once served 5 a second); across processes the
    unique insert still decides, and a loser moves on to the next number."""
    org = str(tenant.organization_id)
    async with _lock(org):
        return await _append(tenant, org, contact_id, message_id, direction, at)


async def _append(
    tenant: Tenant,
    org: str,
    contact_id: ObjectId,
    message_id: ObjectId,
    direction: Direction,
    at: datetime,
) -> int:
    # Under the lock the hint is this process's own last append: the next number is usually
    # free, and a number another process took is skipped by the unique insert.
    known = _known_last.get(org)
    n = known + 1 if known is not None else await last_entry(tenant) + 1
    while True:
        entry = Activity(
            id=f"{org}:{n}",
            organizationId=tenant.organization_id,
            n=n,
            page=n // ACTIVITY_PAGE,
            contactId=contact_id,
            messageId=message_id,
            direction=direction,
            at=at,
        )
        try:
            await tenant.insert(entry)
        except DuplicateKeyError:
            _known_last[org] = max(_known_last.get(org, -1), n)
            n += 1
            continue
        _known_last[org] = max(_known_last.get(org, -1), n)
        return n


def _lock(org: str) -> asyncio.Lock:
    lock = _locks.get(org)
    if lock is None:
        lock = _locks[org] = asyncio.Lock()
    return lock


async def last_entry(tenant: Tenant) -> int:
    """The highest entry number (-1 when none), probing forward from the hint."""
    org = str(tenant.organization_id)
    hint = _known_last.get(org, -1)
    if hint >= 0 and not await _exists(tenant, hint):
        hint = -1  # another database (tests): start over
    high = await last_claimed(lambda n: _exists(tenant, n), hint)
    _known_last[org] = high
    return high


async def entries_of_page(tenant: Tenant, page: int) -> list[dict[str, Any]]:
    """A page's entries, newest first."""
    rows = await tenant.raw_find(Activity, {"page": page}).to_list()
    return sorted(rows, key=lambda row: -int(row["n"]))


async def _exists(tenant: Tenant, n: int) -> bool:
    if n < 0:
        return True
    found = tenant.raw_find(Activity, {"_id": f"{tenant.organization_id}:{n}"}, {"_id": 1})
    return bool(await found.to_list(1))
