"""Beanie documents: the shape of what is stored, and the indexes that keep it honest."""

from beanie import Document

from models.campaign import Campaign
from models.contact import Contact
from models.idempotency import IdempotencyRecord, IdempotencyTakeover
from models.recipient import Recipient
from models.user import User

DOCUMENT_MODELS: list[type[Document]] = [
    User,
    Contact,
    Campaign,
    Recipient,
    IdempotencyRecord,
    IdempotencyTakeover,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Campaign",
    "Contact",
    "IdempotencyRecord",
    "IdempotencyTakeover",
    "Recipient",
    "User",
]
