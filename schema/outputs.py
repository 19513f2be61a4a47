"""What a campaign, a contact and a recipient look like to callers: one mapping per type.

Each `...Out.of(document)` is the only place a stored document becomes an answer. The REST
routes return these models (FastAPI checks them against `response_model`, and OpenAPI shows
them), and the GraphQL types in this package read the very same objects' attributes, so a
value computed for output (the legacy `successRate` string, say) is computed once.

Field names are the legacy contract's. Dates are `datetime` here; REST writes them in the
legacy form `2026-05-20T15:00:00.000Z`, GraphQL as its `DateTime` scalar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PrivateAttr

from models import Campaign, Change, Contact
from models.campaign import (
    CampaignStats,
    CampaignStatus,
    CampaignType,
    CreatedBy,
    FailedDetail,
    MessageStats,
)
from models.recipient import DeliveryStatus, RecipientRow, RecipientStatus


def iso_millis(value: datetime) -> str:
    """Formats like the legacy API: `2026-05-20T15:00:00.000Z`."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


LegacyDateTime = Annotated[
    datetime,
    PlainSerializer(iso_millis, return_type=str, when_used="json"),
    Field(examples=["2026-05-20T15:00:00.000Z"]),
]


def success_rate(stats: CampaignStats) -> str:
    """Returns sent / processed as the legacy string ("0%" until something is processed)."""
    processed = stats.sent + stats.failed
    return f"{round(100 * stats.sent / processed)}%" if processed else "0%"


def reply_rate(stats: CampaignStats) -> str:
    """Returns replied / sent in `successRate`'s form ("0%" until something is sent)."""
    return f"{round(100 * stats.replied / stats.sent)}%" if stats.sent else "0%"


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True, from_attributes=True)


class StatsOut(_Out):
    total: int = Field(description="Number of recipients")
    sent: int = Field(description="Messages accepted by the provider")
    failed: int = Field(description="Messages the provider refused")
    skipped: int = Field(description="Recipients not messaged (opted out since, say)")
    unknown: int = Field(
        default=0, description="Handed to a provider by a sender that died; never resent blindly"
    )
    successRate: str = Field(description="sent / (sent + failed)", examples=["0%"])
    replied: int = Field(default=0, description="Contacts that replied (attributed replies)")
    replyRate: str = Field(default="0%", description="replied / sent", examples=["0%"])


class CampaignSummaryOut(_Out):
    """A campaign as lists show it: everything but the recipients' ids."""

    id: str = Field(alias="_id")
    organizationId: str
    name: str
    message: str
    type: CampaignType
    status: CampaignStatus
    scheduleDate: LegacyDateTime | None
    process: str | None
    contactStatus: str | None
    contactStatusOnReply: str | None = Field(
        default=None, description="The stage a contact moves to on its first reply"
    )
    isAutopilot: bool
    createdBy: CreatedBy
    failedUserIds: list[str] = Field(description="Requested contact ids that were not added")
    failedDetails: list[FailedDetail] = Field(description="The first 1,000 failures")
    failedDetailsTotal: int = Field(description="How many parts of the input failed in all")
    stats: StatsOut
    messageStats: MessageStats | None
    startedAt: LegacyDateTime | None = Field(description="When sending first started")
    nextSendAt: LegacyDateTime | None = Field(
        description="When recipients waiting for quiet hours to end go out; null while none wait"
    )
    createdAt: LegacyDateTime
    updatedAt: LegacyDateTime

    _document: Campaign | None = PrivateAttr(default=None)

    @property
    def document(self) -> Campaign:
        """The stored campaign this was made from (GraphQL's nested fields start from it)."""
        assert self._document is not None
        return self._document

    @classmethod
    def of(cls, doc: Campaign) -> CampaignSummaryOut:
        out = cls.model_validate(_campaign_fields(doc))
        out._document = doc
        return out


class CampaignOut(CampaignSummaryOut):
    """A campaign as the legacy creation answer shows it, with its recipients' contact ids."""

    userIds: list[str] = Field(description="Contact ids of the recipients, in order")

    @classmethod
    def with_recipients(cls, doc: Campaign, user_ids: list[str]) -> CampaignOut:
        out = cls.model_validate({**_campaign_fields(doc), "userIds": user_ids})
        out._document = doc
        return out


def _campaign_fields(doc: Campaign) -> dict[str, object]:
    return {
        **{name: getattr(doc, name) for name in _CAMPAIGN_STORED},
        "id": str(doc.id),
        "organizationId": str(doc.organizationId),
        "stats": StatsOut(
            **doc.stats.model_dump(),
            successRate=success_rate(doc.stats),
            replyRate=reply_rate(doc.stats),
        ),
    }


