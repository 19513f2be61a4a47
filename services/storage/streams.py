"""Streaming a numbered-page collection in order, one page in memory at a time.

Contacts sit on numbered list pages (`page`) and recipients in numbered batches (`batch`), each
read with an equality filter that every server answers from an index (FerretDB pushes
equalities down, not ranges or sorts; see docs/database.md). An export walks those numbers in
order. Each read is a round trip, so a few pages are read ahead concurrently; what is held is
bounded by the look-ahead, never by the collection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from services.storage.tenancy import D, Tenant

T = TypeVar("T")
READ_AHEAD = 4
"""Pages read concurrently ahead of the one being written out."""


async def in_order(
    read: Callable[[int], Awaitable[T]], numbers: range, *, ahead: int = READ_AHEAD
) -> AsyncGenerator[T, None]:
    """Yields `read(n)` for each number in order, keeping at most `ahead` reads in flight.

    A consumer that stops early (a client that went away) cancels the reads still running.
    """
    pending: list[asyncio.Task[T]] = []
    upcoming = iter(numbers)
    try:
        for number in upcoming:
            pending.append(asyncio.ensure_future(read(number)))
            if len(pending) >= ahead:
                break
        while pending:
            page = await pending.pop(0)
            following = next(upcoming, None)
            if following is not None:
                pending.append(asyncio.ensure_future(read(following)))
            yield page
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def equality_pages(
    tenant: Tenant,
    model: type[D],
    field: str,
    numbers: range,
    *,
    where: Mapping[str, Any] | None = None,
    projection: Mapping[str, Any] | None = None,
    order: str = "_id",
    ahead: int = READ_AHEAD,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Yields this organization's documents page by page (`{field: n, **where}` for each `n`),
    each page sorted by `order` in memory (the order its list shows; a page is at most a few
    hundred documents, and FerretDB would sort them the same way, after reading them)."""

    async def read(number: int) -> list[dict[str, Any]]:
        query = {**(where or {}), field: number}
        rows = await tenant.raw_find(model, query, projection).to_list()
        rows.sort(key=lambda row: row[order])
        return rows

    return in_order(read, numbers, ahead=ahead)
