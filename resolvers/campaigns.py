"""Campaign queries and mutations: parse the GraphQL input, call a service, shape the answer.

No rule lives here: each resolver turns its input into the same service command the REST
route validates (`to_command`), and answers with `schema.outputs` objects the types read.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from graphql import GraphQLError
from strawberry.permission import BasePermission

from core.errors import NotFound
from models import Campaign as CampaignDocument
from resolvers.payloads import user_errors
from schema.campaigns import (
    Campaign,
    CampaignFilter,
    CampaignOrder,
    CampaignPayload,
    CreateCampaignInput,
    CreateCampaignPayload,
    DeleteCampaignPayload,
    MessagePreview,
    MessagePreviewPayload,
    UpdateCampaignInput,
    UpdateCampaignPayload,
)
from schema.context import Info, IsAuthenticated
from schema.derive import graphql_type, to_command
from schema.outputs import CampaignOut, CampaignSummaryOut
from schema.pagination import Connection
from services.campaigns import creation as campaign_service
from services.campaigns import edits as campaign_edits
from services.campaigns import lifecycle, previews, progress
from services.campaigns import queries as campaign_queries
from services.sending import failures

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
        filter_command = to_command(filter, "filter") if filter else None
        order = to_command(order_by, "order") if order_by else None
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
            input=to_command(input, "campaign input"),
            settings=info.context.settings,
            idempotency_key=input.idempotencyKey,
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
            to_command(input, "campaign update"),
            context.settings,
        )
        return UpdateCampaignPayload(
            campaign=CampaignSummaryOut.of(updated.campaign),  # type: ignore[arg-type]
            failedDetails=updated.failed,  # type: ignore[arg-type]
        )

    @strawberry.mutation(
        description="Sends once more to a completed campaign's recipients whose failure a "
        "retry can help (only `codes`, if given; see Campaign.failures); each recipient is "
        "resent at most once. The campaign is sending again until the retry is done.",
        permission_classes=AUTH,
    )
    @user_errors
    async def retry_failed(
        self, info: Info, id: strawberry.ID, codes: list[str] | None = None
    ) -> CampaignPayload:
        return _campaign_payload(await failures.retry_failed(info.context.tenant, id, codes))

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


@graphql_type(
    CampaignSummaryOut,
    only=("status", "stats", "followUpStats", "holds", "nextSendAt"),
    description="Where a campaign's sending is, pushed as it changes.",
)
class CampaignProgress:
    pass


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
        updates = progress.WATCHER.follow(info.context.tenant, id)
        try:
            async for found in updates:
                yield CampaignSummaryOut.of(found)  # type: ignore[misc]
        except NotFound as exc:
            raise GraphQLError(exc.message, extensions={"code": exc.code}) from None
