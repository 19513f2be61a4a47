"""The organization's inbox log: one entry per stored message, appended, numbered densely.

An entry claims its number `n` with a unique insert (`_id` = `"<organizationId>:<n>"`), so
two writers never share one. The highest number is found by equality probes on `_id` from a
per-process hint, as `services.storage.positions` finds its last page; an inbox page reads
whole pages of entries (`n // ACTIVITY_PAGE`) by equality, from the last one back.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from models import Activity
from models.conversation import ACTIVITY_PAGE, Direction
from services.storage.sequences import last_claimed
from services.storage.tenancy import DUPLICATE_KEY, Tenant

_known_last: dict[str, int] = {}
"""The highest entry this process has seen per organization: a hint, never trusted."""
_locks: dict[str, asyncio.Lock] = {}
_waiting: dict[str, list[_Waiting]] = {}
"""Entries of each organization waiting for the next turn to append."""


@dataclass
class _Waiting:
    """An entry waiting for its number, and who waits for it."""

    fields: dict[str, Any]
    done: asyncio.Future[int]


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
    otherwise race for every number: 20 at once served 5 a second), and whoever has the turn
    writes every entry waiting by then in one ordered insert: under a burst, one round trip
    numbers many entries instead of one each. Across processes the unique insert still
    decides; an ordered insert stops at a number another process took, so what it wrote is a
    dense run, and the rest moves on to the next numbers."""
    org = str(tenant.organization_id)
    fields = {
        "contactId": contact_id,
        "messageId": message_id,
        "direction": direction.value,
        "at": at,
    }
    mine = _Waiting(fields, asyncio.get_running_loop().create_future())
    _waiting.setdefault(org, []).append(mine)
    async with _lock(org):
        if not mine.done.done():
            batch = _waiting.pop(org, [])
            try:
                await _append(tenant, org, batch)
            except BaseException as exc:
                for waiting in batch:
                    if not waiting.done.done():
                        waiting.done.set_exception(exc)
                        if waiting is not mine:
                            waiting.done.exception()  # retrieved: its own caller raises it
                raise
    return mine.done.result()


async def _append(tenant: Tenant, org: str, batch: list[_Waiting]) -> None:
    # Under the lock the hint is this process's own last append: the next numbers are usually
    # free, and a number another process took is skipped past.
    known = _known_last.get(org)
    n = known + 1 if known is not None else await last_entry(tenant) + 1
    rest = batch
    while rest:
        documents = [
            {"_id": f"{org}:{n + i}", "n": n + i, "page": (n + i) // ACTIVITY_PAGE, **w.fields}
            for i, w in enumerate(rest)
        ]
        try:
            await tenant.raw_insert_many(Activity, documents, ordered=True)
            written = len(rest)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if not errors or errors[0].get("code") != DUPLICATE_KEY:
                raise
            written = int(errors[0]["index"])  # the ones before it went in; that number is taken
        for i, waiting in enumerate(rest[:written]):
            waiting.done.set_result(n + i)
        last = n + written if written < len(rest) else n + written - 1
        _known_last[org] = max(_known_last.get(org, -1), last)
        rest = rest[written:]
        n = last + 1


def _lock(org: str) -> asyncio.Lock:
    lock = _locks.get(org)
    if lock is None:
        lock = _locks[org] = asyncio.Lock()
    return lock


async def last_entry(tenant: Tenant) -> int:
    """The highest entry number (-1 when none), probing forward from the hint."""
    org = str(tenant.organization_id)
    hint = _known_last.get(org, -1)
    if hint >= 0:
        # Both probes at once: when nothing was appended elsewhere (usually) one wait answers.
        here, beyond = await asyncio.gather(_exists(tenant, hint), _exists(tenant, hint + 1))
        if not here:
            hint = -1  # another database (tests): start over
        elif not beyond:
            return hint
    high = await last_claimed(lambda n: _exists(tenant, n), hint)
    _known_last[org] = high
    return high


def known_last(tenant: Tenant) -> int | None:
    """The highest entry this process has seen (a hint, never trusted): what a reader may
    read ahead from while `last_entry` checks it."""
    return _known_last.get(str(tenant.organization_id))


async def entries_of_page(tenant: Tenant, page: int) -> list[dict[str, Any]]:
    """A page's entries, newest first."""
    rows = await tenant.raw_find(Activity, {"page": page}).to_list()
    return sorted(rows, key=lambda row: -int(row["n"]))


async def _exists(tenant: Tenant, n: int) -> bool:
    if n < 0:
        return True
    found = tenant.raw_find(Activity, {"_id": f"{tenant.organization_id}:{n}"}, {"_id": 1})
    return bool(await found.to_list(1))
