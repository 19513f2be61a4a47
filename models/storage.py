"""The storage layer's own records: running totals and applied migrations."""

from __future__ import annotations

from datetime import datetime

import pymongo
from beanie import Document
from pymongo import IndexModel

from models.base import TenantDocument


class Tally(TenantDocument):
    """One writer's share of an organization's running total of `kind` (see
    `services.storage.tallies`): the total is the sum of the shares.

    `_id` is `"<organizationId>:<kind>:<writer>"`; only that writer ever changes it.
    """

    id: str | None = None  # type: ignore[assignment]
    kind: str
    writer: str
    n: int = 0

    class Settings:
        name = "tallies"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("kind", pymongo.ASCENDING)],
                name="org_kind",
            ),
        ]


class MigrationRecord(Document):
    """A claim on one attempt of a versioned migration, or its completion (see
    `services.storage.migrations`). Not tenant data: migrations run for the deployment.

    `_id` is `"<version>:<attempt>"` for a claim and `"<version>:done"` once applied, so the
    primary key decides who runs an attempt and records a version once.
    """

    id: str | None = None  # type: ignore[assignment]
    version: int
    name: str
    attempt: int | None = None
    holder: str | None = None
    leaseUntil: datetime | None = None
    doneAt: datetime | None = None

    class Settings:
        name = "migrations"
        shard_key = None
        indexes = [IndexModel([("version", pymongo.ASCENDING)], name="version")]
