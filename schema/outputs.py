"""What callers see of campaigns, contacts, recipients and conversations: one declaration each.

Each field, its type and its description are written here once. The GraphQL types are derived
from these models (`schema.derive`), and the REST routes return them (with the legacy date
format, `resolvers.rest.shapes`), so both APIs show the same fields and descriptions. Each
`...Out.of(document)` is the only place a stored document becomes an answer, and the GraphQL
types read the very same objects' attributes, so a value computed for output (`successRate`,
a string in both APIs) is computed once.

Field names are the legacy contract's; ids are strings marked `Id` (GraphQL's `ID`).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from models import Campaign, Change, Contact
from models.campaign import (
    CampaignStats,
    CampaignStatus,
    CampaignType,
    CreatedBy,
    FailedDetail,
    FollowUp,
    FollowUpStats,
    Hold,
    MessageStats,
)
from models.contact import ConsentSource
from models.conversation import Direction
from models.recipient import DeliveryStatus, RecipientRow, RecipientStatus
from services.contacts.suppressions import (
    SuppressedNumber,
    SuppressResult,
    UnsuppressResult,
)
from services.conversations.inbox import Conversation
from services.conversations.threads import ThreadMessage
from services.inputs import Id
from services.sending.failures import Failure, FailureStage


class FieldProblem(BaseModel):
    """A problem with one part of the input: where, which rule, and why."""

    field: list[str] = Field(
        description='Path into the arguments, e.g. ["input", "newContacts", "3", "phoneNumber"].'
    )
    code: str = Field(description="Machine-readable reason, e.g. REQUIRED.")
    message: str = Field(description="Human-readable reason.")


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
    """Counters over a campaign's recipients."""

    total: int = Field(description="Number of recipients.")
    sent: int = Field(description="Messages accepted by the provider.")
    failed: int = Field(description="Messages the provider refused.")
    skipped: int = Field(description="Recipients not messaged (opted out since).")
    unknown: int = Field(
        default=0, description="Handed to a provider by a sender that died; never resent blindly."
    )
    successRate: str = Field(description='sent / (sent + failed), e.g. "0%".', examples=["0%"])
    replied: int = Field(
        default=0,
        description="Contacts that replied within the attribution window (each counted once).",
    )
    replyRate: str = Field(default="0%", description='replied / sent, e.g. "0%".', examples=["0%"])
    retried: int = Field(
        default=0, description="Failed recipients sent again by retryFailed (each at most once)."
    )

    @classmethod
    def of(cls, stats: CampaignStats) -> StatsOut:
        return cls(
            **stats.model_dump(), successRate=success_rate(stats), replyRate=reply_rate(stats)
        )


class CampaignSummaryOut(_Out):
    """A campaign as lists show it: everything but the recipients' ids."""

    id: Id = Field(alias="_id", description="The campaign's id.")
    organizationId: Id = Field(description="The owning organization.")
    name: str = Field(description="Internal name shown to reps.")
    message: str = Field(description="The template, e.g. 'Hi {{firstName|there}}'.")
    type: CampaignType = Field(description="The channel.")
    status: CampaignStatus = Field(description="Lifecycle state.")
    scheduleDate: datetime | None = Field(description="When sending starts (UTC).")
    process: str | None = Field(description="Pipeline id the campaign belongs to.")
    contactStatus: str | None = Field(description="Pipeline stage; 'New Lead' by default.")
    contactStatusOnReply: str | None = Field(
        default=None, description="The stage a contact moves to on its first reply; null: it stays."
    )
    isAutopilot: bool = Field(description="Whether follow-ups run automatically.")
    followUps: list[FollowUp] = Field(
        default=[], description="The follow-up steps, sent while isAutopilot is true."
    )
    holds: list[Hold] = Field(
        default=[],
        description="While it sends: recipients held back (quiet hours, by zone; the rate "
        "limit), why and until when. Empty when nothing holds it.",
    )
    followUpStats: list[FollowUpStats] = Field(
        default=[],
        description="Per follow-up step: sent, failed, skipped, replies after it, pending.",
    )
    createdBy: CreatedBy = Field(description="Who created the campaign.")
    failedUserIds: list[Id] = Field(description="Requested contact ids that were not added.")
    failedDetails: list[FailedDetail] = Field(
        description="Every part of the creation input left out, and why (first 1,000)."
    )
    failedDetailsTotal: int = Field(description="How many parts of the input failed.")
    stats: StatsOut = Field(description="Sending counters.")
    messageStats: MessageStats | None = Field(description="Cost per message.")
    startedAt: datetime | None = Field(description="When sending first started.")
    nextSendAt: datetime | None = Field(
        description="When recipients waiting for quiet hours to end, or for their next "
        "follow-up step, go out next (each in their own time zone); null while none wait."
    )
    createdAt: datetime = Field(description="Creation time (UTC).")
    updatedAt: datetime = Field(description="Last change (UTC).")

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

    userIds: list[Id] = Field(
        description="Contact ids of every recipient, in order (legacy). Loads them all: for "
        "large campaigns page through `recipients` instead."
    )

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
        "stats": StatsOut.of(doc.stats),
    }


