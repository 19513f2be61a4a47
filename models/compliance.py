"""What compliance keeps per organization: numbers never to text, and who had a first message."""

from __future__ import annotations

import pymongo
from pymongo import IndexModel

from models.base import TenantDocument

PREFIX_KEY_LENGTH = 10
"""Characters of a number's `prefixKey` (`+` and 9 digits): a key holds at most 100 North
American numbers, so one bucket read stays small whatever the list's size."""


def prefix_key(phone: str) -> str:
    return phone[:PREFIX_KEY_LENGTH]


def suppression_id(organization_id: object, phone: str) -> str:
    """The one document of a suppressed number: a second import of it is a duplicate key."""
    return f"{organization_id}:{phone}"


class Suppression(TenantDocument):
    """A number the organization must never text, contact or not; `_id` is
    `"<organizationId>:<E.164>"`, so a send checks it by `_id` and an import inserts
    without reading.

    `page` is its list page, claimed at insert (`services.storage.positions`), and `prefixKey`
    the number's first `PREFIX_KEY_LENGTH` characters: the list and prefix searches are read
    by equality on one or the other (`services.contacts.suppressions`)."""

    id: str | None = None  # type: ignore[assignment]
    phoneNumber: str
    reason: str | None = None
    page: int | None = None
    prefixKey: str | None = None

    class Settings:
        name = "suppressions"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(  # the list's pages (and, for the migration, numbers without one)
                [("organizationId", pymongo.ASCENDING), ("page", pymongo.ASCENDING)],
                name="org_page",
            ),
            IndexModel(  # a prefix search's buckets, and a short prefix's count (a range)
                [("organizationId", pymongo.ASCENDING), ("prefixKey", pymongo.ASCENDING)],
                name="org_prefix",
            ),
        ]


class SuppressionPage(TenantDocument):
    """A claimed page number of an organization's suppression list (`_id`
    `"<organizationId>:<page>"`, as `ContactPage`). `skipTo`, written once by the import that
    claimed the page for itself, says that the pages up to it received nothing (its numbers
    were all on the list already), so a reader jumps the run instead of reading each one."""

    id: str | None = None  # type: ignore[assignment]
    page: int
    shared: bool = False
    """Claimed for small imports, which fill it together; a larger import's pages are its own."""
    skipTo: int | None = None

    class Settings:
        name = "suppression_pages"
        shard_key = ("organizationId", "_id")


class FirstMessage(TenantDocument):
    """The marker of a contact's first message from the organization: `_id` is
    `"<organizationId>:<contactId>"`. Whoever inserts it sends the message with the opt-out
    footer; every later message (another campaign, a dispatcher racing, a rep) finds it taken,
    so no document has two writers. `key` names the message that holds it (its idempotency
    key): only that message gives it back, and a holder resending it after a crash knows it."""

    id: str | None = None  # type: ignore[assignment]
    key: str | None = None

    class Settings:
        name = "first_messages"
        shard_key = ("organizationId", "_id")
