"""The REST surface of the suppression list, in the legacy envelope; the same service as
GraphQL's suppressNumbers, unsuppressNumbers and suppressedNumbers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query

from resolvers.deps import CurrentTenant, SettingsDep
from resolvers.rest.models import CursorPagination, Envelope, PageLimit, error_responses
from resolvers.rest.shapes import legacy_dates
from schema import outputs
from schema.outputs import SuppressResultOut, UnsuppressResultOut
from services.contacts import suppressions
from services.inputs import SuppressNumbersInput, UnsuppressNumbersInput

router = APIRouter(prefix="/api/suppressions", tags=["suppressions"])

if TYPE_CHECKING:
    SuppressedNumberOut = outputs.SuppressedNumberOut
else:
    SuppressedNumberOut = legacy_dates(outputs.SuppressedNumberOut)


class SuppressionListEnvelope(Envelope[list[SuppressedNumberOut]]):
    """A page of the suppression list, in the order numbers were added (a search of 7 digits
    or more: in number order)."""

    pagination: CursorPagination


class SuppressEnvelope(Envelope[SuppressResultOut]):
    """What an import did."""


class UnsuppressEnvelope(Envelope[UnsuppressResultOut]):
    """What taking numbers off did."""


@router.get(
    "",
    summary="List suppressed numbers, in the order added (a long search: in number order)",
    response_model=SuppressionListEnvelope,
    responses=error_responses(),
)
async def list_suppressions(
    tenant: CurrentTenant,
    settings: SettingsDep,
    limit: PageLimit = 20,
    after: Annotated[
        str | None, Query(description="`pagination.nextCursor` of the previous page")
    ] = None,
    search: Annotated[
        str | None, Query(description="The start of the number (its digits, `+` optional)")
    ] = None,
) -> SuppressionListEnvelope:
    page = await suppressions.suppressed_page(
        tenant, settings, first=limit, after=after, search=search, size_at=("limit",)
    )
    return SuppressionListEnvelope(
        message="Suppressed numbers",
        data=[SuppressedNumberOut.of(item) for item in page.items],
        pagination=CursorPagination.of(page, limit),
    )


@router.post(
    "",
    summary="Add numbers to the suppression list (typed or CSV, up to 100,000)",
    response_model=SuppressEnvelope,
    responses=error_responses(413),
)
async def suppress(
    body: SuppressNumbersInput, tenant: CurrentTenant, settings: SettingsDep
) -> SuppressEnvelope:
    result = await suppressions.suppress_numbers(tenant, body, settings)
    return SuppressEnvelope(message="Numbers suppressed", data=SuppressResultOut.of(result))


@router.delete(
    "",
    summary="Take numbers off the suppression list",
    response_model=UnsuppressEnvelope,
    responses=error_responses(413),
)
async def unsuppress(
    body: UnsuppressNumbersInput, tenant: CurrentTenant, settings: SettingsDep
) -> UnsuppressEnvelope:
    result = await suppressions.unsuppress_numbers(tenant, body, settings)
    return UnsuppressEnvelope(message="Numbers unsuppressed", data=UnsuppressResultOut.of(result))