_CAMPAIGN_STORED = [
    name
    for name in CampaignSummaryOut.model_fields
    if name not in ("id", "organizationId", "stats")
]


class FailureOut(_Out):
    """Recipients of a campaign lost one way, and whether sending again can help."""

    stage: FailureStage = Field(description="send, delivery, skipped or unknown.")
    code: str = Field(description="The provider's or the service's code, e.g. 30003.")
    reason: str = Field(description="What it means, in plain words.")
    retryable: bool = Field(
        description="Whether sending again could help; retryFailed resends first messages only."
    )
    count: int = Field(description="How many recipients.")
    step: int | None = Field(
        None, description="The follow-up step that was lost; null for the first message."
    )

    @classmethod
    def of(cls, failure: Failure) -> FailureOut:
        return cls.model_validate(failure)


class ContactOut(_Out):
    """A contact of the caller's organization."""

    id: Id = Field(alias="_id", description="The contact's id.")
    firstName: str = Field(description="Given name; may be empty.")
    lastName: str = Field(description="Family name; may be empty.")
    phoneNumber: str = Field(
        description="E.164, unique in the organization.", examples=["+14155550101"]
    )
    email: str | None = Field(description="Email address.")
    contactStatus: str | None = Field(
        description="Pipeline stage, e.g. New Lead.", examples=["New Lead"]
    )
    process: str | None = Field(description="Pipeline id.")
    tags: list[str] = Field(description="Free-form labels used by segments.")
    assignedTo: Id | None = Field(description="The rep who owns it (a user id).")
    optedOut: bool = Field(description="Never messaged while true.")
    optedOutAt: datetime | None = Field(description="When the contact opted out.")
    optOutReason: str | None = Field(description="Why, as recorded.")
    consentSource: ConsentSource | None = Field(
        description="Where its consent to be texted came from."
    )
    consentAt: datetime | None = Field(description="When consent was given.")
    consentFile: str | None = Field(
        description="A reference to the proof (a file name, a form's id)."
    )
    createdAt: datetime = Field(description="Creation time (UTC).")
    updatedAt: datetime = Field(description="Last change (UTC).")

    @classmethod
    def of(cls, doc: Contact) -> ContactOut:
        fields = {name: getattr(doc, name) for name in cls.model_fields if name != "id"}
        fields["assignedTo"] = str(doc.assignedTo) if doc.assignedTo else None
        return cls.model_validate({**fields, "id": str(doc.id)})


class RecipientOut(_Out):
    """One contact of one campaign, and what happened to its message."""

    id: Id = Field(alias="_id", description="The recipient's id.")
    campaignId: Id = Field(description="Its campaign.")
    contactId: Id = Field(description="Its contact.")
    position: int = Field(description="Order in the campaign, from 0.")
    status: RecipientStatus = Field(description="Where its message is.")
    assignedTo: Id | None = Field(description="The rep it is assigned to.")
    providerMessageId: str | None = Field(description="The provider's message id.")
    errorCode: str | None = Field(
        description="Why it failed or was skipped, machine-readable: OPTED_OUT, INVALID_NUMBER, "
        "OUTCOME_UNKNOWN, ..."
    )
    error: str | None = Field(description="Why sending failed, if it did.")
    deliveryStatus: DeliveryStatus | None = Field(
        description="What the carrier reported after the provider accepted it; only moves "
        "forward (null until a report arrives; the log and simulated providers send none)."
    )
    attempts: int = Field(description="Send attempts so far.")
    sentAt: datetime | None = Field(description="When the provider accepted it.")
    replied: bool = Field(default=False, description="The contact replied to this campaign.")
    repliedAt: datetime | None = Field(default=None, description="When it first replied.")
    createdAt: datetime = Field(description="When it was added.")
    updatedAt: datetime = Field(description="Last change.")

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

    version: int = Field(description="0 is the creation; each change adds one.")
    action: str = Field(
        description="create, update, schedule, send, pause, resume, cancel, complete, or "
        "followUpStarted / followUpEnded (with `step`).",
        examples=["create", "schedule", "send", "pause", "update"],
    )
    fromStatus: CampaignStatus | None = Field(description="Status before.")
    toStatus: CampaignStatus | None = Field(description="Status after.")
    at: datetime = Field(description="When (UTC).")
    by: CreatedBy | None = Field(description="Who; null for the service's own changes.")
    step: int | None = Field(default=None, description="The follow-up step it is about.")

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
            step=change.step,
        )


