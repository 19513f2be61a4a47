"""CSV downloads, streamed: a campaign's recipients and the organization's contacts.

Not in the legacy envelope (a spreadsheet opens the body as it is); refusals before the first
row (a bad filter, an unknown campaign) are the envelope's errors as everywhere under `/api`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import error_responses
from services.contacts import export as contact_export
from services.inputs import ContactFilter
from services.sending import export as recipient_export
from services.storage.csvout import Export

router = APIRouter(tags=["exports"])


def _csv_response(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    }


def _download(export: Export, filename: str) -> StreamingResponse:
    return StreamingResponse(
        export.chunks(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/api/campaigns/{id}/recipients.csv",
    summary="Download a campaign's recipients and what happened to each message, as CSV",
    response_class=StreamingResponse,
    responses={**_csv_response("One row per recipient, in campaign order"), **error_responses(404)},
)
async def recipients_csv(id: str, tenant: CurrentTenant) -> StreamingResponse:
    export = await recipient_export.export_recipients(tenant, id)
    return _download(export, f"campaign-{id}-recipients.csv")


@router.get(
    "/api/contacts.csv",
    summary="Download contacts (optionally filtered), in list order, as CSV",
    response_class=StreamingResponse,
    responses={**_csv_response("One row per contact, in list order"), **error_responses()},
)
async def contacts_csv(
    tenant: CurrentTenant,
    settings: SettingsDep,
    filter: Annotated[ContactFilter, Query()],  # its fields, by name (lists repeated)
) -> StreamingResponse:
    export = await contact_export.export_contacts(tenant, settings, filter)
    return _download(export, "contacts.csv")
