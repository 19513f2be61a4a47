"""Reading contacts: by id, and pages filtered by stage, pipeline, tags, opt-out or search."""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId

from core.config import Settings
from core.errors import FieldError, InvalidInput, NotFound, Path
from models import Contact
from services.contacts.records import PhoneError, normalize_phone
from services.inputs import ContactFilter
from services.storage import positions, tallies
from services.storage.pages import Cursors, LazyCursors, Page, after_filter, page_size
from services.storage.tenancy import Tenant, one_of

MAX_SEARCH = 100
DIGITS = re.compile(r"[\d\s()+.-]+")


async def get_contact(tenant: Tenant, contact_id: str) -> Contact:
    """Returns the contact, or raises `NotFound` (also for another organization's id)."""
    contact = await tenant.get(Contact, contact_id)
    if contact is None:
        raise NotFound("contact")
    return contact


MAX_ANY_OF = 100
"""Values one condition may list (stages, tags): the server checks each contact it reads
against the whole list."""


def contact_conditions(
    *,
    contact_status: list[str] | None,
    process: str | None,
    tags: list[str] | None,
    at: Path = ("filter",),
) -> dict[str, Any]:
    """The conditions a contact filter and a campaign's segment share.

    Any of the stages, the pipeline, and any of the tags (a contact with one of them
    matches); one value is an equality, which the embedded server pushes down.
    """
    errors = [
        FieldError((*at, name), "TOO_MANY", f"At most {MAX_ANY_OF} values")
        for name, values in (("contactStatus", contact_status), ("tags", tags))
        if values and len(values) > MAX_ANY_OF
    ]
    if errors:
        raise InvalidInput("Too many values in a filter", errors)
    query: dict[str, Any] = {}
    if contact_status:
        query["contactStatus"] = one_of(contact_status)
    if process is not None:
        query["process"] = process
    if tags:
        query["tags"] = one_of(tags)
    return query


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
    query = contact_conditions(
        contact_status=filter.contactStatus, process=filter.process, tags=filter.tags, at=at
    )
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


MAX_PAGES_READ = 200
"""Pages one request reads at most: a filter few contacts match stops there, with a cursor."""
PAGES_BEFORE_MATCHES = 8
"""Pages read in list order before a filter of equalities reads its matches instead."""
EQUALITIES = frozenset({"contactStatus", "process", "optedOut"})
"""Filter fields whose single-value conditions every server answers from an index (FerretDB
pushes them down): reading their matches costs in proportion to the matches."""


async def list_contacts(
    tenant: Tenant,
    settings: Settings,
    *,
    filter: ContactFilter | None = None,
    first: int | None = None,
    after: str | None = None,
    max_pages: int = MAX_PAGES_READ,
    at: Path = ("filter",),
) -> Page[Contact]:
    """Returns contacts in list order (by page, then id), reading page by page.

    Every read is `{organizationId, page}` equality plus the filter, so a page of the list costs
    the same in an organization of 2,000 contacts as of 200,000 (see
    `services.storage.positions`).

    A filter of stage, pipeline or opt-out equalities that has not filled the page after
    `PAGES_BEFORE_MATCHES` pages is sparse: its matches from there on are read directly (the
    equalities select them, whatever the organization's size), so the page is full when enough
    contacts match. Other filters (tags, a name search) are checked on each page; one that
    matches few contacts may return fewer than `first` with `has_next` set and a cursor past
    the `max_pages` pages read. A search for one exact phone number is one lookup. `at` is
    where the filter's fields are in the request (REST sends them as query parameters).
    """
    size = page_size(first)
    query = contact_query(filter, settings, at)
    cursors = Cursors(settings, "contacts:page")
    page_number, last_id = 0, None
    if after is not None:
        value, last_id = cursors.decode(after)
        if not isinstance(value, int):
            raise InvalidInput("Invalid cursor", [FieldError(("after",), "INVALID_CURSOR", "")])
        page_number = value
    if isinstance(query.get("phoneNumber"), str):  # one exact number: at most one contact
        exact = [] if after else await tenant.find_all(Contact, query, limit=1)
        return Page(exact, LazyCursors(cursors, exact, lambda c: (c.page or 0, c.id)), False)
    last = await positions.last_page(tenant)
    found: list[Contact] = []
    read = 0
    by_matches = bool(query) and all(
        field in EQUALITIES and not isinstance(value, dict) for field, value in query.items()
    )
    budget = min(max_pages, PAGES_BEFORE_MATCHES) if by_matches else max_pages
    while page_number <= last and len(found) <= size and read < budget:
        page_query: dict[str, Any] = {**query, "page": page_number}
        rows = await tenant.find_all(Contact, page_query)
        rows.sort(key=lambda c: c.id)  # type: ignore[arg-type, return-value]
        if last_id is not None:
            rows = [c for c in rows if c.id is not None and c.id > last_id]
            last_id = None
        found.extend(rows)
        page_number += 1
        read += 1
    if by_matches and page_number <= last and len(found) <= size:
        start = (
            after_filter("page", page_number, last_id, descending=False)
            if last_id is not None
            else {"page": {"$gte": page_number}}
        )
        found += await tenant.find_all(
            Contact,
            {**query, **start},
            sort=[("page", 1), ("_id", 1)],
            limit=size + 1 - len(found),
        )
        page_number = last + 1
    items = found[:size]
    cursor_list = LazyCursors(cursors, items, lambda c: (c.page or 0, c.id))
    more = len(found) > size or page_number <= last
    resume = None
    if more and len(found) <= size:  # stopped by the read limit: resume at the next page
        resume = cursors.encode(page_number, ObjectId("0" * 24))
    return Page(items, cursor_list, more, resume)


async def count_contacts(
    tenant: Tenant, settings: Settings, filter: ContactFilter | None = None
) -> int:
    """Counts the contacts a filter matches: the organization's running total without a
    filter; with one, a count of the matches (on FerretDB it reads the rows the filter's
    equalities select, and the whole organization for a search or tags; docs/database.md)."""
    query = contact_query(filter, settings)
    if not query:
        return await tallies.total(tenant, tallies.CONTACTS)
    return await tenant.count(Contact, query)
