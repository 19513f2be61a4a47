"""A contact's thread: the messages stored for it, and its campaigns' sends read from their
recipient records at read time (the dispatcher's records stay the one source of truth).

A thread is read whole by two equality filters (`{organizationId, contactId}` on messages and
on recipients) and merged in memory: one contact's thread is small, and neither server then
has to sort anything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from core.config import Settings
from models import Campaign, Contact, Message, Recipient, StepSend
from models.conversation import Direction, MessageStatus
from models.recipient import RecipientStatus
from services.campaigns.templates import TemplateError, parse_template
from services.contacts.records import REF_PROJECTION, ContactRef
from services.sending.contact_sends import campaign_texts
from services.storage.pages import Cursors, LazyCursors, Page, page_size
from services.storage.tenancy import Tenant

SENT_STATES = frozenset(
    {RecipientStatus.SENT, RecipientStatus.FAILED, RecipientStatus.UNKNOWN, RecipientStatus.SENDING}
)
"""Recipient states that are a message in the thread (pending and skipped ones never left)."""


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a thread, whichever record it comes from."""

    id: ObjectId
    contactId: ObjectId
    direction: Direction
    body: str
    media: tuple[str, ...]
    fromNumber: str | None
    toNumber: str | None
    status: str
    errorCode: str | None
    campaignId: ObjectId | None
    createdAt: datetime
    nextSendAt: datetime | None = None
    stored: bool = True
    """False for a campaign send read from its recipient record."""
    assignedTo: ObjectId | None = None
    """A campaign send's rep (the recipient's `assignedTo`)."""

    @property
    def key(self) -> tuple[datetime, ObjectId]:
        return (self.createdAt, self.id)

    @classmethod
    def of_message(cls, row: dict[str, Any]) -> ThreadMessage:
        return cls(
            id=row["_id"],
            contactId=row["contactId"],
            direction=Direction(row["direction"]),
            body=row.get("body") or "",
            media=tuple(row.get("media") or ()),
            fromNumber=row.get("fromNumber"),
            toNumber=row.get("toNumber"),
            status=row.get("status") or MessageStatus.RECEIVED.value,
            errorCode=row.get("errorCode"),
            campaignId=row.get("campaignId"),
            createdAt=row["createdAt"],
            nextSendAt=row.get("nextSendAt"),
        )


async def thread(
    tenant: Tenant,
    contact_id: ObjectId,
    *,
    values: dict[str, str | None] | None = None,
    templates: dict[ObjectId, list[str]] | None = None,
) -> list[ThreadMessage]:
    """The contact's whole thread, oldest first (the contact must be the organization's).

    A caller that already holds the contact passes its template `values` (`contact_values`),
    and one reading many threads shares a `templates` dict: campaigns' messages are then read
    once per call, not once per thread."""
    stored, sends = await thread_records(tenant, contact_id)
    return await merge_thread(tenant, contact_id, stored, sends, values=values, templates=templates)


async def thread_records(
    tenant: Tenant, contact_id: ObjectId
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A thread's sources, read at once: its stored messages, and its campaign sends (recipient
    records for first messages, step records for follow-ups that went out)."""
    stored, sends, steps = await asyncio.gather(
        tenant.raw_find(Message, {"contactId": contact_id}).to_list(),
        tenant.raw_find(Recipient, {"contactId": contact_id}).to_list(),
        tenant.raw_find(StepSend, {"contactId": contact_id}).to_list(),
    )
    return stored, sends + [row for row in steps if row.get("messageId")]


async def merge_thread(
    tenant: Tenant,
    contact_id: ObjectId,
    stored: list[dict[str, Any]],
    sends: list[dict[str, Any]],
    *,
    values: dict[str, str | None] | None = None,
    templates: dict[ObjectId, list[str]] | None = None,
) -> list[ThreadMessage]:
    """The thread from its records (`thread_records`), oldest first."""
    sends = [row for row in sends if row.get("status") in SENT_STATES]
    items = [ThreadMessage.of_message(row) for row in stored]
    if sends:
        items.extend(
            await _campaign_sends(
                tenant, contact_id, sends, values, {} if templates is None else templates
            )
        )
    items.sort(key=lambda item: item.key)
    return items


async def thread_page(
    tenant: Tenant,
    contact_id: ObjectId,
    settings: Settings,
    *,
    first: int | None,
    after: str | None,
    size_at: tuple[str, ...] = ("first",),
) -> Page[ThreadMessage]:
    """A page of the thread, newest first; `after` (a cursor) continues with older messages,
    as a chat loads history while the rep scrolls up."""
    size = page_size(first, size_at)
    cursors = Cursors(settings, "messages:createdAt:desc")
    items = list(reversed(await thread(tenant, contact_id)))
    if after is not None:
        value, last_id = cursors.decode(after)
        items = [m for m in items if (m.createdAt, m.id) < (value, last_id)]
    chosen = items[:size]
    return Page(
        chosen, LazyCursors(cursors, chosen, lambda m: (m.createdAt, m.id)), len(items) > size
    )


async def _campaign_sends(
    tenant: Tenant,
    contact_id: ObjectId,
    sends: list[dict[str, Any]],
    values: dict[str, str | None] | None,
    templates: dict[ObjectId, list[str]],
) -> list[ThreadMessage]:
    """Campaign messages as the contact got them (first messages from recipient records,
    follow-ups from their step records): each template rendered for it. `templates` holds each
    campaign's step texts (the message, then its follow-ups), shared by a caller reading many
    threads."""
    missing = list({row["campaignId"] for row in sends if row["campaignId"] not in templates})
    reads = [tenant.raw_find_in(Campaign, "_id", missing, {"message": 1, "followUps": 1})]
    if values is None:
        reads.append(tenant.raw_find(Contact, {"_id": contact_id}, REF_PROJECTION).to_list())
    found = await asyncio.gather(*reads)
    templates.update({row["_id"]: campaign_texts(row) for row in found[0]})
    if values is None:
        values = contact_values(ContactRef.from_document(found[1][0])) if found[1] else {}
    phone = values.get("phoneNumber")
    items = []
    for row in sends:
        delivery = row.get("deliveryStatus")
        status = delivery or row.get("status") or RecipientStatus.SENT.value
        items.append(
            ThreadMessage(
                id=row.get("messageId") or row["_id"],
                contactId=contact_id,
                direction=Direction.OUTBOUND,
                body=_render(
                    _step_text(templates, row["campaignId"], row.get("step") or 0), values
                ),
                media=(),
                fromNumber=None,
                toNumber=phone,
                status=str(status),
                errorCode=row.get("deliveryErrorCode") or row.get("errorCode"),
                campaignId=row["campaignId"],
                createdAt=row.get("sentAt") or row["updatedAt"],
                stored=False,
                assignedTo=row.get("assignedTo"),
            )
        )
    return items


def _step_text(templates: dict[ObjectId, list[str]], campaign_id: ObjectId, step: int) -> str:
    texts = templates.get(campaign_id) or []
    return texts[step] if step < len(texts) else ""


def contact_values(contact: ContactRef | Contact) -> dict[str, str | None]:
    """What a campaign's template may read of a contact."""
    return {
        "firstName": contact.firstName,
        "lastName": contact.lastName,
        "phoneNumber": contact.phoneNumber,
        "email": contact.email,
    }


def _render(text: str, values: dict[str, str | None]) -> str:
    try:
        return parse_template(text).render(values).text or text
    except TemplateError:
        return text
