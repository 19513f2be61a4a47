"""Contacts: phone normalisation and race-safe bulk creation that reuses existing contacts."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
from bson import ObjectId
from pymongo.errors import BulkWriteError

from models import Contact
from services.storage import positions, tallies
from services.storage.tenancy import DUPLICATE_KEY, Tenant


class PhoneError(ValueError):
    """A phone that cannot be a mobile destination; `code` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


NANP_E164 = re.compile(r"\+1[0-9]{10}")


def normalize_phone(raw: str | None, default_region: str) -> str:
    """Returns the E.164 form of `raw`; numbers without `+` are read in `default_region`."""
    text = (raw or "").strip()
    if not text:
        raise PhoneError("MISSING_PHONE", "Phone number is required")
    if NANP_E164.fullmatch(text):
        # Already E.164 in the +1 plan (most imports): skip the general parser, validate only.
        number = phonenumbers.PhoneNumber(country_code=1, national_number=int(text[2:]))
        if phonenumbers.is_valid_number_for_region(
            number, default_region
        ) or phonenumbers.is_valid_number(number):
            return text
        raise PhoneError("INVALID_PHONE", f"'{text}' is not a valid phone number")
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError("INVALID_PHONE", f"'{text}' is not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("INVALID_PHONE", f"'{text}' is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@dataclass(slots=True)
class ContactDraft:
    """A normalised contact waiting to be created or matched by phone."""

    phoneNumber: str
    firstName: str = ""
    lastName: str = ""
    email: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ContactRef:
    """What a recipient needs of a contact: its id and the values templates use."""

    id: ObjectId
    firstName: str
    lastName: str
    phoneNumber: str
    email: str | None
    optedOut: bool = False
    page: int | None = None
    """Its list page (fixed at creation): recipients keep it so the dispatcher reads a batch's
    contacts by page, an equality every server answers from an index."""

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> ContactRef:
        return cls(
            id=doc["_id"],
            firstName=doc.get("firstName") or "",
            lastName=doc.get("lastName") or "",
            phoneNumber=doc["phoneNumber"],
            email=doc.get("email"),
            optedOut=bool(doc.get("optedOut")),
            page=doc.get("page"),
        )


REF_PROJECTION = {
    "firstName": 1,
    "lastName": 1,
    "phoneNumber": 1,
    "email": 1,
    "optedOut": 1,
    "page": 1,
}


async def ensure_contacts(
    tenant: Tenant,
    drafts: Sequence[ContactDraft],
    *,
    batch_size: int,
    contact_status: str | None = None,
) -> dict[str, ContactRef]:
    """Creates the drafts whose phone is new and returns every draft's contact, keyed by phone.

    Inserts first and lets the unique `(organizationId, phoneNumber)` index say which phones
    already exist, so two requests racing on one phone both end up with the same contact. One
    insert per batch, plus one lookup per batch that hit existing phones.
    """
    by_phone: dict[str, ContactRef] = {}
    for start in range(0, len(drafts), batch_size):
        batch = drafts[start : start + batch_size]
        docs = [_new_contact_doc(d, contact_status) for d in batch]
        pages = await positions.claim_pages(tenant, len(docs))
        for i, doc in enumerate(docs):
            doc["page"] = pages[i // positions.CONTACTS_PER_PAGE]
        existing: list[str] = []
        try:
            await tenant.raw_insert_many(Contact, docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            existing = [batch[e["index"]].phoneNumber for e in errors]
        await tallies.add(tenant, tallies.CONTACTS, len(docs) - len(existing))
        taken = set(existing)
        for doc in docs:
            if doc["phoneNumber"] not in taken:
                by_phone[doc["phoneNumber"]] = ContactRef.from_document(doc)
        if existing:
            for doc in await tenant.raw_find_in(Contact, "phoneNumber", existing, REF_PROJECTION):
                by_phone[doc["phoneNumber"]] = ContactRef.from_document(doc)
    return by_phone


async def contacts_by_ids(tenant: Tenant, ids: Sequence[ObjectId]) -> dict[ObjectId, ContactRef]:
    """Returns the contacts among `ids` that exist in the caller's organization."""
    docs = await tenant.raw_find_in(Contact, "_id", ids, REF_PROJECTION)
    return {doc["_id"]: ContactRef.from_document(doc) for doc in docs}


async def contacts_by_phones(tenant: Tenant, phones: Sequence[str]) -> dict[str, ContactRef]:
    """Returns the contacts among `phones` (E.164) that exist in the caller's organization."""
    docs = await tenant.raw_find_in(Contact, "phoneNumber", phones, REF_PROJECTION)
    return {doc["phoneNumber"]: ContactRef.from_document(doc) for doc in docs}


async def count_matching(tenant: Tenant, query: dict[str, Any]) -> int:
    """Counts the organization's contacts matching a segmentation query (all of them: the
    running total)."""
    if not query:
        return await tallies.total(tenant, tallies.CONTACTS)
    return await tenant.count(Contact, query)


async def contacts_matching(
    tenant: Tenant, query: dict[str, Any], *, limit: int
) -> list[ContactRef]:
    """Returns up to `limit` of the organization's contacts matching a segmentation query."""
    cursor = tenant.raw_find(Contact, query, REF_PROJECTION).sort("_id", 1).limit(limit)
    return [ContactRef.from_document(doc) async for doc in cursor]


def _new_contact_doc(draft: ContactDraft, contact_status: str | None) -> dict[str, Any]:
    return {
        "_id": ObjectId(),
        "firstName": draft.firstName,
        "lastName": draft.lastName,
        "phoneNumber": draft.phoneNumber,
        "email": draft.email,
        "contactStatus": contact_status,
        "process": None,
        "tags": [],
        "assignedTo": None,
        "optedOut": False,
        "optedOutAt": None,
        "optOutReason": None,
        "version": 0,
        **draft.extra,
    }


PAGE_READ_MIN = 10
"""Recipients on one list page from which reading the whole page beats one lookup each."""


async def contacts_of_rows(
    tenant: Tenant, rows: Sequence[Mapping[str, Any]], projection: Mapping[str, Any]
) -> dict[ObjectId, dict[str, Any]]:
    """Returns the contacts that rows naming `contactId` (and `contactPage`) refer to, by id.

    Contacts created together share a few list pages and recipients keep their contact's page,
    so a batch of recipients is mostly one or two page reads by equality; contacts scattered
    over many pages (or rows without a page) are looked up by id. Deleted contacts are absent.
    """
    wanted = {row["contactId"] for row in rows}
    pages = Counter(row.get("contactPage") for row in rows)
    by_page = {page for page, n in pages.items() if page is not None and n >= PAGE_READ_MIN}
    found: dict[ObjectId, dict[str, Any]] = {}
    reads = [
        tenant.raw_find(Contact, {"page": page}, projection).to_list() for page in sorted(by_page)
    ]
    for page_rows in await asyncio.gather(*reads):
        found.update({row["_id"]: row for row in page_rows if row["_id"] in wanted})
    rest = [row["contactId"] for row in rows if row.get("contactPage") not in by_page]
    for row in await tenant.raw_find_in(Contact, "_id", rest, projection):
        found[row["_id"]] = row
    return found
