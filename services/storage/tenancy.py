"""The one place a query learns its organization.

Every read and write of a tenant-owned document goes through `Tenant`, which is built only from
a verified `Principal`. A document of another organization is indistinguishable from one that
does not exist: it is never found, counted, updated or deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from beanie import PydanticObjectId
from beanie.odm.queries.find import FindMany
from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.cursor import AsyncCursor

from core.auth import Principal
from models.base import TenantDocument, utcnow

D = TypeVar("D", bound=TenantDocument)
RAW_BATCH = 5000
"""Documents per cursor batch on hot paths: fewer round trips than the driver's 101-first."""
IN_CHUNK = 250
"""Values per `$in` command. FerretDB checks each document it reads against the whole list, so
one command's cost grows with the square of its length; shorter lists cost round trips
(docs/performance.md#id-lists)."""
IN_AT_ONCE = 2
"""`$in` commands one caller keeps in flight: one per core of the embedded server."""
INSERTS_AT_ONCE = 2
"""Insert commands one caller keeps in flight (see `Tenant.insert_in_batches`)."""
INSERT_SHARE_MIN = 250
"""The smallest share of a list worth a command of its own: a shorter list goes whole (the
second command would cost more than the second core saves)."""
BULK_CHUNK = 25
"""Statements per bulk update command (see `Tenant.update_each`)."""
_BULK_GATE = asyncio.Semaphore(1)
DUPLICATE_KEY = 11000
"""The server's code for a write a unique index refused: how a claim by insert learns it lost."""


