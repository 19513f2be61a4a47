"""The legacy envelope as response models, so OpenAPI documents what the routes return."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from models.campaign import FailedDetail
from schema.outputs import FieldProblem
from services.storage.pages import MAX_PAGE, Page, page_size

T = TypeVar("T")

PageLimit = Annotated[
    int,
    Query(
        description=f"Items per page, 1 to {MAX_PAGE}",
        json_schema_extra={"minimum": 1, "maximum": MAX_PAGE},
    ),
]
"""Items per page. The bounds are documented here and checked by the service's `page_size`,
so REST and GraphQL refuse a size out of range with the same code (INVALID_PAGE_SIZE)."""


def page_limit(limit: int) -> int:
    """Returns `limit`, refused by the service's rule when out of range."""
    return page_size(limit, ("limit",))


class Envelope(BaseModel, Generic[T]):
    """`{"success": true, "message": ..., "data": ...}`"""

    success: bool = True
    message: str
    data: T


class Pagination(BaseModel):
    page: int = Field(description="This page, from 1")
    limit: int = Field(description="Items per page")
    total: int = Field(description="Items matching in all")
    pages: int = Field(description="Pages in all")

    @classmethod
    def of(cls, page: int, limit: int, total: int) -> Pagination:
        return cls(page=page, limit=limit, total=total, pages=-(-total // limit))


class CursorPagination(BaseModel):
    limit: int = Field(description="Items per page")
    hasMore: bool = Field(description="Whether another page follows")
    nextCursor: str | None = Field(description="Pass as `after` for the next page")

    @classmethod
    def of(cls, page: Page[Any], limit: int) -> CursorPagination:
        """The position of a service's keyset page, as the legacy lists show it."""
        return cls(
            limit=limit,
            hasMore=page.has_next,
            nextCursor=page.end_cursor if page.has_next else None,
        )


class ListEnvelope(Envelope[list[T]], Generic[T]):
    """A page of items with its numbered-page position."""

    pagination: Pagination


class UpdateEnvelope(Envelope[T], Generic[T]):
    """An update's answer: the item as written, and what of the request was not done."""

    failedDetails: list[FailedDetail] = Field(
        description="Recipients asked to be added or removed that were not, and why"
    )


class Deleted(BaseModel):
    id: str = Field(alias="_id")


class ErrorItem(FieldProblem):
    # the shared problem shape, with the path spelled as the legacy callers spell it
    field: str = Field(  # type: ignore[assignment]
        description="Dotted path into the request, e.g. newContacts.3.phoneNumber"
    )


class ErrorEnvelope(BaseModel):
    success: bool = False
    message: str
    errors: list[ErrorItem] | None = None


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Documents the envelope errors a route can answer."""
    text = {
        400: "Invalid input; `errors[].field` names each problem",
        401: "Missing or invalid bearer token",
        404: "No such item in your organization (another organization's ids answer the same)",
        409: "The item's state does not allow this, or an Idempotency-Key was reused",
        413: "Body or recipient count over the configured limits",
        429: "Your organization's request budget is spent; retry after `Retry-After` seconds",
    }
    listed = (400, 401, *statuses, 429)
    return {s: {"model": ErrorEnvelope, "description": text[s]} for s in listed}
