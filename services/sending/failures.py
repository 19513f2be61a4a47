"""Who did not get a campaign's message, why in plain words, and sending it again where that can
help (`retryFailed`).

A failure is read from where it was recorded: the provider refusing a send (the recipient's
`errorCode`), the carrier reporting it undelivered (its `DeliveryReport`), a recipient skipped
at send time (opted out, deleted, a missing value), or an outcome a dead sender left unknown;
the same for each follow-up step, from its `StepSend` record (a step a reply stopped is no
failure).
Each code has one entry in `REASONS`: what happened, and whether sending again can help (a
phone that was off can get a retry; a number that does not exist, carrier filtering of the
content, an opt-out or an unknown outcome cannot, and are never resent).

A retry is a numbered change of the campaign (`completed → sending`, action `retry`) that
resets the chosen recipients to `pending` under a new round; the dispatcher sends each batch's
round as a unit of its own (`leases.RETRY_UNIT`) with a new idempotency key per recipient
(`"<id>:r<round>"`), so a provider that keeps keys does not answer with the failed message. A
recipient is resent at most once over all rounds. Only first messages are resent: a step that
failed is listed (with its `step`) but never sent again.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bson import ObjectId

from core.errors import FieldError, InvalidInput, InvalidTransition
from models import Campaign, DeliveryReport, Recipient, StepSend
from models.campaign import CampaignStatus
from models.followup import StepStatus
from models.recipient import DeliveryStatus, RecipientStatus
from services.campaigns.queries import get_campaign
from services.storage import history
from services.storage.history import LostToStatusChange, Planned
from services.storage.tenancy import Tenant


class FailureStage(StrEnum):
    """Where a message was lost."""

    SEND = "send"
    """The provider refused it."""
    DELIVERY = "delivery"
    """The provider accepted it; the carrier reported it undelivered."""
    SKIPPED = "skipped"
    """Never sent: the contact opted out, was deleted or lacked a template value."""
    UNKNOWN = "unknown"
    """Handed over by a sender that died before the answer: never resent blindly."""


@dataclass(frozen=True)
class Reason:
    text: str
    retryable: bool


REASONS: dict[str, Reason] = {
    # Twilio's delivery error codes (status callbacks)
    "30001": Reason("The provider's queue overflowed", True),
    "30002": Reason("The messaging account is suspended", False),
    "30003": Reason("The handset was unreachable (off or out of coverage)", True),
    "30004": Reason("The recipient blocked the message", False),
    "30005": Reason("The number does not exist or is no longer in service", False),
    "30006": Reason("A landline or a carrier that cannot receive texts", False),
    "30007": Reason("The carrier filtered the message (content or registration)", False),
    "30008": Reason("An unknown error at the carrier", True),
    "30009": Reason("A segment of the message was lost", True),
    "30010": Reason("The message cost more than the account's limit", False),
    "30034": Reason("The sender is not registered for A2P 10DLC", False),
    # refused when sent
    "INVALID_NUMBER": Reason("The number is not a valid mobile number", False),
    "TWILIO_UNREACHABLE": Reason("The provider could not be reached, after retries", True),
    "TWILIO_429": Reason("The provider was rate limiting, after retries", True),
    "TWILIO_500": Reason("The provider failed, after retries", True),
    "TWILIO_502": Reason("The provider failed, after retries", True),
    "TWILIO_503": Reason("The provider was unavailable, after retries", True),
    "TWILIO_504": Reason("The provider timed out, after retries", True),
    "TWILIO_21408": Reason("Sending to this country is not enabled", False),
    "TWILIO_21612": Reason("The sender cannot reach this number", False),
    "SIMULATED_5XX": Reason("The simulated provider failed, after retries", True),
    "INVALID_TEMPLATE": Reason("The message could not be rendered", False),
    "MESSAGE_TOO_LONG": Reason("The rendered message is over the segment limit", False),
    # skipped or unknown
    "OPTED_OUT": Reason("The contact opted out", False),
    "SUPPRESSED": Reason("The number is on the organization's suppression list", False),
    "CONTACT_DELETED": Reason("The contact was deleted", False),
    "MISSING_FIELDS": Reason("The contact lacks a value the template needs", False),
    "NO_SENDING_WINDOW": Reason(
        "The organization's sending window never overlaps the state's hours for texts", False
    ),
    "OUTCOME_UNKNOWN": Reason(
        "The sender stopped while handing it over; it may have gone, so it is never resent",
        False,
    ),
}


def reason_for(code: str | None) -> Reason:
    """The entry for a code; an unlisted one is explained by its code and not retried."""
    if code and code in REASONS:
        return REASONS[code]
    if code and code.startswith("TWILIO_5"):
        return Reason("The provider failed, after retries", True)
    return Reason(f"Provider error {code or 'without a code'}", False)


@dataclass(frozen=True)
class Failure:
    """How many recipients were lost one way, at one message (`step` None: the first one)."""

    stage: FailureStage
    code: str
    reason: str
    retryable: bool
    count: int
    step: int | None = None


@dataclass
class _Lost:
    stage: FailureStage
    code: str
    row: dict[str, Any]
    step: int | None = None


FAILED_DELIVERY = [DeliveryStatus.UNDELIVERED.value, DeliveryStatus.FAILED.value]


STAGES = {
    RecipientStatus.FAILED.value: FailureStage.SEND,
    RecipientStatus.SKIPPED.value: FailureStage.SKIPPED,
    RecipientStatus.UNKNOWN.value: FailureStage.UNKNOWN,
}
"""A first message's or a step's status, the stage it was lost at (the values are the same)."""


async def _lost(tenant: Tenant, campaign_id: ObjectId, *, steps: bool = True) -> list[_Lost]:
    """Every message of the campaign that did not reach its recipient, with where and why
    (with `steps`, the follow-ups' too): reads by `{campaignId, status}` and
    `{campaignId, deliveryStatus}`, so the cost follows the failures, not the campaign's size."""
    out: list[_Lost] = []
    fields = {"errorCode": 1, "batch": 1, "retryRound": 1, "status": 1}
    for status, stage in STAGES.items():
        async for row in tenant.raw_find(
            Recipient, {"campaignId": campaign_id, "status": status}, fields
        ):
            code = row.get("errorCode") or (
                "OUTCOME_UNKNOWN" if stage is FailureStage.UNKNOWN else ""
            )
            out.append(_Lost(stage, code, row))
    reports = await tenant.raw_find(
        DeliveryReport,
        {"campaignId": campaign_id, "status": {"$in": FAILED_DELIVERY}},
        {"recipientId": 1, "errorCode": 1, "round": 1, "step": 1},
    ).to_list()
    reports = [r for r in reports if not r.get("step")]  # steps count from their `StepSend`
    if reports:
        current = {
            row["_id"]: row
            for row in await tenant.raw_find_in(
                Recipient, "_id", [r["recipientId"] for r in reports], fields
            )
        }
        for report in reports:
            found = current.get(report["recipientId"])
            # Only a report about the message the recipient has now (a retry replaces it).
            if found is None or int(report.get("round") or 0) != int(found.get("retryRound") or 0):
                continue
            if found.get("status") != RecipientStatus.SENT.value:
                continue
            out.append(_Lost(FailureStage.DELIVERY, report.get("errorCode") or "", found))
    if steps:
        out.extend(await _lost_steps(tenant, campaign_id))
    return out


async def _lost_steps(tenant: Tenant, campaign_id: ObjectId) -> list[_Lost]:
    """The follow-up steps that did not reach their recipient: refused, skipped, left unknown,
    or reported undelivered by the carrier."""
    out: list[_Lost] = []
    fields = {"step": 1, "status": 1, "errorCode": 1, "deliveryErrorCode": 1}
    for status in (StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.UNKNOWN):
        stage = STAGES[status.value]
        async for row in tenant.raw_find(
            StepSend, {"campaignId": campaign_id, "status": status.value}, fields
        ):
            code = row.get("errorCode") or (
                "OUTCOME_UNKNOWN" if stage is FailureStage.UNKNOWN else ""
            )
            out.append(_Lost(stage, code, row, int(row["step"])))
    async for row in tenant.raw_find(
        StepSend, {"campaignId": campaign_id, "deliveryStatus": {"$in": FAILED_DELIVERY}}, fields
    ):
        # A step left unknown that a report shows went is counted once, as unknown.
        if row.get("status") == StepStatus.SENT.value:
            code = row.get("deliveryErrorCode") or ""
            out.append(_Lost(FailureStage.DELIVERY, code, row, int(row["step"])))
    return out


async def failure_report(tenant: Tenant, campaign_id: str) -> list[Failure]:
    """The campaign's failures counted by stage and code, most frequent first (the campaign
    must be the caller's)."""
    campaign = await get_campaign(tenant, campaign_id)
    assert campaign.id is not None
    lost = await _lost(tenant, campaign.id)
    counts = Counter((one.stage, one.code, one.step) for one in lost)
    failures = []
    for (stage, code, step), count in counts.items():
        reason = reason_for(code)
        retryable = reason.retryable and stage in (FailureStage.SEND, FailureStage.DELIVERY)
        failures.append(Failure(stage, code, reason.text, retryable, count, step))
    failures.sort(key=lambda f: (-f.count, f.stage.value, f.code, -1 if f.step is None else f.step))
    return failures


async def retry_failed(
    tenant: Tenant, campaign_id: str, codes: Sequence[str] | None = None
) -> Campaign:
    """Sends once more to the completed campaign's recipients whose first message failed in a
    way a retry may help (only those codes, if given), never to one resent before. Follow-up
    steps are not resent: a step goes at most once (its record's id is the claim)."""
    wanted = set(codes) if codes else None
    errors = [
        FieldError(
            ("codes", str(i)),
            "NOT_RETRYABLE",
            f"{code}: {reason_for(code).text}; sending again cannot help",
        )
        for i, code in enumerate(codes or [])
        if not reason_for(code).retryable
    ]
    if errors:
        raise InvalidInput("Some codes are not retryable", errors)

    async def plan(campaign: Campaign) -> Planned:
        if campaign.status is not CampaignStatus.COMPLETED:
            raise InvalidTransition("retry", campaign.status.value)
        assert campaign.id is not None
        chosen = [
            lost
            for lost in await _lost(tenant, campaign.id, steps=False)
            if lost.stage in (FailureStage.SEND, FailureStage.DELIVERY)
            and reason_for(lost.code).retryable
            and (wanted is None or lost.code in wanted)
            and not int(lost.row.get("retryRound") or 0)
        ]
        if not chosen:
            message = "No recipient of this campaign has a failure a retry can help"
            raise InvalidInput(message, [FieldError(("codes",), "NOTHING_TO_RETRY", message)])
        round = campaign.retryRound + 1
        by_batch: dict[int, list[ObjectId]] = defaultdict(list)
        for lost in chosen:
            by_batch[int(lost.row["batch"])].append(lost.row["_id"])
        reset = [
            {"campaignId": campaign.id, "batch": batch, "ids": ids, "round": round}
            for batch, ids in sorted(by_batch.items())
        ]
        stats = campaign.stats.model_copy(update={"retried": campaign.stats.retried + len(chosen)})
        return Planned(
            "retry",
            {
                "status": CampaignStatus.SENDING.value,
                "retryRound": round,
                "retryBatches": sorted(by_batch),
                "stats": stats.model_dump(),
            },
            CampaignStatus.COMPLETED.value,
            CampaignStatus.SENDING.value,
            {"resetRecipients": reset},
        )

    try:
        campaign, _ = await history.change(tenant, Campaign, campaign_id, plan, what="campaign")
    except LostToStatusChange as lost:
        raise InvalidTransition("retry", lost.status) from None
    return campaign