class Tenant:
    """A caller's organization, and the only door to its documents."""

    __slots__ = ("_principal", "organization_id")

    def __init__(self, principal: Principal) -> None:
        self._principal: Principal | None = principal
        self.organization_id = PydanticObjectId(principal.organization_id)

    @classmethod
    def for_organization(cls, organization_id: ObjectId | str) -> Tenant:
        """Returns the scope of one organization for work no request started (purges, the
        dispatcher): the same filters, but no caller to act as."""
        tenant = cls.__new__(cls)
        tenant._principal = None
        tenant.organization_id = PydanticObjectId(organization_id)
        return tenant

    @property
    def principal(self) -> Principal:
        """Returns the caller; background work has none and must not ask."""
        if self._principal is None:
            raise RuntimeError("this tenant scope was built without a caller")
        return self._principal

    def _filter(self, query: Mapping[str, Any] | None) -> dict[str, Any]:
        if query and "organizationId" in query:
            raise ValueError("organizationId is set by the tenant scope, never by a caller")
        return {**(query or {}), "organizationId": self.organization_id}

    def find(self, model: type[D], query: Mapping[str, Any] | None = None) -> FindMany[D]:
        """Returns a query over `model` limited to this organization."""
        return model.find(self._filter(query))

    async def get(self, model: type[D], document_id: ObjectId | str) -> D | None:
        """Returns the document with that id in this organization, or None."""
        if not ObjectId.is_valid(document_id):
            return None
        return await model.find_one(self._filter({"_id": PydanticObjectId(document_id)}))

    async def count(self, model: type[D], query: Mapping[str, Any] | None = None) -> int:
        """Counts this organization's documents matching `query`."""
        return await model.find(self._filter(query)).count()

    @staticmethod
    async def across_organizations(
        model: type[D], query: Mapping[str, Any], projection: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Finds documents of every organization: only for background work discovering what is
        due (the dispatcher), which then reads and writes through `for_organization`."""
        cursor = model.get_pymongo_collection().find(dict(query), dict(projection))
        return [doc async for doc in cursor]

    @staticmethod
    def now() -> datetime:
        """Returns the timestamp new documents get (millisecond precision, UTC)."""
        return utcnow()

    def raw_find(
        self,
        model: type[D],
        query: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> AsyncCursor[dict[str, Any]]:
        """Returns a PyMongo cursor of plain dicts; for hot paths where decoding models costs."""
        return model.get_pymongo_collection().find(
            self._filter(query), projection, batch_size=RAW_BATCH
        )

    async def raw_find_in(
        self,
        model: type[D],
        field: str,
        values: Sequence[Hashable],
        projection: Mapping[str, Any] | None = None,
        *,
        where: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Returns this organization's documents (matching `where`) whose `field` is one of
        `values`, at a cost in proportion to the list: `$in` commands of `IN_CHUNK` values,
        `IN_AT_ONCE` at a time.

        MongoDB answers `$in` from the index on `field`. So does the embedded FerretDB, built
        with the project's patch (scripts/ferretdb-in-pushdown.patch); a stock FerretDB v1
        reads every row of the organization for each command (docs/database.md).
        """
        chunks = self._chunks(values)
        if len(chunks) == 1:
            return await self._find_in(model, field, chunks[0], projection, where)
        gate = asyncio.Semaphore(IN_AT_ONCE)

        async def one(chunk: list[Hashable]) -> list[dict[str, Any]]:
            async with gate:
                return await self._find_in(model, field, chunk, projection, where)

        return [doc for docs in await asyncio.gather(*map(one, chunks)) for doc in docs]

    @staticmethod
    def _chunks(values: Sequence[Hashable]) -> list[list[Hashable]]:
        unique = list(dict.fromkeys(values))
        return [unique[start : start + IN_CHUNK] for start in range(0, len(unique), IN_CHUNK)]

    async def _find_in(
        self,
        model: type[D],
        field: str,
        chunk: list[Hashable],
        projection: Mapping[str, Any] | None,
        where: Mapping[str, Any] | None,
    ) -> list[dict[str, Any]]:
        query = {**(where or {}), field: one_of(chunk)}
        return [doc async for doc in self.raw_find(model, query, projection)]

    async def find_all(
        self,
        model: type[D],
        query: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
    ) -> list[D]:
        """Returns the matching documents as models, in one round trip when they fit one batch.

        Beanie's own `find` starts with the driver's 101-document batch and then asks for more
        (`getMore`); per-request loaders read hundreds of documents and want one command.
        """
        cursor = self.raw_find(model, query).limit(limit)
        if sort:
            cursor = cursor.sort(list(sort))
        return [model.model_validate(doc) async for doc in cursor]

    async def raw_insert_many(
        self, model: type[D], documents: Sequence[dict[str, Any]], *, ordered: bool
    ) -> None:
        """Inserts plain dicts stamped with this organization; ids are set by the caller.

        Used where Beanie's per-document encoding would dominate (tens of thousands of rows).
        """
        if not documents:
            return
        now = utcnow()
        for doc in documents:
            if "_id" not in doc:
                raise ValueError("assign _id before inserting; callers need the ids")
            doc["organizationId"] = self.organization_id
            doc.setdefault("createdAt", now)
            doc.setdefault("updatedAt", now)
        await model.get_pymongo_collection().insert_many(list(documents), ordered=ordered)

    async def insert_in_batches(
        self, model: type[D], documents: Sequence[dict[str, Any]], *, batch: int
    ) -> None:
        """Inserts plain dicts as `raw_insert_many` does (ordered within a batch), in batches of
        at most `batch`, `INSERTS_AT_ONCE` commands at a time: FerretDB writes one command's
        documents in one PostgreSQL transaction, on one core, so two at once keep a second core
        busy (docs/performance.md). After a failure no further batch starts; the failure is
        raised once the batches in flight have ended, also when the caller is cancelled, so a
        caller that cleans up after it removes all that landed."""
        if not documents:
            return
        share = -(-len(documents) // INSERTS_AT_ONCE)
        size = min(batch, share if share >= INSERT_SHARE_MIN else len(documents))
        gate = asyncio.Semaphore(INSERTS_AT_ONCE)
        stopped = False

        async def one(start: int) -> None:
            nonlocal stopped
            async with gate:
                if stopped:
                    return
                try:
                    await self.raw_insert_many(model, documents[start : start + size], ordered=True)
                except BaseException:
                    stopped = True
                    raise

        batches = [asyncio.ensure_future(one(start)) for start in range(0, len(documents), size)]
        try:
            await asyncio.wait(batches)
        except asyncio.CancelledError:
            stopped = True
            await asyncio.wait(batches)  # the inserts in flight end before the caller cleans up
            raise
        failures = [b.exception() for b in batches]  # each retrieved: none is logged as lost
        if first := next((f for f in failures if f is not None), None):
            raise first

    def stamp(self, document: D) -> D:
        """Sets the owner and timestamps on a new document before it is inserted."""
        document.organizationId = self.organization_id
        now = utcnow()
        document.createdAt = now
        document.updatedAt = now
        return document

    async def insert(self, document: D) -> D:
        """Inserts one new document owned by this organization."""
        return await self.stamp(document).insert()

    async def update_one(
        self,
        model: type[D],
        query: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
    ) -> int:
        """Applies `update` to one matching document of this organization; returns matches.

        With `upsert`, a missing document is created, owned by this organization (the filter's
        equalities, `organizationId` among them, become its fields)."""
        collection = model.get_pymongo_collection()
        result = await collection.update_one(self._filter(query), dict(update), upsert=upsert)
        return int(result.matched_count)

    async def update_many(
        self, model: type[D], query: Mapping[str, Any], update: Mapping[str, Any]
    ) -> int:
        """Applies `update` to every matching document of this organization; returns matches."""
        collection = model.get_pymongo_collection()
        result = await collection.update_many(self._filter(query), dict(update))
        return int(result.matched_count)

    async def update_each(
        self, model: type[D], updates: Sequence[tuple[ObjectId | str, Mapping[str, Any]]]
    ) -> None:
        """Sets fields on many documents by `_id`, each its own update, in few commands.

        Each document gets its own fields, so each its own `_id` equality. FerretDB v1 takes a
        pool connection per statement of an `update` command and waits for them all: one
        command of 400 statements, or two of 100 at once, exhaust its pool (120) and hang it
        for good. So statements go `BULK_CHUNK` per command, one command at a time per process.
        """
        operations = [
            UpdateOne(self._filter({"_id": document_id}), {"$set": dict(fields)})
            for document_id, fields in updates
        ]
        collection = model.get_pymongo_collection()
        for start in range(0, len(operations), BULK_CHUNK):
            async with _BULK_GATE:
                await collection.bulk_write(operations[start : start + BULK_CHUNK], ordered=True)

    async def delete_in(
        self,
        model: type[D],
        field: str,
        values: Sequence[Hashable],
        where: Mapping[str, Any] | None = None,
    ) -> int:
        """Deletes the documents whose `field` is one of `values` (and match `where`), in
        `raw_find_in`'s chunks, one after the other."""
        deleted = 0
        for chunk in self._chunks(values):
            deleted += await self.delete_many(model, {**(where or {}), field: one_of(chunk)})
        return deleted

    async def delete_many(self, model: type[D], query: Mapping[str, Any]) -> int:
        """Deletes this organization's documents matching `query`; returns how many."""
        collection = model.get_pymongo_collection()
        result = await collection.delete_many(self._filter(query))
        return int(result.deleted_count)


def one_of(values: Sequence[Hashable]) -> Any:
    """The condition that a field is one of `values`: an equality for one value, which a stock
    FerretDB pushes down too (a detail page's loader, one phone's suppression check), `$in`
    for more."""
    unique = list(dict.fromkeys(values))
    return unique[0] if len(unique) == 1 else {"$in": unique}
