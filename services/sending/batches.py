"""Sending one claimed batch: render, opt-outs, quiet hours, provider calls, outcomes.

- **One writer per document.** Recipients of a batch are written only by the batch's holder, in
  bulk after every chunk (`BULK_CHUNK` statements per command); the batch's counts go to its own
  `BatchCounts` document, after every chunk too.
- **Never twice.** The provider gets the recipient's id as its idempotency key. Through a
  provider that keeps no keys, each chunk is marked `sending` just before it is handed over, and
  a recipient the next holder finds `sending` is marked `unknown`; through one that honours keys
  nothing is marked, and whatever is unfinished is sent again with the same key.
- **Pause and cancel** are read before a batch and between chunks of it: they take effect within
  one chunk; recipients not sent yet stay `pending`, and resuming continues from there.
- **Opt-outs** are read at send time: a contact opted out since creation is `skipped`.
- **Suppressed numbers** are read at send time too, per chunk by `_id` (`$in`): a number
  put on the list since creation is `skipped` (`SUPPRESSED`). The opt-out footer goes to the
  contacts whose first message this is (`services.organizations.footer`, one marker insert
  per chunk).
- **Quiet hours** (`services.organizations.quiet_hours`): recipients outside their local sending
  window stay `pending`; the lease is given back until the earliest opening, which the batch's
  counts keep as `nextSendAt`.
- **Rate slots** are taken one chunk at a time and never waited for: when the organization's
  second is used up, the batch is given back (the rest stays `pending`) and the caller says when
  to come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from bson import ObjectId
from pymongo.errors import DuplicateKeyError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from models import BatchCounts, Campaign, Recipient
from models.campaign import CampaignStatus
from models.recipient import RecipientStatus
from services.campaigns.templates import Template, TemplateError, parse_template
from services.contacts.records import contacts_of_rows
from services.contacts.suppressions import suppressed_among
from services.organizations import footer as footers
from services.organizations.quiet_hours import SendWindow
from services.organizations.senders import contact_senders, list_senders
from services.organizations.settings import opt_out_footer
from services.sending import delivery, metrics, observers
from services.sending.config import DispatchConfig
from services.sending.frequency import FrequencyCap, cap_for
from services.sending.leases import Claim, Leases
from services.sending.provider import UNSUBSCRIBED, Provider, SendError
from services.sending.rate_slots import Grant
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

R = RecipientStatus
IN_THREAD = frozenset({R.SENT, R.FAILED, R.UNKNOWN})
"""Outcomes that are a message in the contact's thread (the conversations' `SENT_STATES`)."""

CONTACT_FIELDS = {"phoneNumber": 1, "firstName": 1, "lastName": 1, "email": 1, "optedOut": 1}
FINISHED = {None, CampaignStatus.CANCELLED.value}
"""A campaign in these states (None: deleted) never sends again (a completed one may: failed
messages are retried)."""


class BatchResult(Enum):
    DONE = "done"
    WAITING = "waiting"
    """Some recipients wait for their quiet hours to end; the lease is released until then."""
    RATE_LIMITED = "rate_limited"
    """The organization's rate slots of this second are used up; the lease is released."""
    STOPPED = "stopped"
    """Paused, cancelled or fenced out: leave the campaign for now."""


@dataclass(frozen=True)
class BatchEnd:
    """How a turn at a batch ended, and (waiting, rate-limited) when to come back."""

    result: BatchResult
    at: datetime | None = None
    rows: list[dict[str, Any]] | None = None
    """Rate-limited: the batch's recipients as this turn left them (see `BatchSender.send`)."""
    sent: int = 0
    """Messages handed to the provider in this turn."""
    zones: tuple[str, ...] = ()
    """Waiting: the time zones whose windows are shut."""


NO_WINDOW = "NO_SENDING_WINDOW"
"""A recipient whose sending window never opens (the state's hours and the organization's
window never overlap): skipped, never held for ever."""

CAPPED = ("", None)
"""`Waiting`'s key for recipients held by the frequency cap rather than a window."""


