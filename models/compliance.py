"""What compliance keeps per organization: numbers never to text, and who had a first message."""

from __future__ import annotations

import pymongo
from pymongo import IndexModel

from models.base import TenantDocument


def suppression_id(organization_id: object, phone: str) -> str:
    """The one document of a suppressed number: a second import of it is a duplicate key."""
    return f"{organization_id}:{phone}"


class Suppression(TenantDocument):
    """A number the organization must never text, contact or not; `_id` is
    `"<organizationId>:<E.164>"`, so a send checks it by point lookups and an import inserts
    without reading."""

    id: str | None = None  # type: ignore[assignment]
    phoneNumber: str
    reason: str | None = None

    class Settings:
        name = "suppressions"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(  # the list: the organization's ids in order, and its count
                [("organizationId", pymongo.ASCENDING), ("_id", pymongo.ASCENDING)],
                name="org_id",
            ),
        ]


class FirstMessage(TenantDocument):
    """The marker of a contact's first message from the organization: `_id` is
    `"<organizationId>:<contactId>"`. Whoever inserts it sends the message with the opt-out
    footer; every later message (another campaign, a dispatcher racing, a rep) finds it taken,
    so no document has two writers."""

    id: str | None = None  # type: ignore[assignment]

    class Settings:
        name = "first_messages"
        shard_key = ("organizationId", "_id")
