"""`POST /api/campaigns`: the legacy contract, answered by the shared campaign service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.deps import CurrentPrincipal, SettingsDep
from services import campaigns as campaign_service
from services.campaigns import CreatedCampaign
from services.inputs import CreateCampaignInput

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])


class CreatedByOut(BaseModel):
    id: str = Field(alias="_id")
    fullName: str


class StatsOut(BaseModel):
    total: int
    sent: int
    failed: int
    successRate: str = Field(examples=["0%"])


class FailedDetailOut(BaseModel):
    source: str = Field(
        description="newContacts, selectedExistingContacts, userIds, rawCsvData or segmentation"
    )
    index: int | None = Field(description="Position in that list; CSV: spreadsheet row number")
    field: str | None
    value: str | None
    code: str
    message: str


class MessageStatsOut(BaseModel):
    encoding: str = Field(examples=["GSM-7"])
    segments: int
    characters: int
    recipientsMissingValues: int


class CampaignOut(BaseModel):
    id: str = Field(alias="_id")
    organizationId: str
    name: str
    message: str
    userIds: list[str] = Field(description="Contact ids of the recipients")
    scheduleDate: str | None = Field(examples=["2026-05-20T15:00:00.000Z"])
    process: str | None
    contactStatus: str | None
    isAutopilot: bool
    type: str
    status: str
    createdBy: CreatedByOut
    failedUserIds: list[str]
    failedDetails: list[FailedDetailOut] = Field(description="The first 1,000 failures")
    failedDetailsTotal: int = Field(description="How many parts of the input failed in all")
    stats: StatsOut
    messageStats: MessageStatsOut | None
    createdAt: str
    updatedAt: str


class CampaignEnvelope(BaseModel):
    success: bool = True
    message: str = "Campaign created"
    data: CampaignOut


class ErrorItem(BaseModel):
    field: str
    code: str
    message: str


class ErrorEnvelope(BaseModel):
    success: bool = False
    message: str
    errors: list[ErrorItem] | None = None


def iso_millis(value: datetime | None) -> str | None:
    """Formats like the legacy API: `2026-05-20T15:00:00.000Z`."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def campaign_data(created: CreatedCampaign) -> dict[str, Any]:
    """Shapes a created campaign as the legacy `data` object."""
    c = created.campaign
    return {
        "_id": str(c.id),
        "organizationId": str(c.organizationId),
        "name": c.name,
        "message": c.message,
        "userIds": created.contact_ids,
        "scheduleDate": iso_millis(c.scheduleDate),
        "process": c.process,
        "contactStatus": c.contactStatus,
        "isAutopilot": c.isAutopilot,
        "type": c.type.value,
        "status": c.status.value,
        "createdBy": {"_id": str(c.createdBy.id), "fullName": c.createdBy.fullName},
        "failedUserIds": c.failedUserIds,
        "failedDetails": [d.model_dump() for d in c.failedDetails],
        "failedDetailsTotal": c.failedDetailsTotal,
        "stats": {
            "total": c.stats.total,
            "sent": c.stats.sent,
            "failed": c.stats.failed,
            "successRate": c.stats.success_rate,
        },
        "messageStats": c.messageStats.model_dump() if c.messageStats else None,
        "createdAt": iso_millis(c.createdAt),
        "updatedAt": iso_millis(c.updatedAt),
    }


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": text}
    for status, text in {
        400: "Invalid input; `errors[].field` names each problem",
        401: "Missing or invalid bearer token",
        409: "Idempotency-Key reused with a different body, or still in progress",
        413: "Body or recipient count over the configured limits",
    }.items()
}


@router.post(
    "",
    status_code=201,
    summary="Create a new campaign",
    response_model=CampaignEnvelope,
    responses=ERRORS,
)
async def create_campaign(
    body: CreateCampaignInput,
    principal: CurrentPrincipal,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retries with the same key replay the "
            "first response instead of creating again",
        ),
    ] = None,
) -> JSONResponse:
    created = await campaign_service.create_campaign(
        principal=principal, input=body, settings=settings, idempotency_key=idempotency_key
    )
    envelope = {"success": True, "message": "Campaign created", "data": campaign_data(created)}
    return JSONResponse(envelope, status_code=201)
