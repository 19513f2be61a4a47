"""The one place a query learns its organization.

Every read and write of a tenant-owned document goes through `Tenant`, which is built only from
a verified `Principal`. A document of another organization is indistinguishable from one that
does not exist: it is never found, counted, updated or deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from beanie import PydanticObjectId
from beanie.odm.queries.find import FindMany
from bson import ObjectId
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.errors import DuplicateKeyError

from core.auth import Principal
from models.base import TenantDocument, utcnow

D = TypeVar("D", bound=TenantDocument)
RAW_BATCH = 5000
"""Documents per cursor batch on hot paths: fewer round trips than the driver's 101-first."""


class Tenant:
    """A caller's organization, and the only door to its documents."""

    __slots__ = ("organization_id", "principal")

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.organization_id = PydanticObjectId(principal.organization_id)

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
        self, model: type[D], query: Mapping[str, Any], update: Mapping[str, Any]
    ) -> int:
        """Applies `update` to one matching document of this organization; returns matches."""
        collection = model.get_pymongo_collection()
        result = await collection.update_one(self._filter(query), dict(update))
        return int(result.matched_count)

    async def upsert(
        self, model: type[D], query: Mapping[str, Any], values: Mapping[str, Any]
    ) -> None:
        """Sets `values` on the matching document of this organization, creating it if absent."""
        now = utcnow()
        filter_ = self._filter(query)
        update = {"$set": {**values, "updatedAt": now}, "$setOnInsert": {"createdAt": now}}
        collection = model.get_pymongo_collection()
        try:
            await collection.update_one(filter_, update, upsert=True)
        except DuplicateKeyError:
            # Two upserts raced and the other inserted first (MongoDB retries this on the
            # server, FerretDB does not): the document exists now, so update it.
            await collection.update_one(filter_, {"$set": update["$set"]})

    async def delete_many(self, model: type[D], query: Mapping[str, Any]) -> int:
        """Deletes this organization's documents matching `query`; returns how many."""
        collection = model.get_pymongo_collection()
        result = await collection.delete_many(self._filter(query))
        return int(result.deleted_count)
