"""GraphQL types for campaigns and recipients.

The object types read the attributes of `schema.outputs` models — the same objects the REST
routes return — so each type is mapped from its document once. Enums are the models' enums.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import strawberry
from beanie import PydanticObjectId
from strawberry.types.arguments import InputContext
from strawberry.types.base import get_object_definition

from models.campaign import CampaignStatus, CampaignType, InitialStatus
from models.recipient import DeliveryStatus, RecipientStatus
from schema.contacts import Contact
from schema.context import Info
from schema.errors import Payload
from schema.loaders import RecipientsKey
from schema.outputs import (
    CampaignSummaryOut,
    ContactOut,
    HistoryEntryOut,
    RecipientOut,
)
from schema.pagination import Connection
from schema.users import User
from services.campaigns import queries as campaign_queries
from services.inputs import AssignmentStrategy, CampaignOrderField, SortDirection

strawberry.enum(CampaignStatus, description="Where a campaign is in its lifecycle.")
strawberry.enum(InitialStatus, name="InitialCampaignStatus", description="A new campaign's.")
strawberry.enum(CampaignType, description="The channel.")
strawberry.enum(RecipientStatus, description="Where one recipient's message is.")
strawberry.enum(DeliveryStatus, description="What the carrier reported about a sent message.")
strawberry.enum(AssignmentStrategy, description="How recipients are shared among reps.")
strawberry.enum(CampaignOrderField, description="What campaigns are ordered by.")
strawberry.enum(SortDirection, description="Ascending or descending.")


@strawberry.type(description="Counters over a campaign's recipients.")
class CampaignStats:
    total: int = strawberry.field(description="Number of recipients.")
    sent: int = strawberry.field(description="Messages accepted by the provider.")
    failed: int = strawberry.field(description="Messages the provider refused.")
    skipped: int = strawberry.field(description="Recipients not messaged (opted out since).")
    unknown: int = strawberry.field(
        description="Handed to a provider by a sender that died; never resent blindly."
    )
    successRate: str = strawberry.field(description='sent / (sent + failed), e.g. "0%".')
    replied: int = strawberry.field(
        description="Contacts that replied within the attribution window (each counted once)."
    )
    replyRate: str = strawberry.field(description='replied / sent, e.g. "0%".')


@strawberry.type(description="The cost of one message, for its longest rendering.")
class MessageStats:
    encoding: str = strawberry.field(description="GSM-7 or UCS-2.")
    segments: int = strawberry.field(description="SMS segments billed per recipient.")
    characters: int = strawberry.field(description="Characters of the longest rendering.")
    recipientsMissingValues: int = strawberry.field(
        description="Contacts left out because a placeholder had no value and no fallback."
    )


@strawberry.type(description="A part of the input left out, and why.")
class FailedDetail:
    source: str = strawberry.field(
        description="newContacts, selectedExistingContacts, userIds, rawCsvData, segmentation, "
        "addRecipients or removeRecipients."
    )
    index: int | None = strawberry.field(
        description="Position in that list; for CSV, the spreadsheet row number (header = 1)."
    )
    field: str | None = strawberry.field(description="The field of that entry, if one.")
    value: str | None = strawberry.field(description="The offending value.")
    code: str = strawberry.field(description="Machine-readable reason, e.g. INVALID_PHONE.")
    message: str = strawberry.field(description="Human-readable reason.")


@strawberry.type(description="One change of a campaign.")
class HistoryEntry:
    version: int = strawberry.field(description="0 is the creation; each change adds one.")
    action: str = strawberry.field(
        description="create, update, schedule, send, pause, resume or cancel."
    )
    fromStatus: CampaignStatus | None = strawberry.field(description="Status before.")
    toStatus: CampaignStatus | None = strawberry.field(description="Status after.")
    at: datetime = strawberry.field(description="When (UTC).")
    by: User | None = strawberry.field(description="Who; null for the service's own changes.")


@strawberry.type(description="One contact of one campaign, and what happened to its message.")
class Recipient:
    id: strawberry.ID = strawberry.field(description="The recipient's id.")
    campaignId: strawberry.ID = strawberry.field(description="Its campaign.")
    contactId: strawberry.ID = strawberry.field(description="Its contact.")
    position: int = strawberry.field(description="Order in the campaign, from 0.")
    status: RecipientStatus = strawberry.field(description="Where its message is.")
    assignedTo: strawberry.ID | None = strawberry.field(description="The rep it is assigned to.")
    providerMessageId: str | None = strawberry.field(description="The provider's message id.")
    errorCode: str | None = strawberry.field(
        description="Why it failed or was skipped, machine-readable: OPTED_OUT, INVALID_NUMBER, "
        "OUTCOME_UNKNOWN, ..."
    )
    error: str | None = strawberry.field(description="Why sending failed, if it did.")
    deliveryStatus: DeliveryStatus | None = strawberry.field(
        description="What the carrier reported after the provider accepted it; only moves "
        "forward (null until a report arrives; the log and simulated providers send none)."
    )
    attempts: int = strawberry.field(description="Send attempts so far.")
    sentAt: datetime | None = strawberry.field(description="When the provider accepted it.")
    replied: bool = strawberry.field(description="The contact replied to this campaign.")
    repliedAt: datetime | None = strawberry.field(description="When it first replied.")
    createdAt: datetime = strawberry.field(description="When it was added.")
    updatedAt: datetime = strawberry.field(description="Last change.")

    @strawberry.field(description="The contact; null if it was deleted since.")
    async def contact(self, root: strawberry.Parent[RecipientOut], info: Info) -> Contact | None:
        found = await info.context.loaders.contacts.load(_oid(root.contactId))
        return ContactOut.of(found) if found else None  # type: ignore[return-value]


@strawberry.type(description="An SMS campaign.")
class Campaign:
    id: strawberry.ID = strawberry.field(description="The campaign's id.")
    organizationId: strawberry.ID = strawberry.field(description="The owning organization.")
    name: str = strawberry.field(description="Internal name shown to reps.")
    message: str = strawberry.field(description="The template, e.g. 'Hi {{firstName|there}}'.")
    type: CampaignType = strawberry.field(description="The channel.")
    status: CampaignStatus = strawberry.field(description="Lifecycle state.")
    scheduleDate: datetime | None = strawberry.field(description="When sending starts (UTC).")
    process: str | None = strawberry.field(description="Pipeline id the campaign belongs to.")
    contactStatus: str | None = strawberry.field(
        description="Pipeline stage; 'New Lead' by default."
    )
    contactStatusOnReply: str | None = strawberry.field(
        description="The stage a contact moves to on its first reply; null: it stays."
    )
    isAutopilot: bool = strawberry.field(description="Whether follow-ups run automatically.")
    failedUserIds: list[strawberry.ID] = strawberry.field(
        description="Requested contact ids that were not added."
    )
    failedDetails: list[FailedDetail] = strawberry.field(
        description="Every part of the creation input left out, and why (first 1,000)."
    )
    failedDetailsTotal: int = strawberry.field(description="How many parts of the input failed.")
    stats: CampaignStats = strawberry.field(description="Sending counters.")
    messageStats: MessageStats | None = strawberry.field(description="Cost per message.")
    startedAt: datetime | None = strawberry.field(description="When sending first started.")
    nextSendAt: datetime | None = strawberry.field(
        description="When recipients waiting for quiet hours to end go out (each in their own "
        "time zone); null while none wait."
    )
    createdAt: datetime = strawberry.field(description="Creation time (UTC).")
    updatedAt: datetime = strawberry.field(description="Last change (UTC).")

    @strawberry.field(description="Who created the campaign (their current name).")
    async def createdBy(self, root: strawberry.Parent[CampaignSummaryOut], info: Info) -> User:
        snapshot = root.createdBy
        name = await info.context.loaders.users.load(snapshot.id)
        return User(id=strawberry.ID(str(snapshot.id)), fullName=name or snapshot.fullName)

    @strawberry.field(
        description="Contact ids of every recipient, in order (legacy). Loads them all: for "
        "large campaigns page through `recipients` instead."
    )
    async def userIds(
        self, root: strawberry.Parent[CampaignSummaryOut], info: Info
    ) -> list[strawberry.ID]:
        known = getattr(root, "userIds", None)
        if known is None:
            known = await campaign_queries.recipient_contact_ids(info.context.tenant, _oid(root.id))
        return [strawberry.ID(i) for i in known]

    @strawberry.field(description="The campaign's recipients, in the order they were added.")
    async def recipients(
        self,
        root: strawberry.Parent[CampaignSummaryOut],
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        status: RecipientStatus | None = None,
    ) -> Connection[Recipient]:
        context = info.context
        document = root.document
        if after is None and status is None:
            result = await context.loaders.first_recipients.load(RecipientsKey(document, first))
        else:
            result = await campaign_queries.recipients_page(
                context.tenant,
                context.settings,
                document,
                first=first,
                after=after,
                status=status.value if status else None,
            )
        total = result.total

        async def count() -> int:
            if total is not None:
                return total
            return await campaign_queries.count_recipients(
                context.tenant, document, status.value if status else None
            )

        return Connection.of(result.page, RecipientOut.of, count)

    @strawberry.field(description="Every change of the campaign, oldest first.")
    async def history(
        self, root: strawberry.Parent[CampaignSummaryOut], info: Info
    ) -> list[HistoryEntry]:
        changes = await campaign_queries.campaign_history(info.context.tenant, root.document)
        entries = [HistoryEntryOut.creation(root.document, changes[0] if changes else None)]
        entries.extend(HistoryEntryOut.of(c) for c in changes)
        return entries  # type: ignore[return-value]


def _oid(value: Any) -> PydanticObjectId:
    return PydanticObjectId(str(value))


@strawberry.input(description="A contact typed in by the rep.")
class NewContactInput:
    first_name: str | None = strawberry.field(default=None, description="Given name.")
    last_name: str | None = strawberry.field(default=None, description="Family name.")
    phone_number: str | None = strawberry.field(
        default=None,
        description="Any format; numbers without + are read in the default region. A missing "
        "or invalid phone leaves this contact out (see failedDetails), not the campaign.",
    )
    email: str | None = strawberry.field(default=None, description="Email address.")


def _new_contact_from_input(
    cls: type[NewContactInput], value: Mapping[str, Any], context: InputContext
) -> NewContactInput:
    """Builds the input directly from four already-validated strings.

    Strawberry's generic conversion costs ~25 µs per object: 0.25 s of a 10,000-contact
    request. `from_input` is Strawberry's hook for exactly this.
    """
    return cls(
        first_name=value.get("firstName"),
        last_name=value.get("lastName"),
        phone_number=value.get("phoneNumber"),
        email=value.get("email"),
    )


get_object_definition(NewContactInput, strict=True).from_input = _new_contact_from_input


@strawberry.input(description="An existing contact of the caller's organization.")
class ExistingContactInput:
    id: strawberry.ID = strawberry.field(description="The contact's id.")


@strawberry.input(description="Maps contact fields to CSV headers.")
class CsvColumnsInput:
    first_name: str | None = strawberry.field(default=None, description="Header of first names.")
    last_name: str | None = strawberry.field(default=None, description="Header of last names.")
    phone_number: str | None = strawberry.field(default=None, description="Header of phones.")
    email: str | None = strawberry.field(default=None, description="Header of emails.")


@strawberry.input(description="Contacts from CSV: `csv` text, or `headers` and `rows`.")
class CsvDataInput:
    csv: str | None = strawberry.field(default=None, description="CSV text; first row = header.")
    headers: list[str] | None = strawberry.field(default=None, description="Column headers.")
    rows: list[list[str | None]] | None = strawberry.field(default=None, description="Rows.")
    columns: CsvColumnsInput | None = strawberry.field(
        default=None, description="Header mapping; common spellings are recognised without it."
    )
    delimiter: str = strawberry.field(default=",", description="One character.")


@strawberry.input(description="A filter over the organization's contacts.")
class SegmentationInput:
    contact_status: list[str] | None = strawberry.field(default=None, description="Any of.")
    process: str | None = strawberry.field(default=None, description="Pipeline id.")
    tags: list[str] | None = strawberry.field(default=None, description="Any of these tags.")
    created_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    created_before: datetime | None = strawberry.field(default=None, description="Exclusive.")


@strawberry.input(description="How recipients are assigned to reps.")
class AssignmentInput:
    strategy: AssignmentStrategy = strawberry.field(
        default=AssignmentStrategy.ROUND_ROBIN, description="round_robin or single."
    )
    user_ids: list[strawberry.ID] = strawberry.field(description="Reps to assign to.")


@strawberry.input(description="Everything needed to create a campaign.")
class CreateCampaignInput:
    name: str = strawberry.field(description="Internal name, 1-200 characters.")
    message: str = strawberry.field(
        description="Template: {{firstName}}, {{lastName}}, {{phoneNumber}}, {{email}}, "
        "with fallbacks like {{firstName|there}}."
    )
    new_contacts: list[NewContactInput] | None = strawberry.field(
        default=None, description="Contacts to create (or reuse by phone)."
    )
    selected_existing_contacts: list[ExistingContactInput] | None = strawberry.field(
        default=None, description="Existing contacts by id."
    )
    user_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Legacy form of selectedExistingContacts: contact ids."
    )
    raw_csv_data: CsvDataInput | None = strawberry.field(default=None, description="CSV.")
    segmentation: SegmentationInput | None = strawberry.field(default=None, description="Filter.")
    assignment: AssignmentInput | None = strawberry.field(default=None, description="Reps.")
    schedule_date: datetime | None = strawberry.field(
        default=None, description="When to send; with a time zone; not in the past."
    )
    status: InitialStatus | None = strawberry.field(
        default=None, description="Defaults to SCHEDULED with a date, DRAFT without."
    )
    process: str | None = strawberry.field(default=None, description="Pipeline id.")
    contact_status: str | None = strawberry.field(default=None, description="Pipeline stage.")
    contact_status_on_reply: str | None = strawberry.field(
        default=None, description="The stage a contact moves to on its first reply."
    )
    is_autopilot: bool = strawberry.field(default=False, description="Automatic follow-ups.")
    type: CampaignType = strawberry.field(default=CampaignType.SMS, description="Channel.")
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retries with the same key replay the first result; same as the REST "
        "Idempotency-Key header.",
    )


@strawberry.type(description="The result of createCampaign.")
class CreateCampaignPayload(Payload):
    campaign: Campaign | None = strawberry.field(
        default=None, description="The campaign, unless refused."
    )


@strawberry.type(description="The result of a campaign mutation.")
class CampaignPayload(Payload):
    campaign: Campaign | None = strawberry.field(
        default=None, description="The campaign as it is now, unless refused."
    )


@strawberry.type(description="The result of updateCampaign.")
class UpdateCampaignPayload(Payload):
    campaign: Campaign | None = strawberry.field(
        default=None, description="The campaign as it is now, unless refused."
    )
    failedDetails: list[FailedDetail] = strawberry.field(
        default_factory=list,
        description="Recipients asked to be added or removed that were not, and why.",
    )


@strawberry.type(description="The result of deleteCampaign.")
class DeleteCampaignPayload(Payload):
    deletedId: strawberry.ID | None = strawberry.field(
        default=None, description="The id of the deleted campaign."
    )


@strawberry.input(description="Changes to a campaign; only the fields given change.")
class UpdateCampaignInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="1-200 characters.")
    message: str | None = strawberry.field(default=strawberry.UNSET, description="Template.")
    scheduleDate: datetime | None = strawberry.field(
        default=strawberry.UNSET,
        description="With a zone, not in the past; null clears it on a draft. The status does "
        "not change: use scheduleCampaign for that.",
    )
    process: str | None = strawberry.UNSET
    contactStatus: str | None = strawberry.UNSET
    isAutopilot: bool | None = strawberry.UNSET
    addRecipients: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET, description="Contact ids to add as recipients."
    )
    removeRecipients: list[strawberry.ID] | None = strawberry.field(
        default=strawberry.UNSET, description="Contact ids to remove (not yet messaged ones)."
    )


@strawberry.input(description="Which campaigns to list; every condition given must hold.")
class CampaignFilter:
    status: list[CampaignStatus] | None = strawberry.field(
        default=strawberry.UNSET, description="Any of these statuses."
    )
    type: CampaignType | None = strawberry.UNSET
    createdBy: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="User id of the creator."
    )
    scheduledAfter: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="scheduleDate on or after."
    )
    scheduledBefore: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="scheduleDate before."
    )
    createdAfter: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Created on or after."
    )
    createdBefore: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="Created before."
    )
    search: str | None = strawberry.field(
        default=strawberry.UNSET, description="Part of the name, any case."
    )


@strawberry.input(description="How campaigns are ordered; ties go by id.")
class CampaignOrder:
    field: CampaignOrderField = strawberry.field(
        default=CampaignOrderField.CREATED_AT,
        description="What to order by.",
    )
    direction: SortDirection = strawberry.field(
        default=SortDirection.DESC,
        description="Which way.",
    )


@strawberry.type(description="One contact's message, rendered.")
class MessagePreview:
    text: str = strawberry.field(description="What the contact would receive.")
    encoding: str = strawberry.field(description="GSM-7 or UCS-2.")
    segments: int = strawberry.field(description="SMS segments billed.")
    characters: int = strawberry.field(description="Characters.")
    missing: list[str] = strawberry.field(
        description="Placeholders this contact has no value for (creation leaves such "
        "contacts out unless the placeholder has a fallback)."
    )


@strawberry.type(description="The result of previewMessage.")
class MessagePreviewPayload(Payload):
    preview: MessagePreview | None = strawberry.field(
        default=None, description="The rendering, unless the template or contact is wrong."
    )