@dataclass
class Waiting:
    """Recipients of a batch waiting: for their sending window, by time zone (and US state,
    where the state's rules hold them), or for the frequency cap (`CAPPED`)."""

    zones: dict[tuple[str, str | None], tuple[int, datetime]] = field(default_factory=dict)

    def add(self, where: tuple[str, str | None], opens: datetime) -> None:
        count, until = self.zones.get(where, (0, opens))
        self.zones[where] = (count + 1, min(until, opens))

    @property
    def next_send(self) -> datetime | None:
        return min((until for _, until in self.zones.values()), default=None)

    @property
    def count(self) -> int:
        return sum(count for count, _ in self.zones.values())

    def labels(self) -> tuple[str, ...]:
        return tuple(
            "the frequency cap"
            if (zone, state) == CAPPED
            else f"quiet hours in {zone} ({state} rules)"
            if state
            else f"quiet hours in {zone}"
            for zone, state in self.zones
        )

    def rows(self) -> list[dict[str, Any]]:
        """As stored on the batch's counts (a list of objects: FerretDB keeps no nested
        arrays)."""
        return [
            {
                "zone": zone,
                "state": state,
                "count": count,
                "until": until,
                "reason": "frequency_cap" if (zone, state) == CAPPED else "quiet_hours",
            }
            for (zone, state), (count, until) in sorted(
                self.zones.items(), key=lambda item: (item[0][0], item[0][1] or "")
            )
        ]


WROTE_BACK = "REPLIED"
"""A message that was not handed over because the contact wrote first."""


class Handover(Protocol):
    """Asked right before each provider call of a message (in the send gate): `start` says
    whether it may go; `end` follows the call, however it ended."""

    async def start(self) -> bool: ...

    async def end(self) -> None: ...


@dataclass
class Outcome:
    status: RecipientStatus
    message_id: str | None = None
    code: str | None = None
    error: str | None = None
    sender: str | None = None
    """The organization's sender it was handed over from (None: the deployment's)."""


@dataclass(frozen=True)
class Checks:
    """What is decided for a whole chunk at once before its sends: the suppressed numbers,
    and the contacts whose first message from the organization this is (they get `footer`)."""

    suppressed: frozenset[str] = frozenset()
    footer: str = ""
    first: frozenset[ObjectId] = frozenset()
    keys: Mapping[ObjectId, str] = field(default_factory=dict)
    """Each first message's idempotency key, which its marker names."""

    def footer_of(self, contact_id: ObjectId) -> str:
        return self.footer if contact_id in self.first else ""


NO_CHECKS = Checks()


def split_by_window(
    queue: Sequence[dict[str, Any]],
    contacts: Mapping[ObjectId, Mapping[str, Any]],
    window: SendWindow,
    now: datetime,
) -> tuple[list[dict[str, Any]], Waiting, list[tuple[dict[str, Any], str]]]:
    """Who of a unit's queue may be messaged now in their own time zone (`ready`), who waits
    and until when (`held`), and whose window never opens (`never`, with the phone). A
    recipient without a usable phone is `ready`: the send itself decides what becomes of it."""
    ready: list[dict[str, Any]] = []
    held = Waiting()
    never: list[tuple[dict[str, Any], str]] = []
    for row in queue:
        contact = contacts.get(row["contactId"])
        phone = contact.get("phoneNumber") if contact and not contact.get("optedOut") else None
        if phone and not window.is_open(phone, now):
            opens = window.next_opening(phone, now)
            if opens is None:
                never.append((row, phone))
            else:
                held.add(window.held_in(phone, now), opens)
        else:
            ready.append(row)
    return ready, held, never


def send_key(row: Mapping[str, Any]) -> str:
    """The provider's idempotency key for a recipient's first message: its id, and for a
    `retryFailed` resend a key of its own (the provider would answer the old one with the
    failed message)."""
    round = int(row.get("retryRound") or 0)
    return f"{row['_id']}:r{round}" if round else str(row["_id"])


