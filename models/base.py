"""The base every tenant-owned document shares."""

from __future__ import annotations

from datetime import UTC, datetime

from beanie import Document, PydanticObjectId
from pydantic import Field


def utcnow() -> datetime:
    """Returns the current time truncated to milliseconds, the precision MongoDB stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class TenantDocument(Document):
    """A document owned by one organization; only `services.storage.tenancy` queries these.

    Field names are camelCase on purpose: they are the stored names and the legacy REST
    contract's names, so one spelling runs from the database to the wire.

    Each model's `Settings.shard_key` names the fields its collection is sharded on for a
    sharded MongoDB cluster (None: left unsharded), next to the indexes that must fit it;
    docs/database.md#shard-keys says why, and `tests/test_shard_keys.py` holds the two to
    each other and to the queries the app sends.
    """

    organizationId: PydanticObjectId
    createdAt: datetime = Field(default_factory=utcnow)
    updatedAt: datetime = Field(default_factory=utcnow)
