"""A campaign: a message template, a schedule, and counters kept true by atomic `$inc`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import pymongo
from beanie import PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field
from pymongo import IndexModel

from models.base import TenantDocument


class CampaignStatus(StrEnum):
    """Lifecycle: `draft → scheduled → sending → completed`, plus `paused` and `cancelled`."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class CampaignType(StrEnum):
    """The channel; only SMS is sent today."""

    SMS = "sms"


class CreatedBy(BaseModel):
    """Who created the campaign, denormalised so listing campaigns needs no user lookup."""

    model_config = ConfigDict(populate_by_name=True)

    id: PydanticObjectId = Field(alias="_id")
    fullName: str


class FailedDetail(BaseModel):
    """One part of the input that was left out of the campaign, and why."""

    source: str
    index: int | None = None
    field: str | None = None
    value: str | None = None
    code: str
    message: str


class CampaignStats(BaseModel):
    """Counters; `successRate` is derived on read so `$inc` alone keeps them consistent."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def success_rate(self) -> str:
        """Returns sent / processed as the legacy string ("0%" until something is processed)."""
        processed = self.sent + self.failed
        return f"{round(100 * self.sent / processed)}%" if processed else "0%"


class MessageStats(BaseModel):
    """What one message will cost, computed for the longest rendering across recipients."""

    encoding: str
    segments: int
    characters: int
    recipientsMissingValues: int = 0


class Campaign(TenantDocument):
    """Recipients live in their own collection; `stats.total` counts them."""

    name: str
    message: str
    type: CampaignType = CampaignType.SMS
    status: CampaignStatus = CampaignStatus.DRAFT
    scheduleDate: datetime | None = None
    process: str | None = None
    contactStatus: str | None = None
    isAutopilot: bool = False
    segmentation: dict[str, Any] | None = None
    assignment: dict[str, Any] | None = None
    createdBy: CreatedBy
    failedUserIds: list[str] = []
    failedDetails: list[FailedDetail] = []
    failedDetailsTotal: int = 0
    """How many parts failed; `failedDetails` keeps the first 1,000 of them."""
    stats: CampaignStats = Field(default_factory=CampaignStats)
    messageStats: MessageStats | None = None

    class Settings:
        name = "campaigns"
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("scheduleDate", pymongo.ASCENDING),
                ],
                name="org_status_schedule",
            ),
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("createdAt", pymongo.DESCENDING)],
                name="org_created",
            ),
        ]
