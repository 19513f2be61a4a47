"""The organization's contacts as CSV rows, streamed in list order a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from core.config import Settings
from core.errors import Path
from models import Contact
from services.contacts.queries import contact_query
from services.inputs import ContactFilter
from services.storage import positions
from services.storage.csvout import Cell, Export
from services.storage.streams import equality_pages
from services.storage.tenancy import Tenant

CONTACT_COLUMNS = (
    "contactId",
    "firstName",
    "lastName",
    "phoneNumber",
    "email",
    "contactStatus",
    "process",
    "tags",
    "assignedTo",
    "optedOut",
    "optedOutAt",
    "optOutReason",
    "consentSource",
    "consentAt",
    "consentFile",
    "createdAt",
    "updatedAt",
)
"""Tags are joined with `;`. Stored names except `contactId` (`_id`)."""


async def export_contacts(
    tenant: Tenant, settings: Settings, filter: ContactFilter | None = None, at: Path = ()
) -> Export:
    """Returns the contacts a filter matches, in list order, as a stream of pages.

    The filter is checked (and the list's end found) before the first row, so a bad filter is
    a 400 rather than a broken download. Each page is one `{organizationId, page}` equality
    read plus the filter's conditions, as in `list_contacts`. `at` is where the filter's fields
    are in the request (the CSV route's query parameters: at the top).
    """
    query = contact_query(filter, settings, at)
    projection = {name: 1 for name in CONTACT_COLUMNS if name != "contactId"}
    last = await positions.last_page(tenant)
    if isinstance(query.get("phoneNumber"), str):  # one exact number: at most one contact
        numbers = range(0)
        exact = await tenant.raw_find(Contact, query, projection).to_list(1)
    else:
        numbers, exact = range(last + 1), []
    pages = equality_pages(tenant, Contact, "page", numbers, where=query, projection=projection)
    return Export(CONTACT_COLUMNS, _rows(exact, pages))


async def _rows(
    exact: list[dict[str, Any]], pages: AsyncIterator[list[dict[str, Any]]]
) -> AsyncIterator[list[list[Cell]]]:
    if exact:
        yield [contact_row(doc) for doc in exact]
    async for page in pages:
        yield [contact_row(doc) for doc in page]


def contact_row(doc: dict[str, Any]) -> list[Cell]:
    """Returns a stored contact's cells in `CONTACT_COLUMNS` order."""
    assigned = doc.get("assignedTo")
    return [
        str(doc["_id"]),
        doc.get("firstName", ""),
        doc.get("lastName", ""),
        doc.get("phoneNumber"),
        doc.get("email"),
        doc.get("contactStatus"),
        doc.get("process"),
        ";".join(doc.get("tags") or []),
        str(assigned) if assigned else None,
        bool(doc.get("optedOut", False)),
        doc.get("optedOutAt"),
        doc.get("optOutReason"),
        doc.get("consentSource"),
        doc.get("consentAt"),
        doc.get("consentFile"),
        doc.get("createdAt"),
        doc.get("updatedAt"),
    ]
