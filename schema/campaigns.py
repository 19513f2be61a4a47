"""GraphQL types for campaigns and recipients.

Each type is derived from its pydantic shape (`schema.derive`): object types from the
`schema.outputs` models the REST routes also return, inputs from the service commands in
`services.inputs`; a class body holds only what GraphQL does differently. Object types read
the attributes of the very objects REST returns. Enums are the models' enums.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry
from beanie import PydanticObjectId

from models.campaign import CampaignStatus, CampaignType, HoldReason, InitialStatus
from models.campaign import FailedDetail as FailedDetailModel
from models.campaign import FollowUp as FollowUpModel
from models.campaign import FollowUpStats as FollowUpStatsModel
from models.campaign import Hold as HoldModel
from models.campaign import MessageStats as MessageStatsModel
from models.contact import ConsentSource
from models.recipient import DeliveryStatus, RecipientStatus
from schema.contacts import Contact
from schema.context import Info
from schema.derive import graphql_input, graphql_type
from schema.errors import Payload
from schema.loaders import RecipientsKey
from schema.outputs import (
    CampaignSummaryOut,
    ContactOut,
    FailureOut,
    HistoryEntryOut,
    RecipientOut,
    StatsOut,
)
from schema.pagination import Connection
from schema.users import User
from services import inputs as commands
from services.campaigns import queries as campaign_queries
from services.campaigns.creation import CHOICE_CODES
from services.inputs import AssignmentStrategy, CampaignOrderField, SortDirection
from services.sending import failures as failure_reports
from services.sending.failures import FailureStage

ENUM_CODES: dict[str, str] = {}
"""The code the service gives a bad value of each GraphQL enum it checks itself (by the
enum's GraphQL name), so a value GraphQL refuses gets the same code as from REST."""


def _enum(kind: type[Enum], description: str, name: str | None = None) -> None:
    strawberry.enum(kind, name=name, description=description)
    if kind in CHOICE_CODES:
        ENUM_CODES[name or kind.__name__] = CHOICE_CODES[kind]


_enum(CampaignStatus, "Where a campaign is in its lifecycle.")
_enum(InitialStatus, "A new campaign's.", name="InitialCampaignStatus")
_enum(CampaignType, "The channel.")
_enum(RecipientStatus, "Where one recipient's message is.")
_enum(DeliveryStatus, "What the carrier reported about a sent message.")
_enum(AssignmentStrategy, "How recipients are shared among reps.")
_enum(CampaignOrderField, "What campaigns are ordered by.")
_enum(SortDirection, "Ascending or descending.")
_enum(FailureStage, "Where a message was lost.")
_enum(HoldReason, "Why recipients are held back.")
ENUM_CODES["ConsentSource"] = CHOICE_CODES[ConsentSource]  # declared with the contact types


@graphql_type(StatsOut, name="CampaignStats", description="Counters over a campaign's recipients.")
class CampaignStats:
    pass


@graphql_type(MessageStatsModel, description="The cost of one message, for its longest rendering.")
class MessageStats:
    pass


@graphql_type(HoldModel, name="CampaignHold", description="Recipients held back, and why.")
class CampaignHold:
    pass


@graphql_type(FollowUpModel, description="One follow-up step of a campaign's cadence.")
class FollowUp:
    pass


@graphql_type(FollowUpStatsModel, description="How one follow-up step went.")
class FollowUpStats:
    pass


@graphql_type(FailureOut, name="CampaignFailure", description="Recipients lost one way.")
class CampaignFailure:
    pass


@graphql_type(FailedDetailModel, description="A part of the input left out, and why.")
class FailedDetail:
    pass


@graphql_type(HistoryEntryOut, name="HistoryEntry", description="One change of a campaign.")
class HistoryEntry:
    by: User | None  # the rep as a User; REST has no history


@graphql_type(
    RecipientOut,
    name="Recipient",
    description="One contact of one campaign, and what happened to its message.",
)
class Recipient:
    @strawberry.field(description="The contact; null if it was deleted since.")
    async def contact(self, root: strawberry.Parent[RecipientOut], info: Info) -> Contact | None:
        found = await info.context.loaders.contacts.load(_oid(root.contactId))
        return ContactOut.of(found) if found else None  # type: ignore[return-value]


@graphql_type(CampaignSummaryOut, name="Campaign", description="An SMS campaign.")
class Campaign:
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

    @strawberry.field(
        description="Who did not get the message, counted by where and why (provider and "
        "carrier codes in plain words), most frequent first; `retryable` ones are what "
        "retryFailed sends again."
    )
    async def failures(
        self, root: strawberry.Parent[CampaignSummaryOut], info: Info
    ) -> list[CampaignFailure]:
        found = await failure_reports.failure_report(info.context.tenant, str(root.id))
        return [FailureOut.of(f) for f in found]  # type: ignore[misc]

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


@graphql_input(commands.NewContactInput, description="A contact typed in by the rep.")
class NewContactInput:
    pass


@graphql_input(
    commands.ExistingContactRef,
    name="ExistingContactInput",
    description="An existing contact of the caller's organization.",
    exclude=("firstName", "lastName", "phoneNumber"),  # REST's ignored snapshot
)
class ExistingContactInput:
    pass


@graphql_input(
    commands.CsvColumns, name="CsvColumnsInput", description="Maps contact fields to CSV headers."
)
class CsvColumnsInput:
    pass


@graphql_input(
    commands.CsvData,
    name="CsvDataInput",
    description="Contacts from CSV: `csv` text, or `headers` and `rows`.",
)
class CsvDataInput:
    columns: CsvColumnsInput | None = None  # REST takes any mapping, checked by the service


@graphql_input(
    commands.Segmentation,
    name="SegmentationInput",
    description="A filter over the organization's contacts.",
)
class SegmentationInput:
    pass


@graphql_input(
    commands.Assignment, name="AssignmentInput", description="How recipients are assigned to reps."
)
class AssignmentInput:
    pass


@graphql_input(commands.FollowUpInput, description="One follow-up step.")
class FollowUpInput:
    pass


@graphql_input(commands.CreateCampaignInput, description="Everything needed to create a campaign.")
class CreateCampaignInput:
    # GraphQL's list coercion and enums; REST reads the same values as strings
    newContacts: list[NewContactInput] | None = None
    selectedExistingContacts: list[ExistingContactInput] | None = None
    userIds: list[strawberry.ID] | None = None
    followUps: list[FollowUpInput] | None = None
    status: InitialStatus | None = None
    type: CampaignType = CampaignType.SMS
    idempotencyKey: str | None = strawberry.field(  # REST: the Idempotency-Key header
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


@graphql_input(
    commands.UpdateCampaignInput,
    description="Changes to a campaign; only the fields given change.",
    partial=True,
)
class UpdateCampaignInput:
    pass


@graphql_input(
    commands.CampaignFilter,
    description="Which campaigns to list; every condition given must hold.",
    partial=True,
)
class CampaignFilter:
    status: list[CampaignStatus] | None
    type: CampaignType | None


@graphql_input(commands.CampaignOrder, description="How campaigns are ordered; ties go by id.")
class CampaignOrder:
    pass


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
