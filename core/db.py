"""The one MongoDB client of the process, and Beanie's initialisation on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beanie import Document, init_beanie
from pymongo import AsyncMongoClient, IndexModel
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.monitoring import CommandListener

from core.config import Settings
from core.errors import Unavailable
from models import DOCUMENT_MODELS

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


async def init_database(client: MongoClient, database_name: str) -> None:
    """Binds the documents to `database_name` and creates their missing indexes (idempotent)."""
    await init_beanie(
        database=client[database_name], document_models=DOCUMENT_MODELS, skip_indexes=True
    )
    for model in DOCUMENT_MODELS:
        await ensure_indexes(model)


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
