"""Conversations: an organization's senders, the messages kept both ways, and what marks a reply.

Outbound campaign sends are not stored here: a contact's thread reads them from the recipient
records (the dispatcher's one source of truth) and stores only what no recipient records —
messages received, and messages a rep sent.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import pymongo
from beanie import Document, PydanticObjectId
from pymongo import IndexModel

from models.base import TenantDocument


def sender_key(*, phone: str | None = None, service: str | None = None) -> str:
    """The `_id` of a sender: one key space for numbers and messaging services, so the primary
    key alone makes one sender belong to one organization."""
    if service:
        return f"service:{service}"
    assert phone, "a sender is a number or a messaging service"
    return f"phone:{phone}"


class Sender(TenantDocument):
    """A Twilio number or messaging service owned by one organization.

    `_id` is `sender_key(...)`: a second organization inserting the same sender is a duplicate
    key, decided by the server, never by a read. Inbound messages are routed by looking the
    sender up by `_id`, the one lookup that names no organization and needs none.
    """

    id: str | None = None  # type: ignore[assignment]
    phoneNumber: str | None = None
    messagingServiceSid: str | None = None
    position: int = 0
    """Its place in the organization's list, as the admin gave it."""

    class Settings:
        name = "senders"
        shard_key = None
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("position", pymongo.ASCENDING)],
                name="org_position",
            ),
        ]


class ContactSender(TenantDocument):
    """The sender a contact hears from: `_id` is `"<organizationId>:<contactId>"`.

    Inserted at the contact's first send and kept while the organization owns that sender, so
    changing the organization's list does not move contacts; two first sends at once insert one
    and both read it back.
    """

    id: str | None = None  # type: ignore[assignment]
    contactId: PydanticObjectId
    sender: str

    class Settings:
        name = "contact_senders"
        shard_key = ("organizationId", "_id")


class Direction(StrEnum):
    """Which way a message went."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageStatus(StrEnum):
    """Where a message is: inbound ones are `received`; outbound ones move `waiting` (quiet
    hours) or `sending` → `sent` → `delivered | undelivered | failed`."""

    RECEIVED = "received"
    WAITING = "waiting"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"


class Message(TenantDocument):
    """One stored message of a contact's thread (campaign sends are read from recipients).

    `providerMessageId` is unique per organization: Twilio's retries of one inbound message
    store it once. An outbound message holds `local:<its id>` until the provider names it.
    """

    contactId: PydanticObjectId
    direction: Direction
    body: str = ""
    media: list[str] = []
    fromNumber: str | None = None
    toNumber: str | None = None
    sender: str | None = None
    """The `Sender` key it came in on or went out from (the shared deployment sender's key when
    the organization has none)."""
    providerMessageId: str
    status: MessageStatus
    errorCode: str | None = None
    campaignId: PydanticObjectId | None = None
    """The campaign an inbound message was attributed to (a reply), if any."""
    sentBy: PydanticObjectId | None = None
    """The rep who wrote an outbound message."""
    keyword: str | None = None
    """`opt_out`, `opt_in` or `help` when the message was read as one."""
    nextSendAt: datetime | None = None
    """When an outbound message waiting for quiet hours goes out."""
    deliveryRank: int = 0
    firstMessage: bool = False
    """An outbound message holding the contact's first-message marker (it carries the opt-out
    footer, `services.organizations.footer`): given back if the provider refuses it."""

    class Settings:
        name = "messages"
        shard_key = ("organizationId", "providerMessageId")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("providerMessageId", pymongo.ASCENDING),
                ],
                name="org_provider_id_unique",
                unique=True,
            ),
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("contactId", pymongo.ASCENDING)],
                name="org_contact",
            ),
            # Held messages are found in every organization, as the dispatcher finds campaigns.
            IndexModel([("status", pymongo.ASCENDING)], name="status_across_organizations"),
        ]


class Reply(TenantDocument):
    """A contact's first reply to a campaign: `_id` is `"<campaignId>:<contactId>"`.

    Inserting it is what marks the reply, so however many replies race, one wins; a campaign's
    `replied` is the count of these, by equality, and no counter document has two writers.
    """

    id: str | None = None  # type: ignore[assignment]
    campaignId: PydanticObjectId
    contactId: PydanticObjectId
    recipientId: PydanticObjectId
    messageId: PydanticObjectId
    repliedAt: datetime
    step: int = 0
    """The last step the contact had been sent when it replied (0: the first message)."""

    class Settings:
        name = "replies"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(  # a campaign's replies, and its follow-up steps'
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("campaignId", pymongo.ASCENDING),
                    ("step", pymongo.ASCENDING),
                ],
                name="org_campaign_step",
            ),
        ]


ACTIVITY_PAGE = 50
"""Activity entries per page: an inbox page reads whole pages by `{organizationId, page}`."""


class Activity(TenantDocument):
    """One entry of an organization's append-only inbox log: a message stored in a thread.

    `_id` is `"<organizationId>:<n>"`, `n` numbered densely from 0 by a unique insert, and
    `page = n // ACTIVITY_PAGE`. The inbox reads pages from the last one back, by equality (a
    sort FerretDB cannot push down is never asked for); a contact's older entries are skipped.
    """

    id: str | None = None  # type: ignore[assignment]
    n: int
    page: int
    contactId: PydanticObjectId
    messageId: PydanticObjectId
    direction: Direction
    at: datetime

    class Settings:
        name = "activity"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("page", pymongo.ASCENDING)],
                name="org_page",
            ),
            # A contact's entries: its summary's position is the newest of them.
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("contactId", pymongo.ASCENDING)],
                name="org_contact",
            ),
        ]


SUMMARY_BUCKET = 50
"""Activity numbers per summary bucket: an inbox page reads whole buckets by equality."""


class ConversationSummary(TenantDocument):
    """A contact's conversation as the inbox lists it, kept by every writer of its sources.

    `_id` is `"<organizationId>:<contactId>"`. `n` is the contact's newest activity entry and
    `bucket = n // SUMMARY_BUCKET`, so an inbox page reads `{organizationId, bucket}` by
    equality from the newest bucket down: as activity arrives a summary moves up to a newer
    bucket. It is derived from the thread's records (messages, recipients, steps, the reps'
    events, the activity log) and never the other way round
    (`services.conversations.summaries`).
    """

    id: str | None = None  # type: ignore[assignment]
    contactId: PydanticObjectId
    n: int
    bucket: int
    """-1 while the contact has no activity entry (not listed; read by its contact alone)."""
    lastMessage: dict[str, Any]
    lastStored: PydanticObjectId
    unreadCount: int
    unread: bool
    assigned: PydanticObjectId | None = None
    """The rep it was assigned to, else the rep of the campaign the latest reply answered;
    when None the owner is the contact's own `assignedTo`, read with the contact."""
    campaignIds: list[PydanticObjectId] = []

    class Settings:
        name = "conversation_summaries"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("bucket", pymongo.ASCENDING)],
                name="org_bucket",
            ),
        ]


