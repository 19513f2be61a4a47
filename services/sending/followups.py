"""Autopilot follow-ups: step n of a batch goes to the recipients who got step n - 1 and have
not answered, `delayMinutes` after that message.

A step of a batch is a unit of work like the batch's first message (`lanes`, `leases`): it is
claimed by a lease of its own once step n - 1 of the batch is done, and its holder sends with
the same rate slots, quiet hours, pause and fencing checks as the first message (`batches`).

- **At most once per step.** Each recipient's step is claimed by inserting `StepSend`
  `"<recipient>:<step>"` (status `sending`) just before it is handed over; the provider's
  idempotency key is the same id. A later holder finding it still `sending` from an older epoch
  resends with that key only to a provider that honours keys, and otherwise records `unknown`.
- **A reply stops what is not sent.** An inbound message inserts the same ids as `stopped` for
  every step of the contact's running campaigns *before* the message is stored
  (`stop_follow_ups`). Whichever insert comes first wins: a step claimed first is waited for (it
  is being handed over), so no step goes out after the reply is stored.
- **Found by equality.** A step's recipients are read as the batch's (`{campaignId, batch}`)
  and their previous step's records by `{campaignId, batch, step}`: no sort, no scan that grows
  with the organization. Who is not due yet keeps the unit's lease given back until the
  earliest due time, as quiet hours do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import BulkWriteError

from core.errors import Conflict, NotFound
from models import BatchLease, Campaign, FollowUpHandover, Recipient, StepSend
from models.campaign import CampaignStatus, FollowUp
from models.followup import StepStatus, step_send_id
from models.recipient import RecipientStatus
from services.campaigns.stats import batch_count
from services.campaigns.templates import TemplateError, parse_template
from services.organizations.quiet_hours import SendWindow
from services.organizations.settings import opt_out_footer
from services.sending import metrics, observers
from services.sending.batches import (
    CAPPED,
    NO_WINDOW,
    WROTE_BACK,
    BatchEnd,
    BatchResult,
    BatchSender,
    Outcome,
    Waiting,
    split_by_window,
    write_counts,
)
from services.sending.contact_sends import ContactSends
from services.sending.leases import Claim
from services.sending.rate_slots import Grant
from services.storage import history
from services.storage.history import LostToStatusChange, Planned
from services.storage.tenancy import DUPLICATE_KEY, Tenant

logger = logging.getLogger(__name__)

S = StepStatus
FAILED_DELIVERY = frozenset({"undelivered", "failed"})
"""Carrier reports that mean the previous message never arrived: no follow-up to it."""
RUNNING = frozenset({CampaignStatus.SENDING.value, CampaignStatus.PAUSED.value})
"""Campaigns whose follow-ups a reply stops (the others send none any more)."""
STOP_WAIT_S = 12.0
"""How long a reply waits for a step's provider call already under way: one call (Twilio's
client gives up after 10 s), which only a sender that died mid-call makes it wait out."""
HANDOVERS = 16
"""Provider calls a step may take over all its holders (retries after crashes included)."""
GO, DONE, STOPPED_HANDOVER = "go", "done", "stopped"
REPLIED = "REPLIED"
OPTED_OUT = "OPTED_OUT"

CAMPAIGN_FIELDS = {"status": 1, "followUps": 1, "isAutopilot": 1, "autopilotSince": 1}
RECIPIENT_FIELDS = {
    "contactId": 1,
    "contactPage": 1,
    "status": 1,
    "sentAt": 1,
    "replied": 1,
    "deliveryStatus": 1,
}


def _previous(row: Mapping[str, Any]) -> datetime | None:
    """When the previous message went to this recipient, if it went and was not reported
    failed by the carrier (None: no follow-up to it)."""
    if row.get("status") != "sent" or row.get("deliveryStatus") in FAILED_DELIVERY:
        return None
    sent_at: datetime | None = row.get("sentAt")
    return sent_at


class CadenceSender(BatchSender):
    """Sends claimed follow-up units (a step of a batch) through one provider."""

    async def _send(
        self,
        claim: Claim,
        window: SendWindow,
        grant: Grant,
        next_grant: Callable[[], Awaitable[Grant | datetime]],
        cap: int | None,
        known: list[dict[str, Any]] | None = None,
    ) -> BatchEnd:
        # `known` (a first-message turn's recipients) does not apply: a step reads its records.
        tenant, step = claim.tenant, claim.step
        found = await tenant.raw_find(
            Campaign, {"_id": claim.campaign_id}, CAMPAIGN_FIELDS
        ).to_list()
        if not found:
            await self.leases.release(claim, done=True)
            return BatchEnd(BatchResult.STOPPED)
        campaign = found[0]
        steps = [FollowUp.model_validate(s) for s in campaign.get("followUps") or []]
        if (
            campaign.get("status") != CampaignStatus.SENDING.value
            or not campaign.get("isAutopilot")
            or step > len(steps)
        ):
            # Paused, or autopilot switched off: the unit waits, not done.
            await self.leases.release(claim, done=False)
            return BatchEnd(BatchResult.STOPPED)
        follow_up = steps[step - 1]
        delay = timedelta(seconds=follow_up.delayMinutes * self.config.minute_seconds)
        since: datetime | None = campaign.get("autopilotSince")

        rows = await tenant.raw_find(
            Recipient, {"campaignId": claim.campaign_id, "batch": claim.batch}, RECIPIENT_FIELDS
        ).to_list()
        if step == 1:
            previous = {row["_id"]: _previous(row) for row in rows}
        else:
            before = await self._records(claim, step - 1)
            previous = {rid: _previous(rec) for rid, rec in before.items()}
        mine = await self._records(claim, step)

        now = self.config.clock()
        tally = Counter[str]()
        queue: list[dict[str, Any]] = []
        resend: set[ObjectId] = set()
        decided: dict[ObjectId, Outcome] = {}
        stop_now: list[dict[str, Any]] = []
        next_send: datetime | None = None
        waiting = 0
        for row in rows:
            rid = row["_id"]
            record = mine.get(rid)
            if record is not None and record["status"] == S.STOPPED and previous.get(rid) is None:
                continue  # a reply's marker for someone the step was never for
            if record is not None:
                status = S(record["status"])
                if status is S.SENDING and record.get("epoch") != claim.epoch:
                    if self.provider.honours_idempotency:
                        queue.append(row)  # the same key: the provider answers, never twice
                        resend.add(rid)
                    else:
                        decided[rid] = Outcome(
                            RecipientStatus.UNKNOWN,
                            code="OUTCOME_UNKNOWN",
                            error="The sender stopped while sending; not resent, as the "
                            "provider keeps no idempotency keys",
                        )
                else:
                    tally[_counted(record)] += 1
                continue
            went = previous.get(rid)
            if went is None:
                continue  # the previous message did not go: nothing to follow up
            if row.get("replied"):
                stop_now.append(row)
                continue
            due = max(went, since or went) + delay
            if due > now:
                next_send = due if next_send is None else min(next_send, due)
                waiting += 1
                continue
            queue.append(row)
        if stop_now:
            await self._insert(claim, stop_now, S.STOPPED, code=REPLIED)
            tally["stopped"] += len(stop_now)

        contacts = await self.contacts_of(tenant, queue)
        ready, held, never_opens = split_by_window(queue, contacts, window, now)
        opens = held.next_send
        if opens is not None:
            next_send = opens if next_send is None else min(next_send, opens)
        waiting += held.count
        never = [row for row, _ in never_opens]
        if never:
            await self._insert(claim, never, S.SKIPPED, code=NO_WINDOW)
            tally[S.SKIPPED.value] += len(never)
        senders = await self.senders_for(tenant, ready, contacts)
        try:
            template = parse_template(follow_up.message)
        except TemplateError:
            template = None
        if decided:
            await self._write(claim, decided)
            for outcome in decided.values():
                tally[_status(outcome)] += 1

        sent = 0
        stopped = False
        limited: datetime | None = None
        start = 0
        footer = await opt_out_footer(tenant) if ready else ""
        while start < len(ready):
            if start:
                more = await next_grant()
                if isinstance(more, datetime):
                    limited = more
                    break
                grant = more
                if not await self.still_sending(claim):
                    stopped = True
                    break
                if not await self.leases.holds(claim):
                    logger.info(
                        "fenced out of %s batch %d step %d", claim.campaign_id, claim.batch, step
                    )
                    return BatchEnd(BatchResult.STOPPED, sent=sent)
            chunk = ready[start : start + grant.size]
            start += len(chunk)
            suppressed = await self.suppressed_of(tenant, chunk, contacts)
            capped = await self.capped(
                claim,
                [r for r in chunk if r["_id"] not in resend],
                contacts,
                cap,
                now,
                key=lambda row: step_send_id(row["_id"], step),
                suppressed=suppressed,
            )
            if capped:
                for until in capped.values():
                    held.add(CAPPED, until)
                    next_send = until if next_send is None else min(next_send, until)
                waiting += len(capped)
                chunk = [row for row in chunk if row["_id"] not in capped]
            fresh = [row for row in chunk if row["_id"] not in resend]
            lost = await self._insert(claim, fresh, S.SENDING)
            if lost:
                tally["stopped"] += len(lost)  # a reply got there first
            chunk = [row for row in chunk if row["_id"] not in lost]
            chunk_contacts = [contacts.get(row["contactId"]) for row in chunk]
            checks = await self.check_chunk(
                tenant,
                chunk_contacts,
                suppressed,
                footer,
                follow_up.message,
                [step_send_id(row["_id"], step) for row in chunk],
                resumed=claim.epoch > 0,
            )
            results = await asyncio.gather(
                *(
                    self.deliver(
                        tenant,
                        step_send_id(row["_id"], step),
                        contact,
                        template,
                        senders.get(row["contactId"]),
                        StepHandover(tenant, step_send_id(row["_id"], step)),
                        checks=checks,
                    )
                    for row, contact in zip(chunk, chunk_contacts, strict=True)
                )
            )
            await self.settle_chunk(tenant, checks, chunk_contacts, results)
            outcomes = {row["_id"]: outcome for row, outcome in zip(chunk, results, strict=True)}
            await self._write(claim, outcomes)
            await observers.threads_changed(tenant, [row["contactId"] for row in chunk])
            for outcome in outcomes.values():
                tally[_status(outcome)] += 1
            sent += sum(1 for o in outcomes.values() if o.status is RecipientStatus.SENT)
            await self._write_step_counts(claim, tally, next_send, waiting, held, grant.rate)
        await self._write_step_counts(claim, tally, next_send, waiting, held, grant.rate)
        if stopped:
            await self.leases.release(claim, done=False)
            return BatchEnd(BatchResult.STOPPED, sent=sent)
        if limited is not None:
            await self.leases.release(claim, done=False)
            return BatchEnd(BatchResult.RATE_LIMITED, limited, sent=sent)
        if claim.waiting_for is not None:  # recipients of the earlier step still to come
            next_send = min(next_send or claim.waiting_for, claim.waiting_for)
        if next_send is not None:
            await self.leases.release(claim, done=False, until=next_send)
            return BatchEnd(BatchResult.WAITING, next_send, sent=sent, zones=held.labels())
        await self.leases.release(claim, done=True)
        metrics.BATCHES_DONE.inc()
        return BatchEnd(BatchResult.DONE, sent=sent)

    async def still_sending(self, claim: Claim) -> bool:
        """Also between chunks: autopilot switched off stops the rest of the step."""
        rows = await claim.tenant.raw_find(
            Campaign, {"_id": claim.campaign_id}, {"status": 1, "isAutopilot": 1}
        ).to_list()
        return (
            bool(rows)
            and rows[0].get("status") == CampaignStatus.SENDING.value
            and bool(rows[0].get("isAutopilot"))
        )

    async def _records(self, claim: Claim, step: int) -> dict[ObjectId, dict[str, Any]]:
        """The batch's records of `step`, by recipient (one equality read)."""
        rows = await claim.tenant.raw_find(
            StepSend, {"campaignId": claim.campaign_id, "batch": claim.batch, "step": step}
        ).to_list()
        return {row["recipientId"]: row for row in rows}

    async def _insert(
        self,
        claim: Claim,
        rows: Sequence[Mapping[str, Any]],
        status: StepStatus,
        *,
        code: str | None = None,
    ) -> set[ObjectId]:
        """Inserts the step's records of `rows` (the claim); returns the recipients whose
        record existed already (a reply's `stopped` came first)."""
        documents = [
            {
                "_id": step_send_id(row["_id"], claim.step),
                "campaignId": claim.campaign_id,
                "recipientId": row["_id"],
                "contactId": row["contactId"],
                "batch": claim.batch,
                "step": claim.step,
                "status": status.value,
                "epoch": claim.epoch,
                "errorCode": code,
                "deliveryRank": 0,
                "messageId": ObjectId(),  # its id in the contact's thread
            }
            for row in rows
        ]
        try:
            await claim.tenant.raw_insert_many(StepSend, documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return {documents[e["index"]]["recipientId"] for e in errors}
        return set()

    async def _write(self, claim: Claim, outcomes: Mapping[ObjectId, Outcome]) -> None:
        written = Tenant.now()
        updates = []
        for rid, outcome in outcomes.items():
            fields: dict[str, Any] = {
                "status": _status(outcome),
                "epoch": claim.epoch,
                "errorCode": outcome.code,
                "error": outcome.error,
                "updatedAt": written,
            }
            if outcome.status is RecipientStatus.SENT:
                fields.update(providerMessageId=outcome.message_id, sentAt=written)
            if outcome.sender is not None:
                fields["sender"] = outcome.sender
            updates.append((step_send_id(rid, claim.step), fields))
        await claim.tenant.update_each(StepSend, updates)
        for outcome in outcomes.values():
            metrics.MESSAGES.labels(self.provider.name, outcome.status.value).inc()

    async def _write_step_counts(
        self,
        claim: Claim,
        tally: Counter[str],
        next_send: datetime | None,
        waiting: int,
        held: Waiting,
        rate: int | None,
    ) -> None:
        counts = {key: tally[key] for key in ("sent", "failed", "skipped", "unknown", "stopped")}
        await write_counts(
            claim,
            f"{claim.campaign_id}:{claim.batch}:s{claim.step}",
            {
                **counts,
                "nextSendAt": next_send,
                "waiting": waiting if next_send is not None else 0,
                "waitingZones": held.rows(),
                "rate": rate,
            },
            {"campaignId": claim.campaign_id, "batch": claim.batch, "step": claim.step},
        )


def _status(outcome: Outcome) -> str:
    """A step's status from its outcome: one the contact wrote back before is `stopped`."""
    return S.STOPPED.value if outcome.code == WROTE_BACK else outcome.status.value


def _counted(record: Mapping[str, Any]) -> str:
    """The count a finished record falls into: an opt-out's stop is a skip, a reply's a stop."""
    status = str(record.get("status"))
    if status == S.STOPPED and record.get("errorCode") == OPTED_OUT:
        return S.SKIPPED.value
    return status


async def stop_follow_ups(
    tenant: Tenant,
    contact_id: ObjectId,
    sends: ContactSends,
    reason: str = REPLIED,
) -> int:
    """Keeps every follow-up not yet sent to the contact, in the organization's running
    campaigns, from ever going; returns how many steps it stopped. `sends` are the contact's
    records (`contact_sends`).

    Called before an inbound message is stored: a step already claimed is being handed over,
    and is waited for (at most `STOP_WAIT_S`), so none goes out after the message is stored.
    """
    rows = sends.recipients
    steps = {
        campaign_id: len(row.get("followUps") or [])
        for campaign_id, row in sends.campaigns.items()
        if row.get("status") in RUNNING and row.get("followUps")
    }
    markers = [
        {
            "_id": step_send_id(row["_id"], step),
            "campaignId": row["campaignId"],
            "recipientId": row["_id"],
            "contactId": contact_id,
            "batch": row["batch"],
            "step": step,
            "status": S.STOPPED.value,
            "errorCode": reason,
            "deliveryRank": 0,
        }
        for row in rows
        if row["campaignId"] in steps
        for step in range(1, steps[row["campaignId"]] + 1)
    ]
    if not markers:
        return 0
    stopped = len(markers) - await _insert_ignoring_duplicates(tenant, StepSend, markers)
    # Steps claimed before the markers: no provider call of theirs may start from now on, and
    # a call already under way is waited for (one call, `STOP_WAIT_S` at most).
    claimed = await tenant.raw_find_in(
        StepSend,
        "_id",
        [marker["_id"] for marker in markers],
        {"_id": 1},
        where={"status": S.SENDING.value},
    )
    if not claimed:
        return stopped
    handovers = [
        {"_id": handover_id(row["_id"], attempt), "status": STOPPED_HANDOVER}
        for row in claimed
        for attempt in range(HANDOVERS)
    ]
    await _insert_ignoring_duplicates(tenant, FollowUpHandover, handovers)
    ids = [handover["_id"] for handover in handovers]
    deadline = asyncio.get_running_loop().time() + STOP_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        under_way = await tenant.raw_find_in(
            FollowUpHandover, "_id", ids, {"_id": 1}, where={"status": GO}
        )
        if not under_way:
            break
        ids = [row["_id"] for row in under_way]
        await asyncio.sleep(0.05)
    return stopped


class StepHandover:
    """A step's provider calls, each claimed by inserting `"<step id>:<k>"` (k counting every
    attempt of every holder) right before the call. A reply inserts those ids first as
    `stopped`: then no further call starts, and a call that started first is waited for."""

    def __init__(self, tenant: Tenant, step_id: str) -> None:
        self.tenant = tenant
        self.step_id = step_id
        self.attempt = 0
        self.current: str | None = None

    async def start(self) -> bool:
        while self.attempt < HANDOVERS:
            current = handover_id(self.step_id, self.attempt)
            self.attempt += 1
            try:
                await self.tenant.raw_insert_many(
                    FollowUpHandover, [{"_id": current, "status": GO}], ordered=True
                )
            except BulkWriteError:
                found = await self.tenant.raw_find(
                    FollowUpHandover, {"_id": current}, {"status": 1}
                ).to_list()
                if found and found[0].get("status") == STOPPED_HANDOVER:
                    return False  # the contact wrote first
                continue  # an earlier holder's attempt: the next number
            self.current = current
            return True
        return False

    async def end(self) -> None:
        if self.current is not None:
            await self.tenant.update_one(
                FollowUpHandover, {"_id": self.current}, {"$set": {"status": DONE}}
            )
            self.current = None


def handover_id(step_id: str, attempt: int) -> str:
    return f"{step_id}:{attempt}"


async def _insert_ignoring_duplicates(
    tenant: Tenant, model: type[Any], documents: list[dict[str, Any]]
) -> int:
    """Inserts what is not there yet; returns how many were already there."""
    try:
        await tenant.raw_insert_many(model, documents, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return len(errors)
    return 0


async def follow_up_history(
    tenant: Tenant, campaign_id: ObjectId, step: int, *, started: bool
) -> None:
    """Records that a step started (its first message went) or ended (every batch is done with
    it) in the campaign's history, once: the numbered change decides between dispatchers."""
    if not started:
        batches_done = {
            int(row["batch"])
            async for row in tenant.raw_find(
                BatchLease, {"campaignId": campaign_id, "done": True}, {"batch": 1, "step": 1}
            )
            if int(row.get("step") or 0) == step
        }
    else:
        batches_done = set()

    async def plan(campaign: Campaign) -> Planned:
        if started:
            if step in campaign.followUpsStarted:
                return Planned("followUpStarted")
            return Planned(
                "followUpStarted",
                {"followUpsStarted": [*campaign.followUpsStarted, step]},
                step=step,
            )
        if (
            step in campaign.followUpsEnded
            or step not in campaign.followUpsStarted
            or len(batches_done) < batch_count(campaign.nextSeq)
        ):
            return Planned("followUpEnded")
        return Planned(
            "followUpEnded", {"followUpsEnded": [*campaign.followUpsEnded, step]}, step=step
        )

    with contextlib.suppress(LostToStatusChange, NotFound, Conflict):
        await history.change(tenant, Campaign, str(campaign_id), plan, what="campaign")
