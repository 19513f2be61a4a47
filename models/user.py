"""A sales rep (or admin) of an organization."""

from __future__ import annotations

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class User(TenantDocument):
    """A person who creates campaigns and is assigned recipients.

    `userId` is the token's `sub`. One person may work in several organizations, so the
    document has its own `_id` and `(organizationId, userId)` is what is unique.
    """

    userId: PydanticObjectId
    fullName: str
    email: str | None = None
    roles: list[str] = []

    class Settings:
        name = "users"
        shard_key = ("organizationId", "userId")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("userId", pymongo.ASCENDING)],
                name="org_user_unique",
                unique=True,
            ),
        ]
