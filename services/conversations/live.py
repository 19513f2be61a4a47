"""New inbound messages, pushed live: one watcher per process, whatever the subscribers.

The database is the only bus: a webhook answered by any process appends to its
organization's activity log, and each process's watcher reads the log of the organizations
its subscribers listen to, every `POLL_S`, and hands each new inbound message to every
matching subscriber. A quiet organization costs one `_id` lookup per pass; a subscriber costs
nothing to the database, so an inbox kept open all day by 200 reps reads what one would. The
message's contact is read once too and handed along with it: a subscriber's selection of
`contact` is then answered without a read per subscriber (200 of them per message otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bson import ObjectId

from models import Contact, Message
from models.conversation import ACTIVITY_PAGE, Direction
from services.conversations import activity, summaries
from services.conversations.threads import ThreadMessage
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

POLL_S = 0.5
"""How often the watcher reads: a message reaches subscribers within about this long."""
QUEUE_SIZE = 1000
"""Messages kept for a subscriber that reads slowly; past it, the oldest are dropped."""


@dataclass(frozen=True)
class Received:
    """A new message, and its contact as read once for every subscriber (None: deleted)."""

    message: ThreadMessage
    contact: Contact | None


@dataclass(eq=False)
class Listener:
    """One subscriber: its organization, its rep filter, and what waits for it."""

    organization_id: ObjectId
    assigned_to: ObjectId | None
    queue: asyncio.Queue[Received] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, message: Received) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(message)


class Watcher:
    """Reads the activity logs of the organizations listened to, and fans out."""

    def __init__(self, poll_s: float = POLL_S) -> None:
        self.poll_s = poll_s
        self.listeners: dict[ObjectId, set[Listener]] = {}
        self.seen: dict[ObjectId, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.passes = 0
        """Passes made (a test counts them against subscribers)."""

    async def listen(
        self, organization_id: ObjectId, assigned_to: ObjectId | None = None
    ) -> AsyncIterator[Received]:
        """Yields the organization's inbound messages from now on (of one rep's conversations
        when `assigned_to` is given)."""
        listener = Listener(organization_id, assigned_to)
        if organization_id not in self.seen:
            tenant = Tenant.for_organization(organization_id)
            self.seen[organization_id] = await activity.last_entry(tenant)
        self.listeners.setdefault(organization_id, set()).add(listener)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        try:
            while True:
                yield await listener.queue.get()
        finally:
            group = self.listeners.get(organization_id, set())
            group.discard(listener)
            if not group:
                self.listeners.pop(organization_id, None)
                self.seen.pop(organization_id, None)

    async def _run(self) -> None:
        while self.listeners:
            try:
                await self.tick()
            except Exception:  # a failed pass must not end everyone's subscription
                logger.exception("reading new messages failed")
            await asyncio.sleep(self.poll_s)

    async def tick(self) -> None:
        """One pass over every organization listened to."""
        self.passes += 1
        for organization_id, group in list(self.listeners.items()):
            with contextlib.suppress(KeyError):
                await self._organization(organization_id, group)

    async def _organization(self, organization_id: ObjectId, group: set[Listener]) -> None:
        tenant = Tenant.for_organization(organization_id)
        since = self.seen[organization_id]
        last = await activity.last_entry(tenant)
        if last <= since:
            return
        entries = []
        for page in range(max(since + 1, 0) // ACTIVITY_PAGE, last // ACTIVITY_PAGE + 1):
            for entry in await activity.entries_of_page(tenant, page):
                if since < int(entry["n"]) <= last:
                    entries.append(entry)
        self.seen[organization_id] = last
        entries.sort(key=lambda entry: int(entry["n"]))
        wants_owner = any(listener.assigned_to is not None for listener in group)
        for entry in entries:
            if entry.get("direction") != Direction.INBOUND:
                continue
            rows = await tenant.raw_find(Message, {"_id": entry["messageId"]}).to_list()
            if not rows:
                continue
            message = ThreadMessage.of_message(rows[0])
            contact = await tenant.get(Contact, entry["contactId"])
            owner = None
            if wants_owner and contact is not None:
                # From the thread as it is now: the webhook that stored the message may not
                # have refreshed its summary yet, and this message may be what set the owner.
                found = await summaries.compute(tenant, entry["contactId"])
                owner = (found.assigned if found else None) or contact.assignedTo
            for listener in list(group):
                if listener.assigned_to is None or listener.assigned_to == owner:
                    listener.offer(Received(message, contact))


WATCHER = Watcher()
"""This process's watcher."""
