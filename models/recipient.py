"""One (campaign, contact) pair: the unit of sending."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

import pymongo
from beanie import PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


class RecipientStatus(StrEnum):
    """Where a single message is: `pending → sending → sent | failed | skipped | unknown`.

    `unknown`: handed to a provider that keeps no idempotency keys by a sender that then died,
    so whether it went out cannot be known; it is never resent blindly.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


class DeliveryStatus(StrEnum):
    """What the carrier reported after the provider accepted a message (Twilio's status
    callbacks). It only moves forward: `queued → sent → delivered | undelivered | failed`."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


DELIVERY_RANK = {
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENT: 2,
    DeliveryStatus.DELIVERED: 3,
    DeliveryStatus.UNDELIVERED: 3,
    DeliveryStatus.FAILED: 3,
}
"""A report replaces the recorded one only with a higher rank: callbacks arrive late, twice
and out of order, and a late `sent` must not undo `delivered`."""


RECIPIENT_BATCH = 100
"""Recipients per `batch`: the unit that pages and sends are read by, with one equality."""
HEAD_SIZE = 21
"""The first recipients of a campaign carry `head: true`, for lists that show a few of each: a
page of up to 20 (GraphQL's default) plus the one that says whether more follow. A campaign
with fewer head recipients has a longer first page completed from its first batch
(`first_recipients` sees the gap)."""


RecipientRow: TypeAlias = Mapping[str, Any]
"""A stored recipient as the driver read it. Pages of recipients are only shown, never saved,
so read paths skip building a `Recipient` model per row (Beanie's parsing is the costly part)
and `RecipientOut.of` maps the stored fields once."""


class Recipient(TenantDocument):
    """Kept outside the campaign so a 100,000-contact campaign stays far from 16 MB.

    `seq` numbers a campaign's recipients from 0 in the order they were added, and
    `batch = seq // RECIPIENT_BATCH`. Reads go by `{campaignId, batch}` equality plus a `seq`
    range: an index range on MongoDB, and a pushed-down equality on FerretDB, which does not
    push ranges or sorts down.
    """

    campaignId: PydanticObjectId
    contactId: PydanticObjectId
    contactPage: int | None = None
    """The contact's list page (fixed when the contact was created): the dispatcher reads a
    batch's contacts a page at a time, by equality, instead of one lookup per recipient."""
    seq: int = 0
    batch: int = 0
    head: bool = False
    status: RecipientStatus = RecipientStatus.PENDING
    assignedTo: PydanticObjectId | None = None
    providerMessageId: str | None = None
    error: str | None = None
    attempts: int = 0
    sentAt: datetime | None = None
    errorCode: str | None = None
    """Why it failed or was skipped, machine-readable (`OPTED_OUT`, `INVALID_NUMBER`, ...)."""
    deliveryStatus: DeliveryStatus | None = None
    deliveryRank: int = 0
    deliveryErrorCode: str | None = None
    deliveryUpdatedAt: datetime | None = None
    replied: bool = False
    """The contact answered this campaign (the first reply attributed to it; see
    `models.conversation.Reply`). Delivery states keep their own fields."""
    repliedAt: datetime | None = None
    sender: str | None = None
    """The `Sender` key it went out from; unset means the deployment's shared sender."""
    retryRound: int = 0
    """The `retryFailed` round that resent it (its idempotency key is then
    `"<id>:r<round>"`); 0: never resent."""
    leaseEpoch: int | None = None
    """The lease epoch of the sender that marked it `sending`: a later holder finding it
    `sending` under an older epoch knows that sender died mid-send."""

    class Settings:
        name = "recipients"
        shard_key = ("organizationId", "campaignId")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("contactId", pymongo.ASCENDING),
                ],
                name="org_campaign_contact_unique",
                unique=True,
            ),
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("seq", pymongo.ASCENDING),
                ],
                name="org_campaign_status_seq",
            ),
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("batch", pymongo.ASCENDING),
                    ("seq", pymongo.ASCENDING),
                ],
                name="org_campaign_batch_seq",
            ),
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("head", pymongo.ASCENDING),
                    ("seq", pymongo.ASCENDING),
                ],
                name="org_campaign_head_seq",
            ),
            # A contact's thread and a reply's attribution read its recipients by equality.
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("contactId", pymongo.ASCENDING)],
                name="org_contact",
            ),
        ]
