"""Beanie documents: the shape of what is stored, and the indexes that keep it honest."""

from beanie import Document

from models.campaign import Campaign
from models.contact import Contact
from models.history import Change
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
    Change,
]

__all__ = [
    "DOCUMENT_MODELS",
    "Campaign",
    "Change",
    "Contact",
    "IdempotencyRecord",
    "IdempotencyTakeover",
    "Recipient",
    "User",
]
