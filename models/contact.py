"""A person a campaign can message."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class ConsentSource(StrEnum):
    """Where a contact's consent to be texted came from (carriers and TCPA audits ask)."""

    FORM = "form"
    """A web or paper form the contact filled in."""
    IMPORT = "import"
    """A list imported with a campaign (`consentFile` names the file)."""
    MANUAL = "manual"
    """Typed in by a rep."""
    INBOUND = "inbound"
    """The contact texted the organization first."""
    API = "api"
    """Another system, through the API."""


class Contact(TenantDocument):
    """A contact of one organization; the phone (E.164) is unique within the organization."""

    firstName: str = ""
    lastName: str = ""
    phoneNumber: str
    email: str | None = None
    contactStatus: str | None = None
    process: str | None = None
    tags: list[str] = []
    assignedTo: PydanticObjectId | None = None
    optedOut: bool = False
    optedOutAt: datetime | None = None
    optOutReason: str | None = None
    source: str | None = None
    """How it was created when not by a rep or an import: `inbound` (it texted first)."""
    consentSource: ConsentSource | None = None
    consentAt: datetime | None = None
    consentFile: str | None = None
    """A reference to the proof of consent (a file name, a form submission id)."""
    version: int = 0
    """Counts changes; each claims the next version first (see `services.storage.history`)."""
    page: int | None = None
    """Its page in the organization's list, from 0 (see `services.storage.positions`)."""

    class Settings:
        name = "contacts"
        shard_key = ("organizationId", "phoneNumber")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("phoneNumber", pymongo.ASCENDING)],
                name="org_phone_unique",
                unique=True,
            ),
            # A message to the shared deployment sender names a phone, not an organization
            # (single-tenant mode, `services.conversations.routing`).
            IndexModel([("phoneNumber", pymongo.ASCENDING)], name="phone"),
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("page", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="org_page_id",
            ),
        ]


class ContactPage(TenantDocument):
    """A claimed page number of an organization's contact list (see `services.storage.positions`).

    `_id` is `"<organizationId>:<page>"`, so the primary key itself makes a claim unique.
    """

    id: str | None = None  # type: ignore[assignment]
    page: int

    class Settings:
        name = "contact_pages"
        shard_key = ("organizationId", "_id")
