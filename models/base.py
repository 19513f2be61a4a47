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
    """

    organizationId: PydanticObjectId
    createdAt: datetime = Field(default_factory=utcnow)
    updatedAt: datetime = Field(default_factory=utcnow)
