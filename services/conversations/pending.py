"""Ordinary replies are accepted first and applied right after, so Twilio's webhook is answered
once the reply is safely stored, not once everything it changes is written.

Applying a reply (`inbound.receive`: the contact, follow-ups stopped, the message, its campaign,
the activity log, the conversation's summary) is about twenty database commands. A burst after
a large campaign sends hundreds at once, and answering each only after all of that makes
Twilio wait, retry, and add to the burst. So the webhook writes one `PendingInbound` (its `_id`
the `MessageSid`, so retries accept a message once; a burst's are written by one insert at a
time, `GroupedInserts`) and answers; a few workers in the process apply what it accepted, in
order, and delete each once applied.

Nothing accepted is lost: a process that stops or dies leaves its pending replies behind, and
every process sweeps now and then for replies accepted more than `retry_after` ago and hands
them to its workers. Applying twice is harmless (`inbound.receive` keeps one message per
`MessageSid` and every later step is idempotent), so a sweep taking up a reply that another
process still has queued (a long burst) costs only work. Only a failed application counts as
an attempt; a reply that failed `MAX_ATTEMPTS` times is marked failed, logged and counted
(`outcome="failed"`), and left in place for an operator.

Keywords are not deferred: an opt-out takes effect before Twilio is told the message arrived,
and HELP's answer is the webhook's own answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from pymongo import ReturnDocument

from core.config import Settings
from models import PendingInbound
from models.base import utcnow
from services.conversations.inbound import Inbound, Received, receive
from services.conversations.keywords import might_be_keyword
from services.sending import metrics
from services.storage.grouped import GroupedInserts

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
SWEEP_BATCH = 100
QUEUED_MOST = 10_000
"""Accepted replies one process holds in memory for its workers; past that a burst's replies
wait in the database for a sweep, so memory stays bounded however long the burst."""


def deferrable(message: Inbound) -> bool:
    """Whether a reply may be applied after the webhook answers: anything but a keyword."""
    return not message.opt_out_type and not might_be_keyword(message.body)


def form_of(stored: list[dict[str, str]] | dict[str, str]) -> dict[str, str]:
    """A pending record's form: its fields, or (stored by older versions) a document."""
    if isinstance(stored, dict):
        return stored
    return {field["name"]: field["value"] for field in stored}


class PendingReplies:
    """One process's accepted replies and the workers that apply them (`run`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        workers: int,
        retry_after: timedelta,
        sweep_every: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.workers = workers
        self.retry_after = retry_after
        self.sweep_every = sweep_every
        self.clock = clock
        self.queue: asyncio.Queue[tuple[str, dict[str, str]]] = asyncio.Queue(QUEUED_MOST)
        self.held: set[str] = set()
        """Replies queued or being applied here: a sweep does not queue them again."""
        self.inserts: GroupedInserts | None = None
        """A burst's replies are stored by one insert at a time (made once the database is)."""

    async def accept(self, form: dict[str, str], message: Inbound) -> bool:
        """Stores a reply for applying; False when it was accepted before (a retry while the
        first is still pending)."""
        key = message.message_sid or f"local:{uuid.uuid4().hex}"
        if self.inserts is None:
            self.inserts = GroupedInserts(PendingInbound.get_pymongo_collection())
        fields = [{"name": name, "value": value} for name, value in form.items()]
        document = {"_id": key, "form": fields, "receivedAt": self.clock()}
        if not await self.inserts.insert({**document, "attempts": 0, "failed": False}):
            return False
        self._enqueue(key, form)
        return True

    def _enqueue(self, key: str, form: dict[str, str]) -> None:
        """Hands a reply to the workers, unless they hold it already or hold too many."""
        if key in self.held:
            return
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait((key, form))
            self.held.add(key)

    async def run(self, stop: asyncio.Event) -> None:
        """Applies accepted replies until `stop`, sweeping for stranded ones every
        `sweep_every` seconds (and once at start)."""
        workers = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        try:
            while not stop.is_set():
                try:
                    await self.sweep()
                except Exception:  # the database may be away for a moment: sweep again later
                    logger.exception("sweeping pending replies failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.sweep_every)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key, form = await self.queue.get()
            try:
                await self.apply(key, form)
            finally:
                self.held.discard(key)

    async def apply(self, key: str, form: dict[str, str]) -> Received | None:
        """Applies one accepted reply and forgets it; None when applying failed (it stays
        pending for a sweep, one attempt more)."""
        try:
            received = await receive(Inbound.from_form(form), self.settings)
            await PendingInbound.get_pymongo_collection().delete_one({"_id": key})
        except Exception:
            logger.exception("applying the inbound message %s failed; a sweep retries it", key)
            with contextlib.suppress(Exception):
                await self._failed_once(key)
            return None
        metrics.WEBHOOKS.labels("inbound", received.outcome.value).inc()
        return received

    async def _failed_once(self, key: str) -> None:
        collection = PendingInbound.get_pymongo_collection()
        row = await collection.find_one_and_update(
            {"_id": key}, {"$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER
        )
        if row is None or int(row.get("attempts") or 0) < MAX_ATTEMPTS:
            return
        await collection.update_one({"_id": key}, {"$set": {"failed": True}})
        metrics.WEBHOOKS.labels("inbound", "failed").inc()
        logger.error(
            "the inbound message %s failed %d times; left in %s for an operator",
            key,
            MAX_ATTEMPTS,
            PendingInbound.Settings.name,
        )

    async def sweep(self) -> int:
        """Hands the workers replies accepted more than `retry_after` ago and still pending;
        returns how many it found."""
        before = self.clock() - self.retry_after
        rows = await (
            PendingInbound.get_pymongo_collection()
            .find({"failed": False, "receivedAt": {"$lt": before}}, limit=SWEEP_BATCH)
            .to_list()
        )
        for row in rows:
            self._enqueue(row["_id"], form_of(row["form"]))
        return len(rows)
