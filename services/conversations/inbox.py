"""The reps' inbox: one conversation per contact with stored messages, newest activity first,
with its owner and unread count; a rep reads, assigns and marks conversations read.

Order comes from the append-only activity log (`services.conversations.activity`), read page
by page from its end: a contact's entry counts only where it is the contact's newest message,
so a conversation appears once, at its latest activity, on any page. Reads and assignments are
appended events (the latest wins), so two reps acting at once never write one document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, NotFound
from models import Activity, Contact, ConversationEvent, User
from models.conversation import ACTIVITY_PAGE, Direction
from services.conversations import activity
from services.conversations.threads import (
    ThreadMessage,
    contact_values,
    merge_thread,
    thread,
    thread_records,
)
from services.inputs import ConversationFilter
from services.storage.pages import Cursors, LazyCursors, Page, page_size
from services.storage.tenancy import Tenant

READ = "read"
ASSIGN = "assign"
MAX_PAGES_PER_READ = 40
"""Activity pages one inbox read walks at most (2,000 entries) before answering with a
cursor to continue: a filter that matches little never turns one request into a scan."""


@dataclass
class Conversation:
    """A contact's conversation as the inbox shows it."""

    contact: Contact
    lastMessage: ThreadMessage
    lastStored: ObjectId
    """The newest stored message (what the activity log's entry names)."""
    unreadCount: int
    owner: ObjectId | None
    position: int
    """Its entry in the activity log (the cursor)."""
    campaignIds: frozenset[ObjectId]


@dataclass
class InboxFilter:
    assignedTo: ObjectId | None = None
    unread: bool | None = None
    campaignId: ObjectId | None = None
    search: str | None = None


@dataclass
class InboxPage:
    items: list[Conversation]
    has_next: bool
    resume: int | None
    """The activity position to continue below when the page ended early (read limit)."""


async def conversation(tenant: Tenant, contact_id: str) -> Conversation | None:
    """The contact's conversation; None while it has no messages. `NotFound` for a contact
    that is not the organization's."""
    contact = await _contact(tenant, contact_id)
    assert contact.id is not None
    return await _build(tenant, contact, position=-1)


def filter_of(command: ConversationFilter | None, at: tuple[str, ...] = ()) -> InboxFilter:
    """The inbox's filter for a `ConversationFilter` of either API; `at` prefixes error paths."""
    if command is None:
        return InboxFilter()
    return InboxFilter(
        assignedTo=_filter_id(command.assignedTo, (*at, "assignedTo")),
        unread=command.unread,
        campaignId=_filter_id(command.campaignId, (*at, "campaignId")),
        search=command.search,
    )


def _filter_id(raw: str | None, path: tuple[str, ...]) -> ObjectId | None:
    if raw is None:
        return None
    if not ObjectId.is_valid(raw):
        message = f"'{raw}' is not an id"
        raise InvalidInput(message, [FieldError(path, "INVALID_ID", message)])
    return ObjectId(raw)


async def conversations_page(
    tenant: Tenant,
    settings: Settings,
    *,
    first: int | None,
    after: str | None,
    where: InboxFilter,
    size_at: tuple[str, ...] = ("first",),
) -> Page[Conversation]:
    """A page of the inbox with its signed cursors: the one paging rule of both APIs."""
    size = page_size(first, size_at)
    cursors = Cursors(settings, "conversations:activity:desc")
    before = int(cursors.decode(after)[0]) if after is not None else None
    found = await list_conversations(tenant, first=size, before=before, where=where)
    return Page(
        found.items,
        LazyCursors(cursors, found.items, lambda c: (c.position, c.lastStored)),
        found.has_next,
        resume=cursors.encode(found.resume, ObjectId()) if found.resume is not None else None,
    )


async def list_conversations(
    tenant: Tenant, *, first: int, before: int | None, where: InboxFilter
) -> InboxPage:
    """Conversations by newest activity, from the entry below `before` (the cursor)."""
    last = await activity.last_entry(tenant)
    start = last if before is None else min(before - 1, last)
    seen: set[ObjectId] = set()
    templates: dict[ObjectId, list[str]] = {}  # campaigns' messages, read once for the whole page
    items: list[Conversation] = []
    page = start // ACTIVITY_PAGE if start >= 0 else -1
    walked = 0
    while page >= 0 and len(items) <= first:
        if walked == MAX_PAGES_PER_READ:
            return InboxPage(items, True, page * ACTIVITY_PAGE + ACTIVITY_PAGE)
        walked += 1
        entries = [e for e in await activity.entries_of_page(tenant, page) if e["n"] <= start]
        fresh = []
        for entry in entries:
            if entry["contactId"] not in seen:
                seen.add(entry["contactId"])
                fresh.append(entry)
        # Built a few at a time, as many as the page still needs: the newest entries
        # usually fill it, and the rest of the activity page is never read.
        while fresh and len(items) <= first:
            chunk, fresh = fresh[: first + 1 - len(items)], fresh[first + 1 - len(items) :]
            built = await asyncio.gather(*(_entry(tenant, entry, templates) for entry in chunk))
            items.extend(f for f in built if f is not None and _matches(f, where))
        page -= 1
    return InboxPage(items[:first], len(items) > first, None)


