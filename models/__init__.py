"""Beanie documents: the shape of what is stored, and the indexes that keep it honest."""

from beanie import Document

from models.campaign import Campaign, CampaignBucket, CampaignPage, CampaignSlot
from models.compliance import FirstMessage, Suppression, SuppressionPage
from models.contact import Contact, ContactPage
from models.conversation import (
    Activity,
    ContactSender,
    ConversationEvent,
    ConversationSummary,
    Message,
    MessageSend,
    PendingInbound,
    Reply,
    Sender,
)
from models.delivery import DeliveryReport
from models.dispatch import BatchCounts, BatchLease, ContactSend, SendSlot
from models.followup import FollowUpHandover, StepSend
from models.history import Change
from models.idempotency import IdempotencyRecord, IdempotencyTakeover
from models.organization import Organization
from models.recipient import Recipient
from models.storage import MigrationRecord, RequestShare, Tally
from models.user import User

DOCUMENT_MODELS: list[type[Document]] = [
    User,
    Contact,
    Campaign,
    Recipient,
    IdempotencyRecord,
    IdempotencyTakeover,
    Change,
    ContactPage,
    CampaignPage,
    CampaignSlot,
    CampaignBucket,
    BatchLease,
    BatchCounts,
    SendSlot,
    DeliveryReport,
    Organization,
    Sender,
    ContactSender,
    Message,
    Reply,
    Activity,
    ConversationEvent,
    ConversationSummary,
    MessageSend,
    StepSend,
    Suppression,
    SuppressionPage,
    FirstMessage,
    FollowUpHandover,
    ContactSend,
    Tally,
    MigrationRecord,
    RequestShare,
    PendingInbound,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Activity",
    "BatchCounts",
    "BatchLease",
    "Campaign",
    "CampaignBucket",
    "CampaignPage",
    "CampaignSlot",
    "Change",
    "Contact",
    "ContactPage",
    "ContactSend",
    "ContactSender",
    "ConversationEvent",
    "ConversationSummary",
    "DeliveryReport",
    "FirstMessage",
    "FollowUpHandover",
    "IdempotencyRecord",
    "IdempotencyTakeover",
    "Message",
    "MessageSend",
    "MigrationRecord",
    "Organization",
    "PendingInbound",
    "Recipient",
    "Reply",
    "RequestShare",
    "SendSlot",
    "Sender",
    "StepSend",
    "Suppression",
    "SuppressionPage",
    "Tally",
    "User",
]
