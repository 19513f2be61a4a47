"""Beanie documents: the shape of what is stored, and the indexes that keep it honest."""

from beanie import Document

from models.campaign import Campaign
from models.compliance import FirstMessage, Suppression
from models.contact import Contact, ContactPage
from models.conversation import (
    Activity,
    ConversationEvent,
    Message,
    MessageSend,
    Reply,
    Sender,
)
from models.delivery import DeliveryReport
from models.dispatch import BatchCounts, BatchLease, SendSlot
from models.followup import StepSend
from models.history import Change
from models.idempotency import IdempotencyRecord, IdempotencyTakeover
from models.organization import Organization
from models.recipient import Recipient
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
    BatchLease,
    BatchCounts,
    SendSlot,
    DeliveryReport,
    Organization,
    Sender,
    Message,
    Reply,
    Activity,
    ConversationEvent,
    MessageSend,
    StepSend,
    Suppression,
    FirstMessage,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Activity",
    "BatchCounts",
    "BatchLease",
    "Campaign",
    "Change",
    "Contact",
    "ContactPage",
    "ConversationEvent",
    "DeliveryReport",
    "FirstMessage",
    "IdempotencyRecord",
    "IdempotencyTakeover",
    "Message",
    "MessageSend",
    "Organization",
    "Recipient",
    "Reply",
    "SendSlot",
    "Sender",
    "StepSend",
    "Suppression",
    "User",
]
