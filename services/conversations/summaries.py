"""Per-contact conversation summaries: what the inbox lists, kept by the writers of a thread.

Building a conversation from its thread costs four reads per contact (messages, recipients,
steps, events), so an inbox page built that way grew with the page times the threads. A
summary holds what the inbox shows (the last message, the unread count, the owner before the
contact's own, the campaigns) and its place in the order (`n`, the contact's newest activity
entry, and `bucket = n // SUMMARY_BUCKET`), so a page reads a bucket or two by equality and
the page's contacts.

A summary is derived, never edited: `summarize` computes it from the thread's records, and
every writer that changes them (an inbound message, a rep's message and its delivery, a read
mark, an assignment) calls `refresh` afterwards. Two writers may compute at once from
different moments, and FerretDB writes the whole document back without re-checking a
condition, so a slow writer could put an older state over a newer one. `refresh` therefore
reads the records again after writing and writes again until what it wrote is what the
records say: whichever write lands last, its writer then checks it against records that
include every change made before it, and every change made after it has a writer that
refreshes after it too. Within a process, one contact's refreshes take turns (`_Turns`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError, OperationFailure

from models import Activity, Contact, ConversationEvent, ConversationSummary, Message
from models.conversation import SUMMARY_BUCKET, Direction
from services.contacts import edits as contact_edits
from services.contacts.records import REF_PROJECTION, ContactRef
from services.conversations import activity
from services.conversations.threads import (
    ThreadMessage,
    contact_values,
    merge_thread,
    thread_records,
)
from services.sending import observers
from services.storage import migrations, tallies
from services.storage.tenancy import Tenant

READ = "read"
ASSIGN = "assign"
MAX_ROUNDS = 8
"""Writes one refresh makes at most while the records keep changing under it; each change's
own writer refreshes after it anyway."""
REFRESH_CONCURRENCY = 8
"""Contacts refreshed at once by a background pass (the migration, a batch's sends)."""


@dataclass(frozen=True)
class Summary:
    """A summary as computed (the stored document's fields, `_id` aside)."""

    contactId: ObjectId
    n: int
    bucket: int
    lastMessage: ThreadMessage
    lastStored: ObjectId
    unreadCount: int
    assigned: ObjectId | None
    campaignIds: tuple[ObjectId, ...]

    def document(self) -> dict[str, Any]:
        """The stored fields (every one, so a write never keeps a field of an older state)."""
        return {
            "contactId": self.contactId,
            "n": self.n,
            "bucket": self.bucket,
            "lastMessage": dataclasses.asdict(self.lastMessage),
            "lastStored": self.lastStored,
            "unreadCount": self.unreadCount,
            "unread": self.unreadCount > 0,
            "assigned": self.assigned,
            "campaignIds": list(self.campaignIds),
        }

    @classmethod
    def of_document(cls, row: dict[str, Any]) -> Summary:
        last = dict(row["lastMessage"])
        last["direction"] = Direction(last["direction"])
        last["media"] = tuple(last.get("media") or ())
        return cls(
            contactId=row["contactId"],
            n=int(row["n"]),
            bucket=int(row["bucket"]),
            lastMessage=ThreadMessage(**last),
            lastStored=row["lastStored"],
            unreadCount=int(row["unreadCount"]),
            assigned=row.get("assigned"),
            campaignIds=tuple(row.get("campaignIds") or ()),
        )


def summary_id(tenant: Tenant, contact_id: ObjectId) -> str:
    return f"{tenant.organization_id}:{contact_id}"


def summarize(
    contact_id: ObjectId,
    messages: Sequence[ThreadMessage],
    events: Sequence[dict[str, Any]],
    entries: Sequence[int],
) -> Summary | None:
    """The summary of a thread (oldest first), the reps' events and the contact's activity
    numbers; None without a stored message (campaign sends alone start no conversation)."""
    stored = [m for m in messages if m.stored]
    if not stored:
        return None
    ordered = sorted(events, key=lambda e: (e["at"], str(e["_id"])))
    read_at = max((e["at"] for e in ordered if e["kind"] == READ), default=None)
    unread = sum(
        1
        for m in stored
        if m.direction is Direction.INBOUND and (read_at is None or m.createdAt > read_at)
    )
    n = max(entries, default=-1)
    return Summary(
        contactId=contact_id,
        n=n,
        bucket=n // SUMMARY_BUCKET if n >= 0 else -1,
        lastMessage=messages[-1],
        lastStored=stored[-1].id,
        unreadCount=unread,
        assigned=_assigned([e for e in ordered if e["kind"] == ASSIGN], messages),
        campaignIds=tuple(
            sorted({m.campaignId for m in messages if m.campaignId is not None}, key=str)
        ),
    )


def _assigned(
    assignments: Sequence[dict[str, Any]], messages: Sequence[ThreadMessage]
) -> ObjectId | None:
    """An explicit assignment, else the rep of the campaign the latest reply answered (the
    contact's own owner is read with the contact, so editing it needs no refresh)."""
    if assignments and assignments[-1].get("userId") is not None:
        chosen: ObjectId = assignments[-1]["userId"]
        return chosen
    replies = [m for m in messages if m.direction is Direction.INBOUND and m.campaignId]
    if replies:
        campaign = replies[-1].campaignId
        for m in messages:
            if not m.stored and m.campaignId == campaign and m.assignedTo is not None:
                return m.assignedTo
    return None


@dataclass
class Reads:
    """What one refresh reads once for all its computations: the campaigns' texts and the
    contact's template values (a contact edited meanwhile is rendered as it was; its own
    edits never refresh a summary anyway)."""

    templates: dict[ObjectId, list[str]] = field(default_factory=dict)
    values: dict[str, str | None] | None = None


async def compute(
    tenant: Tenant, contact_id: ObjectId, reads: Reads | None = None
) -> Summary | None:
    """The contact's summary from its records as they are now (the contact must be the
    organization's): its thread, events and activity entries (and the contact, the first
    time), read at once."""
    reads = reads if reads is not None else Reads()
    (stored, sends), events, entries, contacts = await asyncio.gather(
        thread_records(tenant, contact_id),
        tenant.raw_find(ConversationEvent, {"contactId": contact_id}).to_list(),
        tenant.raw_find(Activity, {"contactId": contact_id}, {"n": 1}).to_list(),
        _contact_rows(tenant, contact_id, reads),
    )
    if not stored:
        return None
    if reads.values is None:
        reads.values = contact_values(ContactRef.from_document(contacts[0])) if contacts else {}
    messages = await merge_thread(
        tenant, contact_id, stored, sends, values=reads.values, templates=reads.templates
    )
    return summarize(contact_id, messages, events, [int(e["n"]) for e in entries])


async def _contact_rows(tenant: Tenant, contact_id: ObjectId, reads: Reads) -> list[dict[str, Any]]:
    if reads.values is not None:
        return []
    return await tenant.raw_find(Contact, {"_id": contact_id}, REF_PROJECTION).to_list()


async def write(tenant: Tenant, summary: Summary) -> None:
    """Writes every field of the summary (creating it when new: the one write that creates it
    counts the organization's conversations)."""
    key = summary_id(tenant, summary.contactId)
    fields = {**summary.document(), "updatedAt": Tenant.now()}
    try:
        matched = await tenant.update_one(
            ConversationSummary, {"_id": key}, {"$set": fields}, upsert=True
        )
        if not matched:  # it did not exist: this upsert created it
            await tallies.add(tenant, tallies.CONVERSATIONS, 1)
    except (DuplicateKeyError, OperationFailure):
        # Two first writes raced to create it (FerretDB reports an upsert's duplicate as
        # code 1): it exists now, so this one is a plain update.
        await tenant.update_one(ConversationSummary, {"_id": key}, {"$set": fields})


@dataclass
class _Turns:
    """One contact's refreshes in this process, taken one at a time: a refresh asked for while
    another runs waits, and is answered by the next one to start (which reads the records after
    every change whose writer asked by then), so a burst of changes to one thread costs two
    refreshes here, not one each racing the others round after round."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    asked: int = 0
    done: int = 0
    """The `asked` count when the last finished refresh started."""
    result: Summary | None = None
    users: int = 0


_TURNS: dict[str, _Turns] = {}


async def refresh(
    tenant: Tenant,
    contact_id: ObjectId,
    *,
    computed: Summary | None = None,
    reads: Reads | None = None,
) -> Summary | None:
    """Brings the contact's summary to what its records say, after a change to them; returns
    it (None: no conversation). `computed` is a summary this writer computed earlier (its
    write is then checked like any other); `reads` what the caller read already of what
    `Reads` keeps."""
    key = summary_id(tenant, contact_id)
    turns = _TURNS.setdefault(key, _Turns())
    turns.asked += 1
    mine = turns.asked
    turns.users += 1
    try:
        async with turns.lock:
            if turns.done >= mine:  # one that started after this change has finished
                return turns.result
            started = turns.asked
            turns.result = await _refresh(tenant, contact_id, computed, reads)
            turns.done = started
            return turns.result
    finally:
        turns.users -= 1
        if not turns.users:
            del _TURNS[key]


async def _refresh(
    tenant: Tenant, contact_id: ObjectId, computed: Summary | None, reads: Reads | None
) -> Summary | None:
    """Writes the summary until what it wrote is what the records say (the module's note)."""
    reads = reads if reads is not None else Reads()
    state = computed if computed is not None else await compute(tenant, contact_id, reads)
    for _ in range(MAX_ROUNDS):
        if state is None:
            return None
        await write(tenant, state)
        again = await compute(tenant, contact_id, reads)
        if again == state:
            return state
        state = again
    return state


async def stored(tenant: Tenant, contact_id: ObjectId) -> Summary | None:
    """The stored summary of a contact, if any."""
    rows = await tenant.raw_find(
        ConversationSummary, {"_id": summary_id(tenant, contact_id)}
    ).to_list()
    return Summary.of_document(rows[0]) if rows else None


async def of_buckets(tenant: Tenant, buckets: Sequence[int]) -> list[Summary]:
    """The summaries of some buckets (read at once, each by equality), newest first."""
    found = await asyncio.gather(
        *(tenant.raw_find(ConversationSummary, {"bucket": b}).to_list() for b in buckets if b >= 0)
    )
    rows = [Summary.of_document(row) for part in found for row in part]
    return sorted(rows, key=lambda s: -s.n)


@observers.on_threads_changed
async def campaign_sends_changed(tenant: Tenant, contact_ids: Sequence[ObjectId]) -> None:
    """Refreshes the summaries of those contacts that are in a conversation, after campaign
    sends or their delivery reports were written (campaign sends alone start none).

    A contact is in one when it has a stored message. That is read after the send was
    written, so a first reply stored at the same moment is either seen here or its own
    refresh, which reads the thread after storing the reply, sees the send. An organization
    with no activity at all costs one look at its log."""
    known = activity.known_last(tenant)
    if (known is None or known < 0) and await activity.last_entry(tenant) < 0:
        return
    rows = await tenant.raw_find_in(Message, "contactId", contact_ids, {"contactId": 1})
    talking = sorted({row["contactId"] for row in rows}, key=str)
    for start in range(0, len(talking), REFRESH_CONCURRENCY):
        chunk = talking[start : start + REFRESH_CONCURRENCY]
        await asyncio.gather(*(refresh(tenant, contact_id) for contact_id in chunk))


@contact_edits.on_contact_deleted
async def contact_deleted(tenant: Tenant, contact_id: ObjectId) -> None:
    """Drops a deleted contact's summary, and its place in the organization's count: the inbox
    no longer lists the conversation, so it is not counted either."""
    removed = await tenant.delete_many(ConversationSummary, {"_id": summary_id(tenant, contact_id)})
    if removed:
        await tallies.add(tenant, tallies.CONVERSATIONS, -removed)


async def build_missing() -> None:
    """Summaries for the threads stored before summaries existed (until then the inbox does
    not list them). Each is `refresh`, which is safe to repeat and to race with a live
    writer; a repeat skips the contacts that have one (only a writer of this version, which
    refreshes after every change, can have written it)."""
    for organization_id in await migrations.organizations():
        tenant = Tenant.for_organization(organization_id)
        threads = {row["contactId"] async for row in tenant.raw_find(Message, {}, {"contactId": 1})}
        if not threads:
            continue
        have = {
            row["contactId"]
            async for row in tenant.raw_find(ConversationSummary, {}, {"contactId": 1})
        }
        missing = sorted(threads - have, key=str)
        for start in range(0, len(missing), REFRESH_CONCURRENCY):
            chunk = missing[start : start + REFRESH_CONCURRENCY]
            await asyncio.gather(*(refresh(tenant, contact_id) for contact_id in chunk))
        await tallies.recount(tenant, tallies.CONVERSATIONS)


MIGRATION = migrations.register(
    migrations.Migration(5, "conversation summaries for threads stored before them", build_missing)
)
