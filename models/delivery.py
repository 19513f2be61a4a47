"""What providers report back: one document per delivery report received."""

from __future__ import annotations

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class DeliveryReport(TenantDocument):
    """One status callback; `_id` is `"<recipientId>:<status>"`, or
    `"<recipientId>:r<round>:<status>"` about the message a `retryFailed` round resent, or
    `"<recipientId>:<step>:<status>"` about a follow-up step.

    Inserting it is how a report is recorded, so a repeated callback is a duplicate key (no
    effect), and the recipient's delivery state can always be recomputed from the reports: on
    FerretDB two conditional updates racing can both apply, and the one that lost the race is
    then repaired from here.
    """

    id: str | None = None  # type: ignore[assignment]
    recipientId: PydanticObjectId
    status: str
    rank: int
    messageSid: str | None = None
    errorCode: str | None = None
    campaignId: PydanticObjectId | None = None
    round: int = 0
    """The retry round of the message it is about (0: the first send)."""
    step: int = 0
    """The follow-up step it is about (0: the first message). A step's failures are counted
    from its `StepSend`, so the campaign's failure report reads only step 0 here."""

    class Settings:
        name = "delivery_reports"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("recipientId", pymongo.ASCENDING)],
                name="org_recipient",
            ),
            IndexModel(  # a campaign's failure report reads its carrier failures
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                ],
                name="org_campaign_status",
            ),
        ]
