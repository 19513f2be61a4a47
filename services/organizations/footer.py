"""The opt-out footer: added to the first message a contact gets from the organization.

"First" is decided by a unique insert, never by reading and then writing: just before a
message is handed over, its sender inserts the contact's `FirstMessage` marker
(`"<organizationId>:<contactId>"`, naming the message's idempotency key). Whoever inserts it
first adds the footer; a second campaign, a racing dispatcher or a rep's message finds the key
taken and adds nothing. A message that then definitely does not go (a template value missing,
refused by the provider, skipped) gives its marker back, so the footer waits for a message
that goes; one whose outcome is `unknown` keeps it (it may have gone). A holder taking over a
crashed one's messages resends them with the footer the marker names them for. A template
that already says STOP gets nothing added, but still takes the marker: its message carried
the opt-out language.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from bson import ObjectId
from pymongo.errors import BulkWriteError

from models import FirstMessage
from services.storage.tenancy import DUPLICATE_KEY, Tenant

SAYS_STOP = re.compile(r"\bstop\b", re.IGNORECASE)
SEPARATOR = "\n"
GIVE_BACK_CONCURRENCY = 8


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


async def claim_first(
    tenant: Tenant, keys: Mapping[ObjectId, str], *, resumed: bool = False
) -> set[ObjectId]:
    """Inserts the markers of these contacts, each naming its message (`keys`: contact →
    the message's idempotency key); returns the contacts whose message holds its marker. One
    unordered insert for a whole chunk.

    With `resumed` (a holder taking over a crashed one's messages), a marker that already
    names the same message is that message's too: the crashed holder inserted it for the same
    message, which goes now under the same idempotency key, footer included."""
    wanted = list(keys)
    if not wanted:
        return set()
    documents = [{"_id": marker_id(tenant.organization_id, c), "key": keys[c]} for c in wanted]
    try:
        await tenant.raw_insert_many(FirstMessage, documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        indexes = {int(e["index"]) for e in errors}
        taken = [c for i, c in enumerate(wanted) if i in indexes]
        mine = {c for i, c in enumerate(wanted) if i not in indexes}
        if resumed:
            mine |= await _named(tenant, {c: keys[c] for c in taken})
        return mine
    return set(wanted)


async def _named(tenant: Tenant, keys: Mapping[ObjectId, str]) -> set[ObjectId]:
    """The contacts whose existing marker names the message in `keys`."""
    ids = {marker_id(tenant.organization_id, c): c for c in keys}
    rows = await tenant.raw_find_in(FirstMessage, "_id", list(ids), {"key": 1})
    return {ids[row["_id"]] for row in rows if row.get("key") == keys[ids[row["_id"]]]}


async def claim_one(
    tenant: Tenant, contact_id: ObjectId, key: str, *, resumed: bool = False
) -> bool:
    """Whether this message (`key`) holds the contact's marker, inserting it if free."""
    return bool(await claim_first(tenant, {contact_id: key}, resumed=resumed))


async def give_back(tenant: Tenant, keys: Mapping[ObjectId, str]) -> None:
    """Deletes the markers of messages that definitely did not go (contact → the message's
    key), so the contact's next message carries the footer. A marker is deleted only while it
    names that message: never one another message holds."""
    gate = asyncio.Semaphore(GIVE_BACK_CONCURRENCY)

    async def one(contact_id: ObjectId, key: str) -> None:
        async with gate:
            marker = marker_id(tenant.organization_id, contact_id)
            await tenant.delete_many(FirstMessage, {"_id": marker, "key": key})

    await asyncio.gather(*(one(c, k) for c, k in keys.items()))


async def had_first(tenant: Tenant, contact_id: ObjectId) -> bool:
    """Whether the contact already got a message from the organization (one read by id)."""
    rows = await tenant.raw_find_in(
        FirstMessage, "_id", [marker_id(tenant.organization_id, contact_id)], {"_id": 1}
    )
    return bool(rows)
