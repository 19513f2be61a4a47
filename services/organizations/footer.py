"""The opt-out footer: added to the first message a contact gets from the organization.

"First" is decided by a unique insert, never by reading and then writing: just before a
message is handed over, its sender inserts the contact's `FirstMessage` marker
(`"<organizationId>:<contactId>"`). Whoever inserts it first adds the footer; a second
campaign, a racing dispatcher or a rep's message finds the key taken and adds nothing. A
message that is then not sent (a template value missing) gives its marker back, so the footer
waits for a message that goes. A template that already says STOP gets nothing added, but still
takes the marker: its message carried the opt-out language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import FirstMessage
from services.storage.tenancy import Tenant

DUPLICATE_KEY = 11000
SAYS_STOP = re.compile(r"\bstop\b", re.IGNORECASE)
SEPARATOR = "\n"


def footer_for(message: str, footer: str) -> str:
    """The footer a first message of this template gets: none when it already says STOP or
    when the organization turned the footer off."""
    if not footer or SAYS_STOP.search(message):
        return ""
    return footer


def with_footer(text: str, footer: str) -> str:
    return f"{text}{SEPARATOR}{footer}" if footer else text


def marker_id(organization_id: object, contact_id: object) -> str:
    return f"{organization_id}:{contact_id}"


async def claim_first(tenant: Tenant, contact_ids: Iterable[ObjectId]) -> set[ObjectId]:
    """Inserts the markers of these contacts; returns those whose marker this call inserted
    (their message is their first). One unordered insert for a whole chunk."""
    wanted = list(dict.fromkeys(contact_ids))
    if not wanted:
        return set()
    documents = [{"_id": marker_id(tenant.organization_id, c)} for c in wanted]
    try:
        await tenant.raw_insert_many(FirstMessage, documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        taken = {int(e["index"]) for e in errors}
        return {c for i, c in enumerate(wanted) if i not in taken}
    return set(wanted)


async def claim_one(tenant: Tenant, contact_id: ObjectId) -> bool:
    try:
        await tenant.raw_insert_many(
            FirstMessage, [{"_id": marker_id(tenant.organization_id, contact_id)}], ordered=True
        )
    except (DuplicateKeyError, BulkWriteError):
        return False
    return True


async def give_back(tenant: Tenant, contact_ids: Iterable[ObjectId]) -> None:
    """Deletes markers this sender inserted for messages that did not go."""
    ids = [marker_id(tenant.organization_id, c) for c in dict.fromkeys(contact_ids)]
    if ids:
        await tenant.delete_in(FirstMessage, "_id", ids)


async def had_first(tenant: Tenant, contact_id: ObjectId) -> bool:
    """Whether the contact already got a message from the organization (one read by id)."""
    rows = await tenant.raw_find_in(
        FirstMessage, "_id", [marker_id(tenant.organization_id, contact_id)], {"_id": 1}
    )
    return bool(rows)
