"""What the dispatcher keeps in the database: batch leases and per-batch counts.

Both follow the embedded server's rule (no two writers on one document): a lease is *inserted*,
never updated into being, and only its holder writes to it afterwards; a batch's counts are
written only by the holder of that batch's lease.
"""

from __future__ import annotations

from datetime import datetime

import pymongo
from beanie import PydanticObjectId
from pydantic import BaseModel
from pymongo import IndexModel

from models.base import TenantDocument


class BatchLease(TenantDocument):
    """A claim on one batch of one campaign, for one epoch.

    `_id` is `"<campaignId>:<batch>:<epoch>"`, so inserting it is the claim and the unique primary
    key admits exactly one holder per epoch, on MongoDB as on FerretDB (whose conditional updates
    can have several winners). A newer epoch fences the older holder: before each step the holder
    checks that no later epoch exists. Records no one reads again are purged
    (`services.sending.lease_records`).
    """

    id: str | None = None  # type: ignore[assignment]
    campaignId: PydanticObjectId
    batch: int
    epoch: int
    step: int = 0
    """0 for the first message, n for follow-up n (`_id` `"<campaign>:<batch>:s<n>:<epoch>"`)."""
    owner: str
    expiresAt: datetime
    done: bool = False

    class Settings:
        name = "dispatch_leases"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(  # a unit's epochs; any later one than the holder's (fencing)
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("batch", pymongo.ASCENDING),
                    ("step", pymongo.ASCENDING),
                    ("epoch", pymongo.ASCENDING),
                ],
                name="org_campaign_batch_step_epoch",
            ),
            IndexModel(  # a campaign's finished batches, read when it may be complete
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("done", pymongo.ASCENDING),
                ],
                name="org_campaign_done",
            ),
        ]


class ZoneWait(BaseModel):
    zone: str
    state: str | None = None
    count: int
    until: datetime
    reason: str = "quiet_hours"
    """quiet_hours, or frequency_cap (then without a zone)."""


class BatchCounts(TenantDocument):
    """How one batch's recipients ended; `_id` is `"<campaignId>:<batch>"`, and
    `"<campaignId>:<batch>:s<n>"` for follow-up step n.

    A campaign's live stats are the sum over its batches (concurrent `$inc`s on the campaign
    would lose increments on FerretDB); completion folds the sum into the campaign.
    """

    id: str | None = None  # type: ignore[assignment]
    campaignId: PydanticObjectId
    batch: int
    epoch: int
    unit: int = 0
    """The lease unit that wrote them with `epoch` (the step, or `RETRY_UNIT + k` for a retry
    round): a holder writes only over an older `(unit, epoch)`."""
    step: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    stopped: int = 0
    """Follow-ups not sent because the contact replied or opted out first."""
    nextSendAt: datetime | None = None
    """When this batch's recipients waiting for quiet hours to end go out (None: none wait)."""
    waiting: int = 0
    """How many wait for it."""
    waitingZones: list[ZoneWait] = []
    """Those waiting for their window, by time zone (shown as the campaign's holds)."""
    rate: int | None = None
    """The organization's rate limit its last turn ran under (None: unlimited)."""

    class Settings:
        name = "dispatch_batch_counts"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("campaignId", pymongo.ASCENDING)],
                name="org_campaign",
            ),
        ]


class SendSlot(TenantDocument):
    """Permission for one chunk of an organization's messages in one second.

    `_id` is `"<organizationId>:<unix second>:<slot>"`, the second read from the dispatchers'
    clock; a second's slots are campaign chunks and, at the end, single units reps' messages
    take first (`services.sending.rate_slots`): inserting it is the claim, so however many
    processes send for an organization, at most `rate` messages start in any second, decided
    by the primary key alone.
    """

    id: str | None = None  # type: ignore[assignment]
    second: int
    slot: int
    size: int = 0
    """Messages it lets start."""

    class Settings:
        name = "dispatch_send_slots"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("second", pymongo.ASCENDING)],
                name="org_second",
            ),
        ]


class ContactSend(TenantDocument):
    """Campaign message number `n` to a contact, for the frequency cap; `_id` is
    `"<contactId>:<n>"`, numbers dense from 0, each claimed by its insert."""

    id: str | None = None  # type: ignore[assignment]
    contactId: PydanticObjectId
    n: int
    at: datetime
    campaignId: PydanticObjectId | None = None
    key: str
    """The message's idempotency key: one send per message, whoever holds its unit."""

    class Settings:
        name = "contact_sends"
        shard_key = None
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("key", pymongo.ASCENDING)],
                name="org_key_unique",
                unique=True,
            ),
        ]
