"""Reading contacts: by id, and pages filtered by stage, pipeline, tags, opt-out or search."""

from __future__ import annotations

import re
from typing import Any

from core.config import Settings
from core.errors import FieldError, InvalidInput, NotFound, Path
from models import Contact
from services.contacts import PhoneError, normalize_phone
from services.inputs import ContactFilter
from services.pages import Cursors, Page, after_filter, page_size
from services.tenancy import Tenant

MAX_SEARCH = 100
DIGITS = re.compile(r"[\d\s()+.-]+")


async def get_contact(tenant: Tenant, contact_id: str) -> Contact:
    """Returns the contact, or raises `NotFound` (also for another organization's id)."""
    contact = await tenant.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact")
    return contact


def contact_query(
    filter: ContactFilter | None, settings: Settings, at: Path = ("filter",)
) -> dict[str, Any]:
    """Turns a filter into a query (the organization is added by `Tenant`).

    A search that is a valid phone number in any format matches that number exactly (an
    index lookup); a run of digits matches inside numbers; anything else matches inside the
    first or last name, case-insensitively, with regex characters taken literally.
    """
    if filter is None:
        return {}
    query: dict[str, Any] = {}
    if filter.contactStatus:
        statuses = filter.contactStatus
        query["contactStatus"] = statuses[0] if len(statuses) == 1 else {"$in": statuses}
    if filter.process is not None:
        query["process"] = filter.process
    if filter.tags:
        query["tags"] = filter.tags[0] if len(filter.tags) == 1 else {"$in": filter.tags}
    if filter.optedOut is not None:
        query["optedOut"] = filter.optedOut
    text = (filter.search or "").strip()
    if len(text) > MAX_SEARCH:
        message = f"Search with at most {MAX_SEARCH} characters"
        raise InvalidInput(message, [FieldError((*at, "search"), "TOO_LONG", message)])
    if text:
        try:
            query["phoneNumber"] = normalize_phone(text, settings.default_phone_region)
        except PhoneError:
            if DIGITS.fullmatch(text):
                digits = re.sub(r"\D", "", text)
                query["phoneNumber"] = {"$regex": re.escape(digits)}
            else:
                pattern = {"$regex": re.escape(text), "$options": "i"}
                query["$or"] = [{"firstName": pattern}, {"lastName": pattern}]
    return query


async def list_contacts(
    tenant: Tenant,
    settings: Settings,
    *,
    filter: ContactFilter | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Contact]:
    """Returns one page of contacts, oldest first (ordered by id)."""
    size = page_size(first)
    query = contact_query(filter, settings)
    cursors = Cursors(settings, "contacts:_id:asc")
    if after is not None:
        _, last_id = cursors.decode(after)
        query = {"$and": [query, after_filter("_id", None, last_id, descending=False)]}
    found = await tenant.find(Contact, query).sort("_id").limit(size + 1).to_list()
    items = found[:size]
    return Page(
        items=items,
        cursors=[cursors.encode(None, c.id) for c in items],  # type: ignore[arg-type]
        has_next=len(found) > size,
    )


async def count_contacts(
    tenant: Tenant, settings: Settings, filter: ContactFilter | None = None
) -> int:
    """Counts the contacts a filter matches."""
    return await tenant.count(Contact, contact_query(filter, settings))


async def list_contacts_by_page(
    tenant: Tenant, settings: Settings, filter: ContactFilter | None, *, page: int, limit: int
) -> tuple[list[Contact], int]:
    """Returns numbered page `page` (from 1) of `limit` contacts and the total (legacy REST)."""
    query = contact_query(filter, settings, at=())
    total = await tenant.count(Contact, query)
    found = tenant.find(Contact, query).sort("_id").skip((page - 1) * limit).limit(limit)
    return await found.to_list(), total
