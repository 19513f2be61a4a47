"""Follow-up sends: one record per recipient and step, inserted before the step goes out.

`_id` is `"<recipientId>:<step>"`. Inserting it is the claim on that step for that recipient:
the unique primary key admits one insert, so a step is handed to the provider at most once,
and a reply that inserts the same id first (status `stopped`) keeps the step from ever going.
Afterwards only the batch's lease holder writes to it (one writer per document).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class StepStatus(StrEnum):
    SENDING = "sending"
    """Claimed and being handed over; a later holder finding it from an older epoch knows the
    sender died mid-send."""
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    STOPPED = "stopped"
    """The contact replied or opted out before the step was claimed: it never goes."""


class StepSend(TenantDocument):
    """Follow-up `step` of one recipient."""

    id: str | None = None  # type: ignore[assignment]
    campaignId: PydanticObjectId
    recipientId: PydanticObjectId
    contactId: PydanticObjectId
    batch: int
    step: int
    status: StepStatus
    epoch: int | None = None
    providerMessageId: str | None = None
    sentAt: datetime | None = None
    sender: str | None = None
    errorCode: str | None = None
    error: str | None = None
    deliveryStatus: str | None = None
    deliveryRank: int = 0
    deliveryErrorCode: str | None = None
    """The carrier's code with its last report (`30003`), shown by the campaign's failures."""
    messageId: PydanticObjectId | None = None
    """The message's id in the contact's thread."""

    class Settings:
        name = "follow_up_sends"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("batch", pymongo.ASCENDING),
                    ("step", pymongo.ASCENDING),
                ],
                name="org_campaign_batch_step",
            ),
            # A campaign's failures read its failed, skipped and unknown steps ...
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                ],
                name="org_campaign_status",
            ),
            # ... and those the carrier reported undelivered or failed.
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("deliveryStatus", pymongo.ASCENDING),
                ],
                name="org_campaign_delivery",
            ),
            # A contact's thread shows its follow-ups.
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("contactId", pymongo.ASCENDING)],
                name="org_contact",
            ),
        ]


def step_send_id(recipient_id: object, step: int) -> str:
    return f"{recipient_id}:{step}"


class FollowUpHandover(TenantDocument):
    """One provider call of a follow-up step: `_id` `"<recipientId>:<step>:<k>"`, inserted
    right before call k (`go`, then `done`), or first by a reply (`stopped`), which keeps
    every later call from starting."""

    id: str | None = None  # type: ignore[assignment]
    status: str

    class Settings:
        name = "follow_up_handovers"
        shard_key = ("organizationId", "_id")
        indexes: list[IndexModel] = []
