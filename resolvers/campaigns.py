"""Campaign queries and mutations: parse the GraphQL input, call a service, shape the answer.

No rule lives here: each resolver builds the same service command the REST route builds
(`services.inputs`), and answers with `schema.outputs` objects the GraphQL types read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from core.errors import NotFound
from models import Campaign as CampaignDocument
from models.campaign import CampaignStatus
from resolvers.payloads import command, user_errors
from schema.campaigns import (
    Campaign,
    CampaignFilter,
    CampaignOrder,
    CampaignPayload,
    CampaignStats,
    CreateCampaignInput,
    CreateCampaignPayload,
    DeleteCampaignPayload,
    MessagePreview,
    MessagePreviewPayload,
    UpdateCampaignInput,
    UpdateCampaignPayload,
)
from schema.context import Info, IsAuthenticated
from schema.outputs import CampaignOut, CampaignSummaryOut
from schema.pagination import Connection
from services import inputs as commands
from services.campaigns import creation as campaign_service
from services.campaigns import edits as campaign_edits
from services.campaigns import lifecycle, previews
from services.campaigns import queries as campaign_queries
from services.inputs import parse_as, parse_input


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def to_service_input(data: CreateCampaignInput) -> dict[str, Any]:
    """Maps the GraphQL input to the service input, in the legacy field names."""
    csv = data.raw_csv_data
    seg = data.segmentation
    return {
        "name": data.name,
        "message": data.message,
        "newContacts": [
            {
                "firstName": c.first_name,
                "lastName": c.last_name,
                "phoneNumber": c.phone_number,
                "email": c.email,
            }
            for c in data.new_contacts or []
        ],
        "selectedExistingContacts": [
            {"_id": str(c.id)} for c in data.selected_existing_contacts or []
        ],
        "userIds": [str(i) for i in data.user_ids or []],
        "rawCsvData": None
        if csv is None
        else {
            "csv": csv.csv,
            "headers": csv.headers,
            "rows": csv.rows,
            "delimiter": csv.delimiter,
            "columns": None
            if csv.columns is None
            else {
                k: v
                for k, v in {
                    "firstName": csv.columns.first_name,
                    "lastName": csv.columns.last_name,
                    "phoneNumber": csv.columns.phone_number,
                    "email": csv.columns.email,
                }.items()
                if v is not None
            },
        },
        "segmentation": None
        if seg is None
        else {
            "contactStatus": seg.contact_status,
            "process": seg.process,
            "tags": seg.tags,
            "createdAfter": _iso(seg.created_after),
            "createdBefore": _iso(seg.created_before),
        },
        "assignment": None
        if data.assignment is None
        else {
            "strategy": data.assignment.strategy.value,
            "userIds": [str(i) for i in data.assignment.user_ids],
        },
        "scheduleDate": _iso(data.schedule_date),
        "status": data.status.value if data.status else None,
        "process": data.process,
        "contactStatus": data.contact_status,
        "contactStatusOnReply": data.contact_status_on_reply,
        "isAutopilot": data.is_autopilot,
        "type": data.type.value,
    }


AUTH: list[type[BasePermission]] = [IsAuthenticated]


@strawberry.type
class CampaignQueries:
    @strawberry.field(
        description="A campaign of the caller's organization; null when there is none "
        "(another organization's campaigns do not exist here).",
        permission_classes=AUTH,
    )
    async def campaign(self, info: Info, id: strawberry.ID) -> Campaign | None:
        try:
            found = await campaign_queries.get_campaign(info.context.tenant, id)
        except NotFound:
            return None
        return CampaignSummaryOut.of(found)  # type: ignore[return-value]

    @strawberry.field(
        description="Campaigns, newest first unless `orderBy` says otherwise; at most 100 "
        "per page.",
        permission_classes=AUTH,
    )
    async def campaigns(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: CampaignFilter | None = None,
        order_by: CampaignOrder | None = None,
    ) -> Connection[Campaign]:
        context = info.context
        filter_command = (
            parse_as(commands.CampaignFilter, command(filter), "filter") if filter else None
        )
        order = parse_as(commands.CampaignOrder, command(order_by), "order") if order_by else None
        page = await campaign_queries.list_campaigns(
            context.tenant,
            context.settings,
            filter=filter_command,
            order=order,
            first=first,
            after=after,
        )

        async def count() -> int:
            return await campaign_queries.count_campaigns(context.tenant, filter_command)

        return Connection.of(page, CampaignSummaryOut.of, count)

    @strawberry.field(
        description="Renders a template for one contact, with the checks creation applies.",
        permission_classes=AUTH,
    )
    @user_errors
    async def preview_message(
        self, info: Info, message: str, contact_id: strawberry.ID
    ) -> MessagePreviewPayload:
        preview = await previews.preview_message(info.context.tenant, message, contact_id)
        return MessagePreviewPayload(
            preview=MessagePreview(
                text=preview.text,
                encoding=preview.encoding,
                segments=preview.segments,
                characters=preview.characters,
                missing=preview.missing,
            )
        )


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(
        description="Creates a campaign from new contacts, existing contacts, CSV and a "
        "segment. Parts of the input that cannot be used are listed in "
        "campaign.failedDetails; input wrong as a whole comes back in userErrors.",
        permission_classes=AUTH,
    )
    @user_errors
    async def create_campaign(
        self, info: Info, input: CreateCampaignInput
    ) -> CreateCampaignPayload:
        info.context.claim_creation()
        created = await campaign_service.create_campaign(
            principal=info.context.principal,
            input=parse_input(to_service_input(input)),
            settings=info.context.settings,
            idempotency_key=input.idempotency_key,
        )
        campaign = CampaignOut.with_recipients(created.campaign, created.contact_ids)
        return CreateCampaignPayload(campaign=campaign)  # type: ignore[arg-type]

    @strawberry.mutation(
        description="Changes a draft, scheduled or paused campaign: its fields, and its "
        "recipients by contact id. Ids that could not be added or removed are in "
        "failedDetails.",
        permission_classes=AUTH,
    )
    @user_errors
    async def update_campaign(
        self, info: Info, id: strawberry.ID, input: UpdateCampaignInput
    ) -> UpdateCampaignPayload:
        context = info.context
        updated = await campaign_edits.update_campaign(
            context.tenant,
            id,
            parse_as(commands.UpdateCampaignInput, command(input), "campaign update"),
            context.settings,
        )
        return UpdateCampaignPayload(
            campaign=CampaignSummaryOut.of(updated.campaign),  # type: ignore[arg-type]
            failedDetails=updated.failed,  # type: ignore[arg-type]
        )

    @strawberry.mutation(
        description="Schedules (or reschedules) a draft, scheduled or paused campaign.",
        permission_classes=AUTH,
    )
    @user_errors
    async def schedule_campaign(
        self, info: Info, id: strawberry.ID, schedule_date: datetime
    ) -> CampaignPayload:
        campaign = await lifecycle.schedule(
            info.context.tenant, id, schedule_date.isoformat(), info.context.settings
        )
        return _campaign_payload(campaign)

    @strawberry.mutation(
        description="Starts sending a draft, scheduled or paused campaign now.",
        permission_classes=AUTH,
    )
    @user_errors
    async def send_campaign_now(self, info: Info, id: strawberry.ID) -> CampaignPayload:
        return _campaign_payload(await lifecycle.send_now(info.context.tenant, id))

    @strawberry.mutation(
        description="Pauses a scheduled or sending campaign.", permission_classes=AUTH
    )
    @user_errors
    async def pause_campaign(self, info: Info, id: strawberry.ID) -> CampaignPayload:
        return _campaign_payload(await lifecycle.pause(info.context.tenant, id))

    @strawberry.mutation(
        description="Resumes a paused campaign where it stopped.", permission_classes=AUTH
    )
    @user_errors
    async def resume_campaign(self, info: Info, id: strawberry.ID) -> CampaignPayload:
        return _campaign_payload(await lifecycle.resume(info.context.tenant, id))

    @strawberry.mutation(
        description="Cancels a campaign that is not completed; nothing more is sent.",
        permission_classes=AUTH,
    )
    @user_errors
    async def cancel_campaign(self, info: Info, id: strawberry.ID) -> CampaignPayload:
        return _campaign_payload(await lifecycle.cancel(info.context.tenant, id))

    @strawberry.mutation(
        description="Deletes a draft or cancelled campaign and its recipients.",
        permission_classes=AUTH,
    )
    @user_errors
    async def delete_campaign(self, info: Info, id: strawberry.ID) -> DeleteCampaignPayload:
        deleted = await lifecycle.delete(info.context.tenant, id)
        return DeleteCampaignPayload(deletedId=strawberry.ID(deleted))

    @strawberry.mutation(
        description="Copies a campaign as a new draft with the same template, settings and "
        "recipients (contacts that opted out since are left out, in failedDetails).",
        permission_classes=AUTH,
    )
    @user_errors
    async def duplicate_campaign(self, info: Info, id: strawberry.ID) -> CreateCampaignPayload:
        info.context.claim_creation()
        created = await campaign_edits.duplicate_campaign(
            info.context.tenant, id, info.context.settings
        )
        campaign = CampaignOut.with_recipients(created.campaign, created.contact_ids)
        return CreateCampaignPayload(campaign=campaign)  # type: ignore[arg-type]


def _campaign_payload(campaign: CampaignDocument) -> CampaignPayload:
    return CampaignPayload(campaign=CampaignSummaryOut.of(campaign))  # type: ignore[arg-type]


PROGRESS_EVERY_S = 0.5
"""How often a `campaignProgress` subscription reads the campaign: at most two values a
second, from the database, so any API process serves it whichever process sends."""


@strawberry.type(description="Where a campaign's sending is, pushed as it changes.")
class CampaignProgress:
    status: CampaignStatus = strawberry.field(description="The lifecycle status.")
    stats: CampaignStats = strawberry.field(description="Sending counters, live.")
    next_send_at: datetime | None = strawberry.field(
        description="When the next message may go (quiet hours); null while nothing waits."
    )


@strawberry.type
class CampaignSubscriptions:
    @strawberry.subscription(
        description="A campaign's status and counters: a value now, another whenever they "
        "change (at most two a second), and the end when the campaign completes or is "
        "cancelled. Over graphql-transport-ws, with the token in `connection_init`'s payload "
        '(`{"Authorization": "Bearer ..."}`).',
        permission_classes=AUTH,
    )
    async def campaign_progress(
        self, info: Info, id: strawberry.ID
    ) -> AsyncGenerator[CampaignProgress, None]:
        updates = campaign_queries.progress(info.context.tenant, id, PROGRESS_EVERY_S)
        try:
            async for found in updates:
                out = CampaignSummaryOut.of(found)
                yield CampaignProgress(
                    status=out.status,
                    stats=out.stats,  # type: ignore[arg-type]
                    next_send_at=out.nextSendAt,
                )
        except NotFound as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from None
