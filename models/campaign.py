"""A campaign: a message template, a schedule, its lifecycle status and its counters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import pymongo
from beanie import PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
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


class InitialStatus(StrEnum):
    """The statuses a campaign can be created in."""

    DRAFT = CampaignStatus.DRAFT.value
    SCHEDULED = CampaignStatus.SCHEDULED.value


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

    source: str = Field(
        description="newContacts, selectedExistingContacts, userIds, rawCsvData, segmentation, "
        "addRecipients or removeRecipients."
    )
    index: int | None = Field(
        default=None,
        description="Position in that list; for CSV, the spreadsheet row number (header = 1).",
    )
    field: str | None = Field(default=None, description="The field of that entry, if one.")
    value: str | None = Field(default=None, description="The offending value.")
    code: str = Field(description="Machine-readable reason, e.g. INVALID_PHONE.")
    message: str = Field(description="Human-readable reason.")


class FollowUpStats(BaseModel):
    """How one follow-up step went; the campaign's `stats` stay the first message's."""

    step: int = Field(description="1 for the first follow-up.")
    sent: int = Field(default=0, description="Recipients the step went to.")
    failed: int = Field(default=0, description="Sends the provider refused.")
    skipped: int = Field(
        default=0, description="Due recipients not messaged: opted out, deleted, or unknown."
    )
    replied: int = Field(default=0, description="Contacts whose first reply came after this step.")
    pending: int = Field(
        default=0,
        description="Recipients still to get it: they got the previous message, have not "
        "replied, and the step's time or turn has not come.",
    )


class HoldReason(StrEnum):
    """Why recipients due to be messaged are not being messaged yet."""

    QUIET_HOURS = "quiet_hours"
    RATE_LIMIT = "rate_limit"
    FREQUENCY_CAP = "frequency_cap"


class Hold(BaseModel):
    """Recipients of a sending campaign held back, why, and until when."""

    reason: HoldReason = Field(description="quiet_hours, rate_limit or frequency_cap.")
    recipients: int = Field(description="How many are held.")
    until: datetime | None = Field(description="When the hold ends (UTC), as far as known.")
    zone: str | None = Field(
        default=None, description="For quiet hours: the recipients' time zone."
    )
    state: str | None = Field(
        default=None,
        description="For quiet hours: the US state whose rules for marketing texts hold them.",
    )
    message: str = Field(description="The hold in plain words.")


class CampaignStats(BaseModel):
    """Counters over the recipients; the legacy `successRate` string is derived on output."""

    total: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    replied: int = 0
    """Contacts that answered; counted from `Reply` records on read, never stored."""
    retried: int = 0
    """Recipients sent again by `retryFailed` (each at most once)."""


class MessageStats(BaseModel):
    """What one message will cost, computed for the longest rendering across recipients."""

    encoding: str = Field(description="GSM-7 or UCS-2.")
    segments: int = Field(description="SMS segments billed per recipient.")
    characters: int = Field(description="Characters of the longest rendering.")
    recipientsMissingValues: int = Field(
        default=0,
        description="Contacts left out because a placeholder had no value and no fallback.",
    )


DEFAULT_CONTACT_STATUS = "New Lead"

MAX_FOLLOW_UPS = 5
MAX_FOLLOW_UP_DELAY_MINUTES = 43_200
"""Thirty days: cadences are set in minutes, hours or days."""


class FollowUp(BaseModel):
    """One step of a campaign's cadence: sent `delayMinutes` after the previous message went
    to a recipient who has not answered."""

    delayMinutes: int = Field(
        description=f"Minutes after the previous message, 1-{MAX_FOLLOW_UP_DELAY_MINUTES}."
    )
    message: str = Field(description="Template, checked like the first message.")


class Campaign(TenantDocument):
    """Recipients live in their own collection; `stats.total` counts them.

    `version` counts changes: each change first claims the next version with a unique insert
    (`models.history.Change`), so two writers never modify one campaign at once.
    """

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
    version: int = 0
    nextSeq: int = 0
    """The `seq` the next added recipient gets; recipients are numbered from 0."""
    startedAt: datetime | None = None
    listSeq: int | None = None
    """Its number in the organization's list, dense from 0 in creation order (claimed with a
    unique insert, `services.storage.slots`): numbered pages count from it."""
    page: int | None = None
    """Its page in the organization's list, `listSeq // 20`, newest last (see
    `services.storage.positions`)."""
    scheduleBucket: int | None = None
    """Where it sits in schedule-date order: the day of `scheduleDate`, or for a campaign
    without a date one bucket per list page, below every day
    (`services.campaigns.schedule_order`); written with `scheduleDate`."""
    contactStatusOnReply: str | None = None
    """The pipeline stage a contact moves to on its first reply to this campaign."""
    followUps: list[FollowUp] = []
    """Steps after the first message; they run while `isAutopilot` is true."""
    autopilotSince: datetime | None = None
    """When autopilot was last turned on: a step's delay counts from then at the earliest, so
    turning it back on never sends a burst of overdue steps."""
    retryRound: int = 0
    """How many times `retryFailed` ran (each round resends a failure at most once)."""
    retryBatches: list[int] = []
    """The batches the latest round resends to."""
    followUpTotals: list[FollowUpStats] = []
    """Per-step counts folded in when the campaign completes (read live until then)."""
    followUpsStarted: list[int] = []
    followUpsEnded: list[int] = []
    """Steps whose start and end `history` recorded (each once, by a numbered change)."""
    _next_send_at: datetime | None = PrivateAttr(default=None)
    _follow_up_stats: list[FollowUpStats] = PrivateAttr(default_factory=list)
    _holds: list[Hold] = PrivateAttr(default_factory=list)

    @property
    def nextSendAt(self) -> datetime | None:
        """When recipients waiting for quiet hours to end may be sent (None while nothing
        waits). Read live from the batches
        (`services.campaigns.stats.with_live_stats`), never stored:
        the dispatcher writes only to its own batch documents."""
        return self._next_send_at

    @property
    def followUpStats(self) -> list[FollowUpStats]:
        """Per step, read live like `nextSendAt` (`services.campaigns.stats`)."""
        return self._follow_up_stats

    @property
    def holds(self) -> list[Hold]:
        """Recipients held back while it sends, read live like `nextSendAt`."""
        return self._holds

    def cadence(self) -> int:
        """How many follow-up steps run: none while autopilot is off."""
        return Campaign.steps_running(self.followUps, self.isAutopilot)

    @staticmethod
    def steps_running(follow_ups: Sequence[object] | None, autopilot: object) -> int:
        """The rule, also for a stored row: the steps run only while autopilot is on."""
        return len(follow_ups or []) if autopilot else 0

    class Settings:
        name = "campaigns"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("page", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="org_page_id",
            ),
            IndexModel(  # one schedule bucket's campaigns (the schedule-date order)
                [("organizationId", pymongo.ASCENDING), ("scheduleBucket", pymongo.ASCENDING)],
                name="org_schedule_bucket",
            ),
            IndexModel(  # a status's campaigns by list number (the REST numbered list)
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("listSeq", pymongo.ASCENDING),
                ],
                name="org_status_list_seq",
            ),
            IndexModel(  # a status's campaigns in list order (`list_campaigns`)
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                    ("page", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="org_status_page_id",
            ),
            IndexModel(  # a filtered list's count: created after or before
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("createdAt", pymongo.DESCENDING),
                    ("_id", pymongo.DESCENDING),
                ],
                name="org_created_id",
            ),
            IndexModel(  # a filtered list's count: scheduled after or before
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("scheduleDate", pymongo.ASCENDING),
                    ("_id", pymongo.ASCENDING),
                ],
                name="org_schedule_id",
            ),
            IndexModel(  # a filtered list's count: one rep's campaigns
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("createdBy._id", pymongo.ASCENDING),
                    ("createdAt", pymongo.DESCENDING),
                    ("_id", pymongo.DESCENDING),
                ],
                name="org_creator_created_id",
            ),
            IndexModel([("status", pymongo.ASCENDING)], name="status_across_organizations"),
        ]


class CampaignPage(TenantDocument):
    """A claimed page number of an organization's campaign list (see
    `services.storage.positions`); `_id` is `"<organizationId>:<page>"`."""

    id: str | None = None  # type: ignore[assignment]
    page: int

    class Settings:
        name = "campaign_pages"
        shard_key = ("organizationId", "_id")


class CampaignSlot(TenantDocument):
    """A claimed number of an organization's campaign list, or a gap in it (see
    `services.storage.slots`): a claim's `_id` is `"<organizationId>:<n>"`, a gap's
    `"<organizationId>:gap:<n>"` with its `chapter` (gaps are read a chapter at a time)."""

    id: str | None = None  # type: ignore[assignment]
    seq: int
    chapter: int | None = None

    class Settings:
        name = "campaign_slots"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [("organizationId", pymongo.ASCENDING), ("chapter", pymongo.ASCENDING)],
                name="org_chapter",
            ),
        ]


class CampaignBucket(TenantDocument):
    """A schedule bucket (`kind` "bucket"), or a block of them ("block"), some campaign of the
    organization was put in (see `services.storage.buckets`); `_id` is
    `"<organizationId>:<bucket>"` or `"<organizationId>:block:<block>"`, inserted once, before
    the first campaign goes in."""

    id: str | None = None  # type: ignore[assignment]
    kind: str
    block: int
    bucket: int | None = None

    class Settings:
        name = "campaign_buckets"
        shard_key = ("organizationId", "_id")
        indexes = [
            IndexModel(
                [
                    ("organizationId", pymongo.ASCENDING),
                    ("kind", pymongo.ASCENDING),
                    ("block", pymongo.ASCENDING),
                ],
                name="org_kind_block",
            ),
        ]
