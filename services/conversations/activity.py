"""The organization's inbox log: one entry per stored message, appended, numbered densely.

An entry claims its number `n` with a unique insert (`_id` = `"<organizationId>:<n>"`), so
two writers never share one. The highest number is found by equality probes on `_id` from a
per-process hint, as `services.storage.positions` finds its last page; an inbox page reads
whole pages of entries (`n // ACTIVITY_PAGE`) by equality, from the last one back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from models import Activity
from models.conversation import ACTIVITY_PAGE, Direction
from services.storage.tenancy import Tenant

_known_last: dict[str, int] = {}
"""The highest entry this process has seen per organization: a hint, never trusted."""


async def append(
    tenant: Tenant,
    *,
    contact_id: ObjectId,
    message_id: ObjectId,
    direction: Direction,
    at: datetime,
) -> int:
    """Appends an entry for a stored message; returns its number."""
    org = str(tenant.organization_id)
    while True:
        n = await last_entry(tenant) + 1
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
            continue
        _known_last[org] = max(_known_last.get(org, -1), n)
        return n


async def last_entry(tenant: Tenant) -> int:
    """The highest entry number (-1 when none): forward from the hint, doubling, then halving."""
    org = str(tenant.organization_id)
    low = _known_last.get(org, -1)
    if not await _exists(tenant, low + 1):
        if low >= 0 and not await _exists(tenant, low):
            _known_last.pop(org, None)  # another database (tests): start over
            return await last_entry(tenant)
        return low
    step, high = 1, low + 1
    while await _exists(tenant, high + step):
        high += step
        step *= 2
    missing = high + step
    while missing - high > 1:
        middle = (high + missing) // 2
        if await _exists(tenant, middle):
            high = middle
        else:
            missing = middle
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
