"""Campaign mutations: translate the GraphQL input, call the service, shape the payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from core.errors import FieldError, InvalidInput
from resolvers.context import Info, IsAuthenticated
from schema.campaigns import Campaign, CreateCampaignInput, CreateCampaignPayload
from schema.errors import UserError
from services import campaigns as campaign_service
from services.inputs import parse_input


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
        "isAutopilot": data.is_autopilot,
        "type": data.type.value,
    }


_GRAPHQL_NAMES = {"_id": "id"}


def user_errors(errors: list[FieldError]) -> list[UserError]:
    """Returns the errors with paths spelled as the GraphQL input spells them."""
    renamed = [
        FieldError(tuple(_GRAPHQL_NAMES.get(str(p), p) for p in e.path), e.code, e.message)
        for e in errors
    ]
    return [UserError.from_field_error(e) for e in renamed] or [
        UserError(field=["input"], code="BAD_USER_INPUT", message="Invalid input")
    ]


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(
        description="Creates a campaign from new contacts, existing contacts, CSV and a "
        "segment. Parts of the input that cannot be used are listed in "
        "campaign.failedDetails; input wrong as a whole comes back in userErrors.",
        permission_classes=[IsAuthenticated],
    )
    async def create_campaign(
        self, info: Info, input: CreateCampaignInput
    ) -> CreateCampaignPayload:
        try:
            created = await campaign_service.create_campaign(
                principal=info.context.principal,
                input=parse_input(to_service_input(input)),
                settings=info.context.settings,
                idempotency_key=input.idempotency_key,
            )
        except InvalidInput as exc:
            errors = exc.errors or [FieldError((), exc.code, exc.message)]
            return CreateCampaignPayload(campaign=None, user_errors=user_errors(errors))
        return CreateCampaignPayload(
            campaign=Campaign.from_document(created.campaign, created.contact_ids), user_errors=[]
        )
