"""A remembered answer to a request that carried an idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class IdempotencyRecord(TenantDocument):
    """Reserved before the work starts, completed with its result; the unique index decides
    which of two racing requests does the work."""

    scope: str
    key: str
    requestHash: str
    state: str = "in_progress"
    result: dict[str, Any] | None = None
    leaseUntil: datetime

    class Settings:
        name = "idempotency_keys"
        shard_key = ("organizationId", "scope")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("scope", pymongo.ASCENDING),
                    ("key", pymongo.ASCENDING),
                ],
                name="org_scope_key_unique",
                unique=True,
            ),
        ]


class IdempotencyTakeover(TenantDocument):
    """One retry's claim on an expired reservation.

    FerretDB does not make conditional updates atomic (two racing `findAndModify` calls with
    the same filter can both match), so the unique index here decides which retry takes over.
    """

    recordId: PydanticObjectId
    leaseUntil: datetime

    class Settings:
        name = "idempotency_takeovers"
        shard_key = ("organizationId", "recordId")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("recordId", pymongo.ASCENDING),
                    ("leaseUntil", pymongo.ASCENDING),
                ],
                name="org_record_lease_unique",
                unique=True,
            ),
        ]
