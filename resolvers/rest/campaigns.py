"""The legacy REST surface for campaigns: parse, call the service GraphQL calls, wrap the answer.

Every answer is one of the `schema.outputs` models inside the legacy envelope, and each
route's `response_model` is that very shape, so OpenAPI shows what is really returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Header, Query

from models import Campaign
from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import (
    Deleted,
    Envelope,
    ListEnvelope,
    PageLimit,
    Pagination,
    UpdateEnvelope,
    error_responses,
    page_limit,
)
from resolvers.rest.shapes import CampaignOut, CampaignSummaryOut, RecipientOut
from schema.outputs import FailureOut
from services.campaigns import creation as campaign_service
from services.campaigns import edits as campaign_edits
from services.campaigns import lifecycle
from services.campaigns import queries as campaign_queries
from services.inputs import (
    CampaignFilter,
    CreateCampaignInput,
    RetryFailedInput,
    ScheduleInput,
    UpdateCampaignInput,
)
from services.sending import failures
from services.storage.tenancy import Tenant

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])

PageNumber = Annotated[int, Query(ge=1, description="Page number, from 1")]


class CampaignEnvelope(Envelope[CampaignOut]):
    """A campaign with its recipients' contact ids (the creation answer's shape)."""


class SummaryEnvelope(Envelope[CampaignSummaryOut]):
    """A campaign without its recipients' ids."""


class CampaignListEnvelope(ListEnvelope[CampaignSummaryOut]):
    """A page of campaigns."""


class CampaignUpdateEnvelope(UpdateEnvelope[CampaignSummaryOut]):
    """An updated campaign, and the recipient changes that were not made."""


class RecipientListEnvelope(ListEnvelope[RecipientOut]):
    """A page of a campaign's recipients."""


class DeletedEnvelope(Envelope[Deleted]):
    """The id of what was deleted."""


@router.post(
    "",
    status_code=201,
    summary="Create a new campaign",
    response_model=CampaignEnvelope,
    responses=error_responses(409, 413),
)
async def create_campaign(
    body: CreateCampaignInput,
    tenant: CurrentTenant,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retries with the same key replay the "
            "first response instead of creating again",
        ),
    ] = None,
) -> CampaignEnvelope:
    created = await campaign_service.create_campaign(
        principal=tenant.principal, input=body, settings=settings, idempotency_key=idempotency_key
    )
    data = CampaignOut.with_recipients(created.campaign, created.contact_ids)
    return CampaignEnvelope(message="Campaign created", data=data)


@router.get(
    "",
    summary="List campaigns, newest first",
    response_model=CampaignListEnvelope,
    responses=error_responses(),
)
async def list_campaigns(
    tenant: CurrentTenant,
    *,
    page: PageNumber = 1,
    limit: PageLimit = 20,
    filter: Annotated[CampaignFilter, Query()],  # its fields, by name (lists repeated)
) -> CampaignListEnvelope:
    limit = page_limit(limit)
    # Legacy callers also send statuses comma-separated: status=draft,scheduled
    statuses = [s for value in filter.status or [] for s in value.split(",") if s.strip()]
    filter = filter.model_copy(update={"status": statuses or None})
    found, total = await campaign_queries.list_campaigns_by_page(
        tenant, filter, page=page, limit=limit
    )
    return CampaignListEnvelope(
        message="Campaigns",
        data=[CampaignSummaryOut.of(c) for c in found],
        pagination=Pagination.of(page, limit, total),
    )


@router.get(
    "/{id}",
    summary="Get a campaign, with its recipients' contact ids",
    response_model=CampaignEnvelope,
    responses=error_responses(404),
)
async def get_campaign(id: str, tenant: CurrentTenant) -> CampaignEnvelope:
    campaign = await campaign_queries.get_campaign(tenant, id)
    assert campaign.id is not None
    user_ids = await campaign_queries.recipient_contact_ids(tenant, campaign.id)
    return CampaignEnvelope(
        message="Campaign", data=CampaignOut.with_recipients(campaign, user_ids)
    )


@router.patch(
    "/{id}",
    summary="Change a draft, scheduled or paused campaign",
    response_model=CampaignUpdateEnvelope,
    responses=error_responses(404, 409),
)
async def update_campaign(
    id: str, body: UpdateCampaignInput, tenant: CurrentTenant, settings: SettingsDep
) -> CampaignUpdateEnvelope:
    updated = await campaign_edits.update_campaign(tenant, id, body, settings)
    return CampaignUpdateEnvelope(
        message="Campaign updated",
        data=CampaignSummaryOut.of(updated.campaign),
        failedDetails=updated.failed,
    )