class ConversationEvent(TenantDocument):
    """A rep's mark on a conversation, appended, never updated: `read` (up to `at`) or
    `assign` (to `userId`). The latest of each kind wins, so two reps acting at once never
    write one document."""

    contactId: PydanticObjectId
    kind: str
    userId: PydanticObjectId | None = None
    at: datetime

    class Settings:
        name = "conversation_events"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("contactId", pymongo.ASCENDING)],
                name="org_contact",
            ),
        ]


class MessageSend(TenantDocument):
    """The claim to hand one outbound message to the provider: `_id` is the message's id.

    Whoever inserts it sends; a retry, a second process or a resumed request finds it taken
    and never sends the message again (the provider may keep no idempotency keys)."""

    id: str | None = None  # type: ignore[assignment]

    class Settings:
        name = "message_sends"
        shard_key = ("organizationId", "_id")


class PendingInbound(Document):
    """An inbound message accepted from the provider and not yet applied (stored, attributed,
    summarised): the webhook answers once this is written, and whoever applies it deletes it.
    Not tenant data yet: which organization it belongs to is decided when it is applied.

    `_id` is the provider's `MessageSid`, so Twilio's retries of one message accept it once.
    """

    id: str | None = None  # type: ignore[assignment]
    form: list[dict[str, str]] | dict[str, str]
    """The webhook's fields as `{name, value}` entries: any name is kept, even one a document
    could not hold as a field name (`$where`, `a.b`). Records accepted by older versions hold
    a document."""
    receivedAt: datetime
    attempts: int = 0
    """How many times a sweep has taken it up after its first applier did not finish."""
    failed: bool = False
    """Set after the last attempt failed: sweeps leave it for an operator."""

    class Settings:
        name = "inbound_pending"
        shard_key = None
        indexes = [
            IndexModel(
                [("failed", pymongo.ASCENDING), ("receivedAt", pymongo.ASCENDING)],
                name="failed_received_at",
            )
        ]
