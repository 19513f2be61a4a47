"""The storage layer's own records: running totals, applied migrations and the API processes'
shares of request budgets."""

from __future__ import annotations

from datetime import datetime

import pymongo
from beanie import Document
from pymongo import IndexModel

from models.base import TenantDocument


class Tally(TenantDocument):
    """One entry of an organization's running total of `kind`, or a fold of entries (see
    `services.storage.tallies`). Never changed once inserted.

    An entry's `_id` is `"<organizationId>:<kind>:<unique>"` and `n` the change it counts; a
    fold's is `"<organizationId>:<kind>:fold:<fold>"`, its `n` the total of every entry it and
    the folds before it absorbed.
    """

    id: str | None = None  # type: ignore[assignment]
    kind: str
    writer: str
    n: int = 0
    fold: int | None = None
    """Set on a fold: its number, from 1."""
    absorbed: list[str] = []
    """A fold's entries (their `_id`s), which readers then skip."""

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


class RequestShare(Document):
    """One API process's count of the requests it admitted in one window of one budget, per key
    (an organization, or an organization's user; see `services.organizations.request_limits`).
    Not tenant data: one document holds every key the process served.

    `_id` is `"<policy>:<window>:<writer>"`; only that process writes it, replacing it whole.
    """

    id: str | None = None  # type: ignore[assignment]
    policy: str
    window: int
    writer: str
    counts: dict[str, int] = {}

    class Settings:
        name = "request_shares"
        shard_key = None
        indexes = [
            IndexModel(
                [("policy", pymongo.ASCENDING), ("window", pymongo.ASCENDING)],
                name="policy_window",
            )
        ]