def _status(value: str | None) -> CampaignStatus | None:
    known = {s.value for s in CampaignStatus}
    return CampaignStatus(value) if value is not None and value in known else None


class MessageOut(_Out):
    """One message of a contact's thread, either way."""

    id: Id = Field(
        alias="_id", description="The message's id (a campaign send: its recipient's id)."
    )
    contactId: Id = Field(description="The contact of the thread.")
    direction: Direction = Field(description="INBOUND from the contact, OUTBOUND to it.")
    body: str = Field(description="The text, as the contact got or wrote it.")
    media: list[str] = Field(description="URLs of attached media (MMS), in order.")
    from_: str | None = Field(alias="from", description="The sending number, when known.")
    to: str | None = Field(description="The receiving number.")
    status: str = Field(
        description="received (inbound); waiting (quiet hours), sending, sent, delivered, "
        "undelivered, failed or unknown (outbound)."
    )
    errorCode: str | None = Field(description="Why an outbound message failed (provider code).")
    campaignId: Id | None = Field(
        description="The campaign it belongs to: a campaign's send, or the reply attributed to it."
    )
    createdAt: datetime = Field(description="When it was sent or received (UTC).")
    nextSendAt: datetime | None = Field(
        description="When a message held by quiet hours goes out; else null."
    )

    @classmethod
    def of(cls, item: ThreadMessage) -> MessageOut:
        return cls.model_validate(
            {
                "_id": str(item.id),
                "contactId": str(item.contactId),
                "direction": item.direction,
                "body": item.body,
                "media": list(item.media),
                "from": item.fromNumber,
                "to": item.toNumber,
                "status": item.status,
                "errorCode": item.errorCode,
                "campaignId": str(item.campaignId) if item.campaignId else None,
                "createdAt": item.createdAt,
                "nextSendAt": item.nextSendAt,
            }
        )


class ConversationOut(_Out):
    """A contact's conversation as the inbox shows it."""

    contact: ContactOut = Field(description="The contact.")
    lastMessage: MessageOut = Field(description="The newest message of the thread.")
    unreadCount: int = Field(description="Messages received since a rep last marked it read.")
    owner: Id | None = Field(
        description="Who answers it (a user id): the rep it was assigned to, else the rep of "
        "the campaign the latest reply answered, else the contact's owner; null: nobody."
    )

    @classmethod
    def of(cls, found: Conversation) -> ConversationOut:
        return cls(
            contact=ContactOut.of(found.contact),
            lastMessage=MessageOut.of(found.lastMessage),
            unreadCount=found.unreadCount,
            owner=str(found.owner) if found.owner else None,
        )


class SuppressedNumberOut(_Out):
    """A number on the organization's suppression list: never texted, contact or not."""

    phoneNumber: str = Field(description="E.164.", examples=["+14155550101"])
    reason: str | None = Field(description="Why, as given when it was added.")
    createdAt: datetime = Field(description="When it was added (UTC).")

    @classmethod
    def of(cls, found: SuppressedNumber) -> SuppressedNumberOut:
        return cls.model_validate(found)


class SuppressResultOut(_Out):
    """What an import to the suppression list did."""

    added: int = Field(description="Numbers added to the list.")
    alreadySuppressed: int = Field(description="Numbers that were on the list already.")
    failedDetails: list[FailedDetail] = Field(
        description="Entries that are not phone numbers (source phoneNumbers or csv), and why; "
        "at most 1,000."
    )
    failedDetailsTotal: int = Field(description="All such entries, beyond the 1,000 listed.")

    @classmethod
    def of(cls, result: SuppressResult) -> SuppressResultOut:
        return cls(
            added=result.added,
            alreadySuppressed=result.alreadySuppressed,
            failedDetails=result.failedDetails,
            failedDetailsTotal=result.failedTotal,
        )


class UnsuppressResultOut(_Out):
    """What taking numbers off the suppression list did."""

    removed: int = Field(description="Numbers taken off the list.")
    notSuppressed: int = Field(description="Numbers that were not on the list.")
    failedDetails: list[FailedDetail] = Field(
        description="Entries that are not phone numbers, and why; at most 1,000."
    )
    failedDetailsTotal: int = Field(description="All such entries, beyond the 1,000 listed.")

    @classmethod
    def of(cls, result: UnsuppressResult) -> UnsuppressResultOut:
        return cls(
            removed=result.removed,
            notSuppressed=result.notSuppressed,
            failedDetails=result.failedDetails,
            failedDetailsTotal=result.failedTotal,
        )
