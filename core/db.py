"""The one MongoDB client of the process, and Beanie's initialisation on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beanie import init_beanie
from pymongo import AsyncMongoClient
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
    """Binds the documents to `database_name` and creates their indexes (idempotent)."""
    await init_beanie(database=client[database_name], document_models=DOCUMENT_MODELS)


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
