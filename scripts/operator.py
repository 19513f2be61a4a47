"""What the operator commands (`org_rate`, `recount`) share: work against the configured
database, and the organization named by `--org`."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bson import ObjectId
from bson.errors import InvalidId

from core.config import Settings
from core.db import create_client, init_database

T = TypeVar("T")


async def on_database(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    """Runs `work` with the models bound to `MONGODB_URI`/`MONGODB_DB`, then disconnects."""
    client = create_client(settings)
    try:
        await init_database(client, settings.mongodb_db)
        return await work()
    finally:
        await client.close()


def organization_id(value: str) -> ObjectId | None:
    """The organization `--org` names, or None after saying on stderr why it names none."""
    try:
        return ObjectId(value)
    except InvalidId:
        print(f"--org: {value!r} is not an organization id", file=sys.stderr)
        return None
