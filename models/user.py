"""A sales rep (or admin) of an organization."""

from __future__ import annotations

import pymongo
from pymongo import IndexModel

from models.base import TenantDocument


class User(TenantDocument):
    """A person who creates campaigns and is assigned recipients."""

    fullName: str
    email: str | None = None
    roles: list[str] = []

    class Settings:
        name = "users"
        indexes = [
            IndexModel([("organizationId", pymongo.ASCENDING)], name="org"),
        ]