async def count_conversations(tenant: Tenant) -> int:
    """How many contacts have a conversation (filters aside): the distinct contacts of the
    activity log, read once, only when a caller asks for the total."""
    rows = tenant.raw_find(Activity, {}, {"contactId": 1})
    return len({row["contactId"] async for row in rows})


async def mark_read(tenant: Tenant, contact_id: str) -> Conversation | None:
    """Marks everything received so far as read."""
    contact = await _contact(tenant, contact_id)
    assert contact.id is not None
    await tenant.insert(
        ConversationEvent(
            organizationId=tenant.organization_id,
            contactId=contact.id,
            kind=READ,
            at=Tenant.now(),
        )
    )
    return await _build(tenant, contact, position=-1)


async def assign(tenant: Tenant, contact_id: str, user_id: str | None) -> Conversation | None:
    """Gives the conversation to a rep of the organization (None: back to the default)."""
    contact = await _contact(tenant, contact_id)
    assert contact.id is not None
    owner = await _user(tenant, user_id)
    await tenant.insert(
        ConversationEvent(
            organizationId=tenant.organization_id,
            contactId=contact.id,
            kind=ASSIGN,
            userId=owner,
            at=Tenant.now(),
        )
    )
    return await _build(tenant, contact, position=-1)


async def _contact(tenant: Tenant, contact_id: str) -> Contact:
    contact = await tenant.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact", ("contactId",))
    return contact


async def _user(tenant: Tenant, raw: str | None) -> PydanticObjectId | None:
    if raw is None:
        return None
    if not ObjectId.is_valid(raw):
        message = f"'{raw}' is not an id"
        raise InvalidInput(message, [FieldError(("userId",), "INVALID_ID", message)])
    user_id = PydanticObjectId(raw)
    if user_id != tenant.principal.user_id and not await tenant.count(User, {"userId": user_id}):
        message = f"No user {raw} in your organization"
        raise InvalidInput(message, [FieldError(("userId",), "UNKNOWN_USER", message)])
    return user_id


async def _entry(
    tenant: Tenant, entry: dict[str, Any], templates: dict[ObjectId, list[str]]
) -> Conversation | None:
    """The conversation of an activity entry, if the entry is still its newest message. The
    contact, its thread's records and its events are read at once (one round trip's wait)."""
    contact_id = entry["contactId"]
    contact, (stored, sends), events = await asyncio.gather(
        tenant.get(Contact, contact_id),
        thread_records(tenant, contact_id),
        _events(tenant, contact_id),
    )
    if contact is None:
        return None  # deleted since
    messages = await merge_thread(
        tenant, contact_id, stored, sends, values=contact_values(contact), templates=templates
    )
    found = _assemble(contact, messages, events, position=int(entry["n"]))
    if found is None or found.lastStored != entry["messageId"]:
        return None
    return found


async def _build(tenant: Tenant, contact: Contact, *, position: int) -> Conversation | None:
    """The conversation of a contact with stored messages (None without: campaign sends alone
    do not start one)."""
    assert contact.id is not None
    messages, events = await asyncio.gather(
        thread(tenant, contact.id, values=contact_values(contact)), _events(tenant, contact.id)
    )
    return _assemble(contact, messages, events, position=position)


async def _events(tenant: Tenant, contact_id: ObjectId) -> list[dict[str, Any]]:
    return await tenant.raw_find(ConversationEvent, {"contactId": contact_id}).to_list()


def _assemble(
    contact: Contact,
    messages: list[ThreadMessage],
    events: list[dict[str, Any]],
    *,
    position: int,
) -> Conversation | None:
    stored = [m for m in messages if m.stored]
    if not stored:
        return None
    events.sort(key=lambda e: (e["at"], str(e["_id"])))
    read_at = max((e["at"] for e in events if e["kind"] == READ), default=None)
    unread = sum(
        1
        for m in stored
        if m.direction is Direction.INBOUND and (read_at is None or m.createdAt > read_at)
    )
    assignments = [e for e in events if e["kind"] == ASSIGN]
    return Conversation(
        contact=contact,
        lastMessage=messages[-1],
        lastStored=stored[-1].id,
        unreadCount=unread,
        owner=_owner(assignments, messages, contact),
        position=position,
        campaignIds=frozenset(m.campaignId for m in messages if m.campaignId is not None),
    )


def _owner(
    assignments: Sequence[dict[str, Any]], messages: Sequence[ThreadMessage], contact: Contact
) -> ObjectId | None:
    """An explicit assignment, else the rep of the campaign the latest reply answered, else
    the contact's owner."""
    if assignments and assignments[-1].get("userId") is not None:
        chosen: ObjectId = assignments[-1]["userId"]
        return chosen
    replies = [m for m in messages if m.direction is Direction.INBOUND and m.campaignId]
    if replies:
        campaign = replies[-1].campaignId
        for m in messages:
            if not m.stored and m.campaignId == campaign and m.assignedTo is not None:
                return m.assignedTo
    return contact.assignedTo


def _matches(found: Conversation, where: InboxFilter) -> bool:
    if where.assignedTo is not None and found.owner != where.assignedTo:
        return False
    if where.unread is not None and (found.unreadCount > 0) != where.unread:
        return False
    if where.campaignId is not None and where.campaignId not in found.campaignIds:
        return False
    if where.search:
        needle = where.search.strip().lower()
        contact = found.contact
        haystack = f"{contact.firstName} {contact.lastName} {contact.phoneNumber}".lower()
        if needle not in haystack:
            return False
    return True
