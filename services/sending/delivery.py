"""What happens after a message left: carrier delivery reports.

They arrive as provider webhooks, already verified by the route. A report names the recipient
and its organization (both ride in the callback URL, `services.sending.twilio`), so the
recipient is read within that organization (one shard of a sharded deployment) and every write
goes through its scope. An organization that is not the recipient's finds nothing, as an
unknown recipient. Messages sent before the organization rode in the URL report without it:
theirs are looked for in every organization (`reported`). Replies are the conversations
domain's (`services.conversations.inbound`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from beanie import Document
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from core.errors import NotFound
from models import DeliveryReport, Recipient, StepSend
from models.recipient import DELIVERY_RANK, DeliveryStatus
from services.contacts import edits as contact_edits
from services.sending import observers
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

D = TypeVar("D", bound=Document)

TWILIO_STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
}
"""Twilio's `MessageStatus` values, read as delivery states (`canceled` and the inbound
statuses are not reports about a message sent here)."""

UNSUBSCRIBED_ERROR = "21610"


class Outcome(StrEnum):
    """What a webhook did, for the log and the `webhook_events_total` metric."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    IGNORED = "ignored"
    UNKNOWN_RECIPIENT = "unknown_recipient"


async def reported(
    model: type[D],
    key: ObjectId | str,
    organization: str | None,
    projection: Mapping[str, Any],
) -> tuple[Tenant, dict[str, Any]] | None:
    """What a report is about, and its organization's scope; None when no such document is in
    the organization the report names (another's, or not an id at all).

    `organization` None: a callback URL from before the organization rode in it, so the
    document is looked for in every organization (on a sharded deployment, on every shard)."""
    if organization is None:
        found = await Tenant.across_organizations(
            model, {"_id": key}, {**projection, "organizationId": 1}
        )
        if not found:
            return None
        return Tenant.for_organization(found[0]["organizationId"]), found[0]
    if not ObjectId.is_valid(organization):
        return None
    tenant = Tenant.for_organization(organization)
    rows = await tenant.raw_find(model, {"_id": key}, projection).to_list()
    return (tenant, rows[0]) if rows else None


async def record_status(
    recipient_id: str,
    status: str,
    message_sid: str | None,
    error_code: str | None,
    organization: str | None = None,
) -> Outcome:
    """Records one delivery report about a message of `organization` (None: a report from
    before callbacks named it); late, repeated and out-of-order reports are harmless."""
    delivery = TWILIO_STATUSES.get(status.strip().lower())
    if delivery is None:
        return Outcome.IGNORED
    about, _, retry = recipient_id.partition(":r")
    if ":" in about:
        return await _record_step_status(
            recipient_id, delivery, message_sid, error_code, organization
        )
    if not ObjectId.is_valid(about) or (retry and not retry.isdigit()):
        return Outcome.UNKNOWN_RECIPIENT
    rid, round = ObjectId(about), int(retry or 0)
    found = await reported(
        Recipient,
        rid,
        organization,
        {"providerMessageId": 1, "contactId": 1, "campaignId": 1, "retryRound": 1},
    )
    if found is None:
        return Outcome.UNKNOWN_RECIPIENT
    tenant, row = found
    if int(row.get("retryRound") or 0) != round:
        return Outcome.STALE  # about a message a retry has replaced (or not sent yet)
    known_sid = row.get("providerMessageId")
    if message_sid and known_sid and known_sid != message_sid:
        return Outcome.IGNORED  # about another message than the one recorded
    rank = DELIVERY_RANK[delivery]
    report = DeliveryReport(
        id=f"{rid}:r{round}:{delivery.value}" if round else f"{rid}:{delivery.value}",
        organizationId=tenant.organization_id,
        recipientId=rid,
        status=delivery.value,
        rank=rank,
        messageSid=message_sid,
        errorCode=error_code or None,
        campaignId=row.get("campaignId"),
        round=round,
    )
    outcome = Outcome.APPLIED
    try:
        await tenant.insert(report)
    except DuplicateKeyError:
        outcome = Outcome.DUPLICATE
    if error_code == UNSUBSCRIBED_ERROR:
        await opt_out_unsubscribed(tenant, row["contactId"])
    advanced = await _advance(tenant, rid, delivery, rank, error_code)
    if outcome is Outcome.APPLIED and not advanced:
        outcome = Outcome.STALE
    await _repair(tenant, rid, round)
    if advanced:
        await observers.threads_changed(tenant, [row["contactId"]])
    return outcome


