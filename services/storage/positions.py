"""Where each contact sits in its organization's list: numbered pages of up to 100 contacts.

Listing contacts in a stable order is the screen every CRM opens with. A sort over the
organization's contacts is an index range on MongoDB, but FerretDB v1 does not push sorts or
ranges down: it reads and decodes every contact of the organization first (docs/database.md).
So each contact gets a `page` when it is created, and a list is read page by page with an
equality filter (`{organizationId, page}`), which both servers answer from an index, so a page
costs the same at any size.

Pages are numbered densely from 0 per organization. A writer claims the pages it needs with a
unique-index insert (`ContactPage`), so two writers never share one; a claimed page may hold
fewer than 100 contacts (phones that already existed, deletions, a single new contact), which
the reader simply walks past.
"""

from __future__ import annotations

import math

from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import Contact, ContactPage
from services.storage.sequences import last_claimed
from services.storage.tenancy import Tenant

CONTACTS_PER_PAGE = 100
_known_last: dict[str, int] = {}
"""The highest page this process has seen claimed, per organization: a hint, never trusted."""


async def claim_pages(tenant: Tenant, contacts: int) -> list[int]:
    """Claims pages enough for `contacts` new contacts; returns their numbers, ascending.

    Claims go in ascending order from just past the last claimed page, so claimed pages stay
    a dense prefix (what `last_page` relies on); a page another writer took first ends the
    run, and the rest is claimed after it. Claims are never given back.
    """
    wanted = max(1, math.ceil(contacts / CONTACTS_PER_PAGE))
    pages: list[int] = []
    while len(pages) < wanted:
        first = await last_page(tenant) + 1
        run = [first + i for i in range(wanted - len(pages))]
        claims = [{"_id": _claim_id(tenant, p), "page": p} for p in run]
        try:
            await tenant.raw_insert_many(ContactPage, claims, ordered=True)
        except (BulkWriteError, DuplicateKeyError) as exc:
            got = exc.details.get("nInserted", 0) if isinstance(exc, BulkWriteError) else 0
            pages.extend(run[:got])
            _known_last[str(tenant.organization_id)] = first + got  # taken by someone
            continue
        pages.extend(run)
        _known_last[str(tenant.organization_id)] = run[-1]
    return pages


async def page_for_one(tenant: Tenant) -> int:
    """Returns a page for one new contact: the last page while it has room, else a new one.

    Contacts added one at a time then fill pages as imports do. Two writers may both join the
    last page at once; a page then holds a few more than 100, which readers do not mind.
    """
    last = await last_page(tenant)
    if last >= 0:
        members = tenant.raw_find(Contact, {"page": last}, {"_id": 1})
        if len(await members.to_list(CONTACTS_PER_PAGE)) < CONTACTS_PER_PAGE:
            return last
    [page] = await claim_pages(tenant, 1)
    return page


async def last_page(tenant: Tenant) -> int:
    """Returns the highest claimed page (-1 when none), probing forward from the hint."""
    org = str(tenant.organization_id)
    high = await last_claimed(lambda page: _claimed(tenant, page), _known_last.get(org, -1))
    _known_last[org] = high
    return high


async def _claimed(tenant: Tenant, page: int) -> bool:
    if page < 0:
        return True
    found = tenant.raw_find(ContactPage, {"_id": _claim_id(tenant, page)}, {"_id": 1})
    return bool(await found.to_list(1))


def _claim_id(tenant: Tenant, page: int) -> str:
    """The claim's `_id`: a lookup by `_id` is the cheapest equality on every server."""
    return f"{tenant.organization_id}:{page}"