@router.delete(
    "/{id}",
    summary="Delete a draft or cancelled campaign and its recipients",
    response_model=DeletedEnvelope,
    responses=error_responses(404, 409),
)
async def delete_campaign(id: str, tenant: CurrentTenant) -> DeletedEnvelope:
    deleted = await lifecycle.delete(tenant, id)
    return DeletedEnvelope(message="Campaign deleted", data=Deleted(_id=deleted))


@router.post(
    "/{id}/schedule",
    summary="Schedule or reschedule a campaign",
    response_model=SummaryEnvelope,
    responses=error_responses(404, 409),
)
async def schedule_campaign(
    id: str, body: ScheduleInput, tenant: CurrentTenant, settings: SettingsDep
) -> SummaryEnvelope:
    campaign = await lifecycle.schedule(tenant, id, body.scheduleDate, settings)
    return SummaryEnvelope(message="Campaign scheduled", data=CampaignSummaryOut.of(campaign))


def _action_route(action: str, summary: str, done: str, move: Move) -> None:
    """Adds `POST /api/campaigns/{id}/<action>`: one status move, answered the same way."""

    async def route(id: str, tenant: CurrentTenant) -> SummaryEnvelope:
        campaign = await move(tenant, id)
        return SummaryEnvelope(message=done, data=CampaignSummaryOut.of(campaign))

    route.__name__ = f"{action}_campaign"
    router.post(
        f"/{{id}}/{action}",
        summary=summary,
        response_model=SummaryEnvelope,
        responses=error_responses(404, 409),
    )(route)


Move = Callable[[Tenant, str], Awaitable[Campaign]]

for _action, _summary, _done, _move in (
    ("send", "Start sending now", "Campaign sending", lifecycle.send_now),
    ("pause", "Pause a scheduled or sending campaign", "Campaign paused", lifecycle.pause),
    ("resume", "Resume a paused campaign", "Campaign resumed", lifecycle.resume),
    ("cancel", "Cancel a campaign that is not completed", "Campaign cancelled", lifecycle.cancel),
):
    _action_route(_action, _summary, _done, _move)


class FailureListEnvelope(Envelope[list[FailureOut]]):
    pass


@router.get(
    "/{id}/failures",
    summary="Who did not get the message, by where and why, and whether a retry can help",
    response_model=FailureListEnvelope,
    responses=error_responses(404),
)
async def campaign_failures(id: str, tenant: CurrentTenant) -> FailureListEnvelope:
    found = await failures.failure_report(tenant, id)
    return FailureListEnvelope(message="Failures", data=[FailureOut.of(f) for f in found])


@router.post(
    "/{id}/retry-failed",
    summary="Send once more to a completed campaign's retryable failures",
    response_model=SummaryEnvelope,
    responses=error_responses(400, 404, 409),
)
async def retry_failed(
    id: str, tenant: CurrentTenant, body: RetryFailedInput | None = None
) -> SummaryEnvelope:
    codes = body.codes if body is not None else None
    campaign = await failures.retry_failed(tenant, id, codes)
    return SummaryEnvelope(message="Retry started", data=CampaignSummaryOut.of(campaign))


@router.post(
    "/{id}/duplicate",
    status_code=201,
    summary="Copy a campaign as a new draft",
    response_model=CampaignEnvelope,
    responses=error_responses(404),
)
async def duplicate_campaign(
    id: str, tenant: CurrentTenant, settings: SettingsDep
) -> CampaignEnvelope:
    created = await campaign_edits.duplicate_campaign(tenant, id, settings)
    data = CampaignOut.with_recipients(created.campaign, created.contact_ids)
    return CampaignEnvelope(message="Campaign created", data=data)


@router.get(
    "/{id}/recipients",
    summary="List a campaign's recipients in order",
    response_model=RecipientListEnvelope,
    responses=error_responses(404),
)
async def list_recipients(
    id: str,
    tenant: CurrentTenant,
    settings: SettingsDep,
    page: PageNumber = 1,
    limit: PageLimit = 20,
) -> RecipientListEnvelope:
    limit = page_limit(limit)
    campaign = await campaign_queries.get_campaign(tenant, id)
    found = await campaign_queries.recipients_by_page(tenant, campaign, page=page, limit=limit)
    return RecipientListEnvelope(
        message="Recipients",
        data=[RecipientOut.of(r) for r in found],
        pagination=Pagination.of(page, limit, campaign.stats.total),
    )