async def _record_step_status(
    key: str,
    delivery: DeliveryStatus,
    message_sid: str | None,
    error_code: str | None,
    organization: str | None,
) -> Outcome:
    """A report about a follow-up step (`"<recipient>:<step>"`, its `StepSend`'s id): kept as a
    report and moving the step's delivery state forward, never back, as for first messages."""
    rid, _, step = key.partition(":")
    if not ObjectId.is_valid(rid) or not step.isdigit():
        return Outcome.UNKNOWN_RECIPIENT
    found = await reported(
        StepSend, key, organization, {"providerMessageId": 1, "contactId": 1, "campaignId": 1}
    )
    if found is None:
        return Outcome.UNKNOWN_RECIPIENT
    tenant, row = found
    known_sid = row.get("providerMessageId")
    if message_sid and known_sid and known_sid != message_sid:
        return Outcome.IGNORED
    rank = DELIVERY_RANK[delivery]
    report = DeliveryReport(
        id=f"{key}:{delivery.value}",
        organizationId=tenant.organization_id,
        recipientId=ObjectId(rid),
        status=delivery.value,
        rank=rank,
        messageSid=message_sid,
        errorCode=error_code or None,
        campaignId=row.get("campaignId"),
        step=int(step),
    )
    outcome = Outcome.APPLIED
    try:
        await tenant.insert(report)
    except DuplicateKeyError:
        outcome = Outcome.DUPLICATE
    if error_code == UNSUBSCRIBED_ERROR:
        await opt_out_unsubscribed(tenant, row["contactId"])
    advanced = await _advance_step(tenant, key, delivery, rank, error_code)
    if not advanced:
        outcome = Outcome.STALE if outcome is Outcome.APPLIED else outcome
    # As for first messages (`_repair`): a racing lower update may have applied last.
    best = await _best_report(tenant, ObjectId(rid), round=0, step=int(step))
    current = await tenant.raw_find(StepSend, {"_id": key}, {"deliveryRank": 1}).to_list()
    if best and current and int(current[0].get("deliveryRank") or 0) < int(best["rank"]):
        await _advance_step(
            tenant, key, DeliveryStatus(best["status"]), int(best["rank"]), best.get("errorCode")
        )
    if advanced:
        await observers.threads_changed(tenant, [row["contactId"]])
    return outcome


async def _advance_step(
    tenant: Tenant, key: str, delivery: DeliveryStatus, rank: int, error_code: str | None
) -> bool:
    """Moves the step's delivery state forward; never back (a conditional update)."""
    matched = await tenant.update_many(
        StepSend,
        {"_id": key, "deliveryRank": {"$lt": rank}},
        {
            "$set": {
                "deliveryStatus": delivery.value,
                "deliveryRank": rank,
                "deliveryErrorCode": error_code or None,
            }
        },
    )
    return matched > 0


async def _best_report(
    tenant: Tenant, rid: ObjectId, *, round: int, step: int
) -> dict[str, Any] | None:
    """The highest report kept about one message of the recipient (the first message of a
    retry round, or a step)."""
    reports = await tenant.raw_find(DeliveryReport, {"recipientId": rid}).to_list()
    mine = [
        r for r in reports if int(r.get("round") or 0) == round and int(r.get("step") or 0) == step
    ]
    return max(mine, key=lambda r: (int(r["rank"]), r["createdAt"])) if mine else None


async def _advance(
    tenant: Tenant, rid: ObjectId, delivery: DeliveryStatus, rank: int, error_code: str | None
) -> bool:
    """Moves the recipient's delivery state forward; never back (a conditional update)."""
    matched = await tenant.update_many(
        Recipient,
        {
            "_id": rid,
            "$or": [{"deliveryRank": {"$exists": False}}, {"deliveryRank": {"$lt": rank}}],
        },
        {
            "$set": {
                "deliveryStatus": delivery.value,
                "deliveryRank": rank,
                "deliveryErrorCode": error_code or None,
                "deliveryUpdatedAt": Tenant.now(),
            }
        },
    )
    return matched > 0


async def _repair(tenant: Tenant, rid: ObjectId, round: int) -> None:
    """Sets the recipient to its highest report if a racing update left it lower.

    On MongoDB the conditional update above is atomic and this finds nothing to do. FerretDB
    reads and writes a conditional update in two steps, so two reports at once can both
    apply, the lower one last; the reports themselves are inserts (each kept exactly once), so
    the highest is always known."""
    best = await _best_report(tenant, rid, round=round, step=0)
    if best is None:
        return
    current = await tenant.raw_find(Recipient, {"_id": rid}, {"deliveryRank": 1}).to_list()
    if current and int(current[0].get("deliveryRank") or 0) < int(best["rank"]):
        await _advance(
            tenant, rid, DeliveryStatus(best["status"]), int(best["rank"]), best.get("errorCode")
        )


async def opt_out_unsubscribed(tenant: Tenant, contact_id: ObjectId) -> None:
    """The provider refused a message because the number unsubscribed there (Twilio 21610):
    the contact is opted out here too, so no campaign tries it again."""
    await _opt_out(tenant, contact_id, "Unsubscribed at the carrier (Twilio 21610)")


async def _opt_out(tenant: Tenant, contact_id: ObjectId, reason: str) -> None:
    # A contact deleted since is nothing to opt out.
    with contextlib.suppress(NotFound):
        await contact_edits.set_opt_out(tenant, str(contact_id), True, reason)