class BatchSender:
    """Sends claimed batches through one provider, at most `max_in_flight` sends at once."""

    def __init__(self, provider: Provider, config: DispatchConfig, leases: Leases) -> None:
        self.provider = provider
        self.config = config
        self.leases = leases
        self._gate = asyncio.Semaphore(config.max_in_flight)
        self.caps = FrequencyCap()

    async def send(
        self,
        claim: Claim,
        window: SendWindow,
        grant: Grant,
        next_grant: Callable[[], Awaitable[Grant | datetime]],
        cap: int | None = None,
        rows: list[dict[str, Any]] | None = None,
    ) -> BatchEnd:
        """Sends the batch's due recipients, the first chunk under `grant` and each further one
        under a slot from `next_grant` (a time instead of a slot ends the turn), each within
        the organization's frequency `cap`; the lease is renewed meanwhile and released at the
        end.

        `rows`: the batch's recipients as this dispatcher's previous turn left them, when no
        epoch came between that turn's and this claim's (only a batch's holder writes its
        recipients, so they are still exact): one read of the batch saved."""
        renewing = asyncio.create_task(self.leases.renew_forever(claim))
        try:
            return await self._send(claim, window, grant, next_grant, cap, rows)
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def _send(
        self,
        claim: Claim,
        window: SendWindow,
        grant: Grant,
        next_grant: Callable[[], Awaitable[Grant | datetime]],
        cap: int | None,
        known: list[dict[str, Any]] | None,
    ) -> BatchEnd:
        tenant = claim.tenant
        found = await tenant.raw_find(
            Campaign, {"_id": claim.campaign_id}, {"status": 1, "message": 1}
        ).to_list()
        status = found[0].get("status") if found else None
        if status in FINISHED:
            await self.leases.drop(claim)  # its records are purged: leave none behind
            return BatchEnd(BatchResult.STOPPED)
        if status != CampaignStatus.SENDING.value:
            await self.leases.release(claim, done=False)
            return BatchEnd(BatchResult.STOPPED)
        message = str(found[0].get("message") or "")
        rows = known
        if rows is None:
            rows = await tenant.raw_find(
                Recipient, {"campaignId": claim.campaign_id, "batch": claim.batch}
            ).to_list()
        outcomes: dict[ObjectId, Outcome] = {}
        queue: list[dict[str, Any]] = []
        for row in rows:
            status = R(row["status"])
            if status is R.PENDING:
                queue.append(row)
            elif status is R.SENDING and row.get("leaseEpoch") != claim.epoch:
                # Its sender died between handing it over and recording the answer.
                if self.provider.honours_idempotency:
                    queue.append(row)  # the same key: the provider answers, never sends twice
                else:
                    outcomes[row["_id"]] = Outcome(
                        R.UNKNOWN,
                        code="OUTCOME_UNKNOWN",
                        error="The sender stopped while sending; not resent, as the provider "
                        "keeps no idempotency keys",
                    )
        contacts = await self.contacts_of(tenant, queue)
        # Quiet hours: who may be messaged now, in their own time zone; the others wait.
        now = self.config.clock()
        ready, held, never = split_by_window(queue, contacts, window, now)
        for row, phone in never:
            outcomes[row["_id"]] = Outcome(
                R.SKIPPED, code=NO_WINDOW, error=window.never_opens(phone)
            )
        next_send = held.next_send
        senders = await self.senders_for(tenant, ready, contacts)
        try:
            template = parse_template(message)
        except TemplateError:
            template = None
        stopped = False
        limited: datetime | None = None
        waiting = held.count
        footer = await opt_out_footer(tenant) if ready else ""
        recorded: set[ObjectId] = set()
        contact_of = {row["_id"]: row["contactId"] for row in rows}

        async def record() -> None:
            """Writes the outcomes not written yet and the batch's counts: after every chunk,
            so recipients and stats stay true while a rate-limited campaign takes minutes."""
            fresh = {rid: o for rid, o in outcomes.items() if rid not in recorded}
            await self._write_outcomes(claim, fresh)
            recorded.update(fresh)
            await observers.threads_changed(
                tenant,
                [contact_of[rid] for rid, o in fresh.items() if o.status in IN_THREAD],
            )
            final = {row["_id"]: R(row["status"]) for row in rows}
            final.update({rid: outcome.status for rid, outcome in outcomes.items()})
            await self._write_counts(
                claim, Counter(final.values()), next_send, waiting, held, grant.rate
            )

        start = 0
        while start < len(ready):
            if start:
                more = await next_grant()
                if isinstance(more, datetime):
                    limited = more  # the rest when the organization's next slot comes
                    break
                grant = more
                if not await self.still_sending(claim):
                    stopped = True
                    break
                # Fencing; not before the first chunk: the lease was just inserted and is
                # renewed, so no later epoch can exist yet.
                if not await self.leases.holds(claim):
                    logger.info("fenced out of %s batch %d", claim.campaign_id, claim.batch)
                    return BatchEnd(BatchResult.STOPPED)
            chunk = ready[start : start + grant.size]
            start += len(chunk)
            suppressed = await self.suppressed_of(tenant, chunk, contacts)
            capped = await self.capped(claim, chunk, contacts, cap, now, suppressed=suppressed)
            if capped:
                for until in capped.values():
                    held.add(CAPPED, until)
                waiting += len(capped)
                next_send = held.next_send
                chunk = [row for row in chunk if row["_id"] not in capped]
            await self._mark_sending(claim, chunk)
            chunk_contacts = [contacts.get(row["contactId"]) for row in chunk]
            checks = await self.check_chunk(
                tenant,
                chunk_contacts,
                suppressed,
                footer,
                message,
                [send_key(row) for row in chunk],
                resumed=claim.epoch > 0,
            )
            results = await asyncio.gather(
                *(
                    self.deliver(
                        tenant,
                        send_key(row),
                        contact,
                        template,
                        senders.get(row["contactId"]),
                        checks=checks,
                    )
                    for row, contact in zip(chunk, chunk_contacts, strict=True)
                )
            )
            await self.settle_chunk(tenant, checks, chunk_contacts, results)
            outcomes.update(
                {row["_id"]: outcome for row, outcome in zip(chunk, results, strict=True)}
            )
            await record()
        if not ready or len(recorded) < len(outcomes):
            await record()  # nothing was sent (or only outcomes decided up front): still counts
        if stopped:
            await self.leases.release(claim, done=False)
            return BatchEnd(BatchResult.STOPPED)
        if limited is not None:
            await self.leases.release(claim, done=False)
            left = [
                {**row, "status": outcomes[row["_id"]].status.value, "leaseEpoch": claim.epoch}
                if row["_id"] in outcomes
                else row
                for row in rows
            ]
            return BatchEnd(BatchResult.RATE_LIMITED, limited, left)
        if next_send is not None:
            await self.leases.release(claim, done=False, until=next_send)
            return BatchEnd(BatchResult.WAITING, next_send, zones=held.labels())
        await self.leases.release(claim, done=True)
        metrics.BATCHES_DONE.inc()
        return BatchEnd(BatchResult.DONE)

    async def _write_outcomes(self, claim: Claim, outcomes: Mapping[ObjectId, Outcome]) -> None:
        """Records each outcome on its recipient (`BULK_CHUNK` statements per command), at
        the dispatcher's clock's time: a follow-up step is due `delayMinutes` after `sentAt`
        by that clock."""
        written = self.config.clock()
        updates: list[tuple[ObjectId, Mapping[str, Any]]] = []
        for recipient_id, outcome in outcomes.items():
            fields: dict[str, Any] = {
                "status": outcome.status.value,
                "leaseEpoch": claim.epoch,
                "updatedAt": written,
                "errorCode": outcome.code,
                "error": outcome.error,
            }
            if outcome.status is R.SENT:
                fields.update(providerMessageId=outcome.message_id, sentAt=written)
            if outcome.sender is not None:
                fields["sender"] = outcome.sender
            updates.append((recipient_id, fields))
        await claim.tenant.update_each(Recipient, updates)
        for outcome in outcomes.values():
            metrics.MESSAGES.labels(self.provider.name, outcome.status.value).inc()

    async def _mark_sending(self, claim: Claim, chunk: Sequence[Mapping[str, Any]]) -> None:
        """Marks one chunk's pending recipients `sending` under this epoch, in one command,
        just before they are handed over: a recipient found `sending` later was handed to the
        provider, and only those can end `unknown`. The batch equality narrows it on every
        server; the id list then picks the chunk among at most 100 rows (FerretDB evaluates the
        `$in` itself, over the batch's rows only), cheaper than one update per recipient.

        A provider that honours idempotency keys needs no mark (one write per chunk saved):
        whatever is unfinished after a crash goes to it again with the same key, and it answers
        with the first message's id instead of sending a second."""
        if self.provider.honours_idempotency:
            return
        pending = [row["_id"] for row in chunk if row["status"] == R.PENDING.value]
        if pending:
            await claim.tenant.update_many(
                Recipient,
                {
                    "campaignId": claim.campaign_id,
                    "batch": claim.batch,
                    "status": R.PENDING.value,
                    "_id": {"$in": pending},
                },
                {"$set": {"status": R.SENDING.value, "leaseEpoch": claim.epoch}},
            )

    async def deliver(
        self,
        tenant: Tenant,
        key: str,
        contact: Mapping[str, Any] | None,
        template: Template | None,
        sender: str | None,
        handover: Handover | None = None,
        checks: Checks = NO_CHECKS,
    ) -> Outcome:
        if contact is None:
            return Outcome(R.SKIPPED, code="CONTACT_DELETED", error="The contact was deleted")
        if contact.get("optedOut"):
            return Outcome(R.SKIPPED, code="OPTED_OUT", error="The contact opted out")
        if contact.get("phoneNumber") in checks.suppressed:
            return Outcome(
                R.SKIPPED, code="SUPPRESSED", error="The number is on the suppression list"
            )
        if template is None:
            return Outcome(
                R.FAILED, code="INVALID_TEMPLATE", error="The message cannot be rendered"
            )
        try:
            rendered = template.render({k: contact.get(k) for k in template.placeholders()})
        except TemplateError as exc:
            return Outcome(R.FAILED, code="MESSAGE_TOO_LONG", error=str(exc))
        if rendered.missing:
            missing = ", ".join(rendered.missing)
            return Outcome(R.SKIPPED, code="MISSING_FIELDS", error=f"No value for {missing}")
        text = footers.with_footer(rendered.text, checks.footer_of(contact["_id"]))
        started = time.perf_counter()
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(lambda e: isinstance(e, SendError) and e.transient),
                stop=stop_after_attempt(self.config.send_attempts),
                wait=wait_exponential_jitter(
                    multiplier=self.config.retry_initial_s,
                    max=self.config.retry_max_s,
                    jitter=self.config.retry_initial_s,
                ),
                reraise=True,
            ):
                with attempt:
                    async with self._gate:
                        if handover is not None and not await handover.start():
                            return Outcome(
                                R.SKIPPED, code=WROTE_BACK, error="The contact wrote first"
                            )
                        try:
                            message_id = await self.provider.send(
                                contact["phoneNumber"],
                                text,
                                key,
                                organization=tenant.organization_id,
                                sender=sender,
                            )
                        finally:
                            if handover is not None:
                                await handover.end()
        except SendError as exc:
            if exc.unknown:
                return Outcome(R.UNKNOWN, code=exc.code, error=exc.message, sender=sender)
            if exc.code == UNSUBSCRIBED:
                await delivery.opt_out_unsubscribed(tenant, contact["_id"])
                return Outcome(R.SKIPPED, code="OPTED_OUT", error=exc.message, sender=sender)
            return Outcome(R.FAILED, code=exc.code, error=exc.message, sender=sender)
        finally:
            metrics.SEND_SECONDS.labels(self.provider.name).observe(time.perf_counter() - started)
        return Outcome(R.SENT, message_id=message_id, sender=sender)

    async def suppressed_of(
        self,
        tenant: Tenant,
        chunk: Sequence[Mapping[str, Any]],
        contacts: Mapping[ObjectId, Mapping[str, Any]],
    ) -> frozenset[str]:
        """The chunk's numbers on the suppression list, read now (by `_id`)."""
        phones = [
            str(c["phoneNumber"])
            for row in chunk
            if (c := contacts.get(row["contactId"])) is not None and not c.get("optedOut")
        ]
        return frozenset(await suppressed_among(tenant, phones))

    async def check_chunk(
        self,
        tenant: Tenant,
        contacts: Sequence[Mapping[str, Any] | None],
        suppressed: frozenset[str],
        footer: str,
        message: str,
        keys: Sequence[str],
        *,
        resumed: bool,
    ) -> Checks:
        """With the organization's footer on, claims the first-message markers of the chunk's
        contacts that are neither opted out nor `suppressed`, each for its message (`keys`,
        aligned with `contacts`); `resumed`: a holder before this one may have claimed them."""
        wanted = {
            contact["_id"]: key
            for contact, key in zip(contacts, keys, strict=True)
            if contact is not None
            and not contact.get("optedOut")
            and contact["phoneNumber"] not in suppressed
        }
        first: set[ObjectId] = set()
        if footer:
            first = await footers.claim_first(tenant, wanted, resumed=resumed)
        return Checks(
            suppressed,
            footers.footer_for(message, footer),
            frozenset(first),
            {c: wanted[c] for c in first},
        )

    async def settle_chunk(
        self,
        tenant: Tenant,
        checks: Checks,
        contacts: Sequence[Mapping[str, Any] | None],
        outcomes: Sequence[Outcome],
    ) -> None:
        """Gives back the first-message markers of messages that did not go (failed or
        skipped), so the contact's next message carries the footer instead."""
        unsent = {
            contact["_id"]: checks.keys[contact["_id"]]
            for contact, outcome in zip(contacts, outcomes, strict=True)
            if contact is not None
            and contact["_id"] in checks.first
            and outcome.status in (R.FAILED, R.SKIPPED)
        }
        await footers.give_back(tenant, unsent)

    async def contacts_of(
        self, tenant: Tenant, queue: Sequence[Mapping[str, Any]]
    ) -> dict[ObjectId, dict[str, Any]]:
        """The queued recipients' contacts as they are now (opt-outs are read at send time),
        a list page at a time where they share one (`contacts_of_rows`)."""
        return await contacts_of_rows(tenant, queue, CONTACT_FIELDS)

    async def capped(
        self,
        claim: Claim,
        chunk: Sequence[Mapping[str, Any]],
        contacts: Mapping[ObjectId, Mapping[str, Any]],
        cap: int | None,
        now: datetime,
        key: Callable[[Mapping[str, Any]], str] = send_key,
        *,
        suppressed: frozenset[str] = frozenset(),
    ) -> dict[ObjectId, datetime]:
        """Takes a frequency-cap send for each recipient of the chunk about to be messaged;
        returns those over the cap, with when they may go. Opted-out, suppressed and deleted
        contacts get nothing and take nothing."""
        messages: dict[str, tuple[ObjectId, int | None]] = {}
        recipients: dict[str, ObjectId] = {}
        for row in chunk:
            contact = contacts.get(row["contactId"])
            if contact is None or contact.get("optedOut") or contact["phoneNumber"] in suppressed:
                continue
            messages[key(row)] = (row["contactId"], cap_for(contact.get("phoneNumber"), cap))
            recipients[key(row)] = row["_id"]
        held = await self.caps.claim(
            claim.tenant, messages, now, claim.campaign_id, resumed=claim.epoch > 0
        )
        return {recipients[k]: until for k, until in held.items()}

    async def senders_for(
        self,
        tenant: Tenant,
        ready: Sequence[Mapping[str, Any]],
        contacts: Mapping[ObjectId, Mapping[str, Any]],
    ) -> dict[ObjectId, str | None]:
        """The sender each contact about to be messaged hears from, stored at its first send
        (campaign messages and follow-ups come from the number it heard first)."""
        own = [entry.key for entry in await list_senders(tenant)]
        reachable = [
            row["contactId"]
            for row in ready
            if (contact := contacts.get(row["contactId"])) and not contact.get("optedOut")
        ]
        return await contact_senders(tenant, own, reachable)

    async def still_sending(self, claim: Claim) -> bool:
        rows = await claim.tenant.raw_find(
            Campaign, {"_id": claim.campaign_id}, {"status": 1}
        ).to_list()
        return bool(rows) and rows[0].get("status") == CampaignStatus.SENDING.value

    async def _write_counts(
        self,
        claim: Claim,
        tally: Counter[RecipientStatus],
        next_send: datetime | None,
        waiting: int,
        held: Waiting,
        rate: int | None,
    ) -> None:
        counts = {
            "sent": tally[R.SENT],
            "failed": tally[R.FAILED],
            "skipped": tally[R.SKIPPED],
            "unknown": tally[R.UNKNOWN],
            "nextSendAt": next_send,
            "waiting": waiting if next_send is not None else 0,
            "waitingZones": held.rows(),
            "rate": rate,
        }
        await write_counts(
            claim,
            f"{claim.campaign_id}:{claim.batch}",
            counts,
            {"campaignId": claim.campaign_id, "batch": claim.batch},
        )


async def write_counts(
    claim: Claim, counts_id: str, counts: Mapping[str, Any], on_insert: Mapping[str, Any]
) -> bool:
    """Writes a unit's counts unless a newer holder wrote them; False if one did.

    A holder fenced out after its last chunk would otherwise overwrite the counts of the epoch
    that took over. The first message's document is also written by the batch's retry rounds
    (units `RETRY_UNIT + k`, whose epochs start again at 0), so the order is that of
    `(unit, epoch)`, not of the epoch alone. A document without `unit` predates the guard."""
    unit, epoch = claim.step, claim.epoch
    not_newer = [
        {"unit": {"$exists": False}},
        {"unit": {"$lt": unit}},
        {"unit": unit, "epoch": {"$lte": epoch}},
    ]
    try:
        await claim.tenant.update_one(
            BatchCounts,
            {"_id": counts_id, "$or": not_newer},
            {
                "$set": {**counts, "unit": unit, "epoch": epoch, "updatedAt": Tenant.now()},
                "$setOnInsert": {**on_insert, "createdAt": Tenant.now()},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        # The filter missed an existing document: a later (unit, epoch) wrote it.
        return False
    return True