_CAMPAIGN_STORED = [
    name
    for name in CampaignSummaryOut.model_fields
    if name not in ("id", "organizationId", "stats")
]


class ContactOut(_Out):
    """A contact of the caller's organization."""

    id: str = Field(alias="_id")
    firstName: str
    lastName: str
    phoneNumber: str = Field(description="E.164", examples=["+14155550101"])
    email: str | None
    contactStatus: str | None = Field(description="Pipeline stage", examples=["New Lead"])
    process: str | None
    tags: list[str]
    assignedTo: str | None = Field(description="User id of the owning rep")
    optedOut: bool = Field(description="Never messaged while true")
    optedOutAt: LegacyDateTime | None
    optOutReason: str | None
    createdAt: LegacyDateTime
    updatedAt: LegacyDateTime

    @classmethod
    def of(cls, doc: Contact) -> ContactOut:
        fields = {name: getattr(doc, name) for name in cls.model_fields if name != "id"}
        fields["assignedTo"] = str(doc.assignedTo) if doc.assignedTo else None
        return cls.model_validate({**fields, "id": str(doc.id)})


class RecipientOut(_Out):
    """One contact of one campaign, and what happened to its message."""

    id: str = Field(alias="_id")
    campaignId: str
    contactId: str
    position: int = Field(description="Order in the campaign, from 0")
    status: RecipientStatus
    assignedTo: str | None
    providerMessageId: str | None
    errorCode: str | None = Field(description="Why it failed or was skipped: OPTED_OUT, ...")
    error: str | None
    deliveryStatus: DeliveryStatus | None = Field(description="What the carrier reported")
    attempts: int
    sentAt: LegacyDateTime | None
    replied: bool = Field(default=False, description="The contact replied to this campaign")
    repliedAt: LegacyDateTime | None = Field(default=None, description="Its first reply")
    createdAt: LegacyDateTime
    updatedAt: LegacyDateTime

    @classmethod
    def of(cls, row: RecipientRow) -> RecipientOut:
        # From the stored fields, without validation: each is typed here (a page maps up to
        # 100 of these per request; validating cost ~15 us each). Defaults are `Recipient`'s,
        # for fields a document written before them lacks.
        assigned, sent_at = row.get("assignedTo"), row.get("sentAt")
        delivery = row.get("deliveryStatus")
        return cls.model_construct(
            id=str(row["_id"]),
            campaignId=str(row["campaignId"]),
            contactId=str(row["contactId"]),
            position=int(row.get("seq", 0)),
            status=RecipientStatus(row.get("status", RecipientStatus.PENDING)),
            assignedTo=str(assigned) if assigned else None,
            providerMessageId=row.get("providerMessageId"),
            errorCode=row.get("errorCode"),
            error=row.get("error"),
            deliveryStatus=DeliveryStatus(delivery) if delivery else None,
            attempts=int(row.get("attempts", 0)),
            sentAt=sent_at,
            replied=bool(row.get("replied")),
            repliedAt=row.get("repliedAt"),
            createdAt=row["createdAt"],
            updatedAt=row["updatedAt"],
        )


class HistoryEntryOut(_Out):
    """One change of a campaign: who, when, and the status before and after."""

    version: int = Field(description="0 is the creation")
    action: str = Field(examples=["create", "schedule", "send", "pause", "update"])
    fromStatus: CampaignStatus | None
    toStatus: CampaignStatus | None
    at: LegacyDateTime
    by: CreatedBy | None = Field(description="The rep; null for the service's own changes")

    @classmethod
    def creation(cls, doc: Campaign, first: Change | None) -> HistoryEntryOut:
        """The creation, recovered from the campaign (creation writes no change record)."""
        initial = first.fromStatus if first is not None else doc.status
        return cls(
            version=0,
            action="create",
            fromStatus=None,
            toStatus=CampaignStatus(initial) if initial else None,
            at=doc.createdAt,
            by=doc.createdBy,
        )

    @classmethod
    def of(cls, change: Change) -> HistoryEntryOut:
        return cls(
            version=change.version,
            action=change.action,
            fromStatus=_status(change.fromStatus),
            toStatus=_status(change.toStatus),
            at=change.createdAt,
            by=change.by,
        )


def _status(value: str | None) -> CampaignStatus | None:
    known = {s.value for s in CampaignStatus}
    return CampaignStatus(value) if value is not None and value in known else None
