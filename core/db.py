"""The one MongoDB client of the process, and Beanie's initialisation on it."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from beanie import Document, init_beanie
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure, PyMongoError
from pymongo.monitoring import CommandListener

from core.config import Settings
from core.errors import Unavailable
from models import DOCUMENT_MODELS, MigrationRecord

MongoClient = AsyncMongoClient[dict[str, Any]]


def create_client(
    settings: Settings, event_listeners: Sequence[CommandListener] = ()
) -> MongoClient:
    """Creates the client; PyMongo connects lazily, so this never blocks on the server."""
    return AsyncMongoClient(
        settings.mongodb_uri,
        event_listeners=list(event_listeners),
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        connectTimeoutMS=settings.mongodb_timeout_ms,
        tz_aware=True,
        appname="campaign-service",
    )


def _indexes_record() -> str:
    """The `_id` of the record saying a database has every index as `models/` declares them:
    a digest of all declarations, so a changed or added index makes it a different record."""
    declared = []
    for model in DOCUMENT_MODELS:
        for index in getattr(model.Settings, "indexes", None) or []:
            if isinstance(index, IndexModel):
                document = {**index.document, "key": list(index.document["key"].items())}
                declared.append([str(model.Settings.name), document])
    text = json.dumps(declared, sort_keys=True, default=str)
    return f"indexes:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


INDEXES_RECORD = _indexes_record()
"""Kept in the `migrations` collection (deployment records, like the migrations' own)."""

_initialised: set[type[Document]] = set()
"""The models Beanie has initialised in this process."""


async def init_database(client: MongoClient, database_name: str) -> None:
    """Binds the documents to `database_name` and creates their missing indexes (idempotent).

    A start on a database an earlier start finished setting up sends two commands here rather
    than one `listIndexes` per collection: its `INDEXES_RECORD` names each indexed collection
    by the id the server gave it, and listing the collections shows them all still there. A
    collection dropped since (made again or not) has another id or none, and a changed
    declaration is another record: then every index is checked again. An index dropped by
    hand from a collection still there is not noticed; deleting the record has the next start
    check them all.
    """
    database = client[database_name]
    await bind_models(database)
    recorded = await MigrationRecord.get_pymongo_collection().find_one(
        {"_id": INDEXES_RECORD}, {"collections": 1}
    )
    if recorded is not None and recorded.get("collections") == await _indexed_collections(database):
        return
    for model in DOCUMENT_MODELS:
        await ensure_indexes(model)
    record = {
        "version": 0,
        "name": "indexes as declared",
        "collections": await _indexed_collections(database),
        "doneAt": datetime.now(UTC),
    }
    with contextlib.suppress(DuplicateKeyError, OperationFailure):  # another start wrote it too
        await MigrationRecord.get_pymongo_collection().replace_one(
            {"_id": INDEXES_RECORD}, record, upsert=True
        )


async def _indexed_collections(database: AsyncDatabase[dict[str, Any]]) -> dict[str, Any] | None:
    """The server's id of each collection that declares indexes (None: one is missing, or the
    server gives none)."""
    ids = {
        str(row["name"]): (row.get("info") or {}).get("uuid")
        async for row in await database.list_collections()
    }
    indexed = [
        m.get_collection_name() for m in DOCUMENT_MODELS if getattr(m.Settings, "indexes", None)
    ]
    found = {name: ids.get(name) for name in indexed}
    return found if all(found.values()) else None


async def bind_models(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Points the documents at `database`. Beanie's initialisation inspects every model's
    fields, the same for every database; a process that starts more than one app (the tests
    start hundreds) has it done once and only rebinds the collections afterwards."""
    if not _initialised.issuperset(DOCUMENT_MODELS):
        await init_beanie(database=database, document_models=DOCUMENT_MODELS, skip_indexes=True)
        _initialised.update(DOCUMENT_MODELS)
        return
    for model in DOCUMENT_MODELS:
        settings = model.get_settings()
        settings.pymongo_db = database
        settings.pymongo_collection = database[model.get_collection_name()]


async def ensure_indexes(model: type[Document]) -> None:
    """Creates the model's declared indexes that do not exist yet, one command each.

    Beanie re-sends every declared index whenever one is missing, and FerretDB v1.24 answers a
    `createIndexes` naming two or more existing indexes by dropping the connection (a panic in
    its handler), so a restart on an existing database failed. Indexes are named explicitly, so
    a name that exists is the index we declared.
    """
    collection = model.get_pymongo_collection()
    existing = {index["name"] async for index in await collection.list_indexes()}
    for index in getattr(model.Settings, "indexes", None) or []:  # as declared in `models/`
        if not isinstance(index, IndexModel):
            raise TypeError(f"{model.__name__}: declare indexes as named pymongo.IndexModel")
        if index.document["name"] not in existing:
            await collection.create_indexes([index])


def unavailable(exc: BaseException) -> Unavailable | None:
    """Returns the domain error for a lost database connection, or None for anything else."""
    if isinstance(exc, ConnectionFailure):
        return Unavailable("The database is not answering; retry shortly")
    return None


async def ping(client: MongoClient, timeout_seconds: float = 2.0) -> bool:
    """Tells whether the server answers right now; used by `/readyz`."""
    try:
        db = client.get_database("admin")
        await db.command("ping", maxTimeMS=int(timeout_seconds * 1000))
        return True
    except PyMongoError:
        return False
