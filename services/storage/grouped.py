"""Grouped inserts: many concurrent callers' documents stored by one insert at a time.

A burst of small writes (a webhook per inbound reply) costs one database command each when
written one by one; most of a command's cost is the command, not the document, and the
callers queue for the pool's connections behind each other. Here a caller's document waits
while one insert is in flight and goes out with every other that arrived meanwhile (group
commit): one round trip for a burst's worth, and each caller is still answered only once its
own document is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.storage.tenancy import DUPLICATE_KEY

Waiting = tuple[dict[str, Any], "asyncio.Future[bool]"]


class Inserting(Protocol):
    """What is used of a collection (PyMongo's `AsyncCollection` is one)."""

    async def insert_many(self, documents: Sequence[dict[str, Any]], *, ordered: bool) -> Any: ...

    async def insert_one(self, document: dict[str, Any]) -> Any: ...


class GroupedInserts:
    """Inserts into one collection, grouped; `insert` answers whether the document is new."""

    def __init__(self, collection: Inserting, *, most: int = 500) -> None:
        self.collection = collection
        self.most = most
        """Documents in one insert at most (a larger burst goes out in several)."""
        self.waiting: list[Waiting] = []
        self.storing: asyncio.Task[None] | None = None

    async def insert(self, document: dict[str, Any]) -> bool:
        """Stores the document; False when its `_id` (or another unique key) is stored
        already. Raises what storing it raised, when it was not stored."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((document, done))
        if self.storing is None:
            self.storing = asyncio.create_task(self._store())
        return await done

    async def _store(self) -> None:
        batch: list[Waiting] = []
        try:
            while self.waiting:
                batch, self.waiting = self.waiting[: self.most], self.waiting[self.most :]
                await self._insert(batch)
        finally:
            self.storing = None
            for _, done in batch:  # stopped mid-insert (cancelled): no caller is left waiting
                if not done.done():
                    done.cancel()

    async def _insert(self, batch: list[Waiting]) -> None:
        """One unordered insert: a duplicate or a refused document does not stop the others.
        A failure of the whole command (the connection, a document the driver cannot send) is
        retried one document at a time, so it reaches only the caller whose document it is."""
        outcomes: dict[int, bool | BaseException] = {}
        try:
            await self.collection.insert_many([document for document, _ in batch], ordered=False)
        except BulkWriteError as error:
            for failure in error.details.get("writeErrors", []):
                duplicate = failure.get("code") == DUPLICATE_KEY
                refused = BulkWriteError({"writeErrors": [failure]})
                outcomes[int(failure["index"])] = False if duplicate else refused
        except Exception:
            if len(batch) > 1:
                await asyncio.gather(*(self._insert([one]) for one in batch))
                return
            outcomes[0] = await self._alone(batch[0][0])
        for index, (_, done) in enumerate(batch):
            if done.done():  # its caller went away (cancelled)
                continue
            outcome = outcomes.get(index, True)
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

    async def _alone(self, document: dict[str, Any]) -> bool | BaseException:
        try:
            await self.collection.insert_one(document)
        except DuplicateKeyError:
            return False
        except Exception as error:
            return error
        return True
