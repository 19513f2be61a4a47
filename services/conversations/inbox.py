"""The reps' inbox: one conversation per contact with stored messages, newest activity first,
with its owner and unread count; a rep reads, assigns and marks conversations read.

A page reads conversation summaries (`services.conversations.summaries`) by bucket, from the
bucket of the newest activity entry down, and the page's contacts by id: its cost follows the
page, not the organization. A summary sits in the bucket of its contact's newest entry, so a
conversation appears once, at its latest activity. Reads and assignments are appended events
(the latest wins), so two reps acting at once never write one document; the summary is
refreshed after each.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from beanie import PydanticObjectId
from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, NotFound
from models import Contact, ConversationEvent, User
from models.conversation import SUMMARY_BUCKET
from services.conversations import activity, summaries
from services.conversations.summaries import ASSIGN, READ, Summary
from services.conversations.threads import ThreadMessage
from services.inputs import ConversationFilter
from services.storage import tallies
from services.storage.pages import Cursors, LazyCursors, Page, page_size
from services.storage.tenancy import Tenant

MAX_BUCKETS_AT_ONCE = 8
MAX_BUCKETS_PER_READ = 40
"""Summary buckets one inbox read walks at most (2,000 activity numbers) before answering
with a cursor to continue: a filter that matches little never turns one request into a scan."""


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
    found = await summaries.stored(tenant, contact.id)
    if found is None:  # stored before summaries, or its writer died before refreshing
        found = await summaries.refresh(tenant, contact.id)
    return _conversation(found, contact) if found is not None else None


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
    """Conversations by newest activity, from the entry below `before` (the cursor).

    Summary-level conditions (unread, campaign, an explicit or campaign owner) are checked on
    the summaries read; the contacts are read only for the summaries that pass, as many as
    the page still needs (a search, or an owner that falls back to the contact's, is checked
    on them)."""
    hint = activity.known_last(tenant)
    guess = hint if before is None or hint is None else min(before - 1, hint)
    planned = _buckets(guess, guess // SUMMARY_BUCKET, first) if guess is not None else []
    unfiltered = where == InboxFilter()

    async def read_ahead() -> tuple[list[Summary], dict[ObjectId, Contact | None]]:
        read = await summaries.of_buckets(tenant, planned)
        if not unfiltered or guess is None:
            return read, {}
        return read, await _contacts(
            tenant, [s.contactId for s in read if s.n <= guess][: first + 1]
        )

    # Read the buckets the process's last known entry points at, and an unfiltered page's
    # contacts, while the end of the log is checked: when it is still the end (usually), the
    # page costs the floor's two waits (a bucket, then the contacts).
    last, (early, prefetched) = await asyncio.gather(activity.last_entry(tenant), read_ahead())
    start = last if before is None else min(before - 1, last)
    items: list[Conversation] = []
    bucket = start // SUMMARY_BUCKET if start >= 0 else -1
    walked = 0
    width = 0
    while bucket >= 0 and len(items) <= first:
        if walked >= MAX_BUCKETS_PER_READ:
            return InboxPage(items, True, bucket * SUMMARY_BUCKET + SUMMARY_BUCKET)
        if width:
            # The buckets read so far did not fill the page (conversations that moved up
            # leave older buckets thin): read twice as many at once each time, up to 8.
            width = min(width * 2, MAX_BUCKETS_AT_ONCE, MAX_BUCKETS_PER_READ - walked)
            buckets = [b for b in range(bucket, bucket - width, -1) if b >= 0]
        else:
            buckets = _buckets(start, bucket, first - len(items))
            width = len(buckets)
        walked += len(buckets)
        if planned and buckets == planned:
            read, planned = early, []
        else:
            read = await summaries.of_buckets(tenant, buckets)
        found = [s for s in read if s.n <= start]
        candidates = [s for s in found if _summary_matches(s, where)]
        while candidates and len(items) <= first:
            need = first + 1 - len(items)
            chunk, candidates = candidates[:need], candidates[need:]
            missing = [s.contactId for s in chunk if s.contactId not in prefetched]
            prefetched.update(await _contacts(tenant, missing) if missing else {})
            for summary in chunk:
                contact = prefetched[summary.contactId]
                if contact is None:
                    continue  # deleted since
                found_one = _conversation(summary, contact)
                if _matches(found_one, where):
                    items.append(found_one)
        bucket -= len(buckets)
    return InboxPage(items[:first], len(items) > first, None)


async def _contacts(tenant: Tenant, ids: list[ObjectId]) -> dict[ObjectId, Contact | None]:
    """The contacts of `ids` in one read; None for one deleted since."""
    found = {
        row["_id"]: Contact.model_validate(row)
        for row in await tenant.raw_find_in(Contact, "_id", ids)
    }
    return {i: found.get(i) for i in ids}


def _buckets(start: int, bucket: int, wanted: int) -> list[int]:
    """The buckets to read next: one when its numbers up to `start` could fill what the page
    still wants, else two at once."""
    low = bucket * SUMMARY_BUCKET
    room = min(start, low + SUMMARY_BUCKET - 1) - low + 1
    return [bucket] if room > wanted else [bucket, bucket - 1]


async def count_conversations(tenant: Tenant) -> int:
    """How many contacts have a conversation (filters aside): a running total of their
    summaries, kept by the write that creates each."""
    return await tallies.total(tenant, tallies.CONVERSATIONS)


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
    found = await summaries.refresh(tenant, contact.id)
    return _conversation(found, contact) if found is not None else None


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
    found = await summaries.refresh(tenant, contact.id)
    return _conversation(found, contact) if found is not None else None


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


def _conversation(summary: Summary, contact: Contact) -> Conversation:
    return Conversation(
        contact=contact,
        lastMessage=summary.lastMessage,
        lastStored=summary.lastStored,
        unreadCount=summary.unreadCount,
        owner=summary.assigned or contact.assignedTo,
        position=summary.n,
        campaignIds=frozenset(summary.campaignIds),
    )


def _summary_matches(summary: Summary, where: InboxFilter) -> bool:
    """The conditions a summary decides alone (the owner only when it has one of its own)."""
    if where.unread is not None and (summary.unreadCount > 0) != where.unread:
        return False
    if where.campaignId is not None and where.campaignId not in summary.campaignIds:
        return False
    return not (
        where.assignedTo is not None
        and summary.assigned is not None
        and summary.assigned != where.assignedTo
    )


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
