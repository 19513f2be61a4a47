"""Where each contact (campaign, suppressed number) sits in its organization's list: numbered pages.

Listing contacts in a stable order is the screen every CRM opens with, and the campaigns
newest first the dashboard's. A sort over the organization's documents is an index range on
MongoDB, but FerretDB v1 does not push sorts or ranges down: it reads and decodes every one of
the organization's documents first (docs/database.md). So each contact (campaign) gets a `page`
when it is created, and a list is read page by page with an equality filter
(`{organizationId, page}`), which both servers answer from an index, so a page costs the same
at any size.

Pages are numbered densely from 0 per organization and list. A writer claims the pages it needs
with a unique-index insert (`ContactPage`, `SuppressionPage`), so two writers never share one; a
claimed page may hold fewer than its size (phones that already existed, deletions, a single
new contact), which the reader simply walks past.

A campaign's page is its list number divided by `CAMPAIGNS_PER_PAGE` (`services.storage.slots`,
which numbered pages of the REST list need); `CAMPAIGNS` (`CampaignPage` claims) is what
migration 3 gave campaigns stored before pages, before migration 7 numbered them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from models import Campaign, CampaignPage, Contact, ContactPage, Suppression, SuppressionPage
from models.base import TenantDocument
from services.storage.sequences import claim_run, last_claimed
from services.storage.tenancy import Tenant

CONTACTS_PER_PAGE = 100
CAMPAIGNS_PER_PAGE = 20
SUPPRESSIONS_PER_PAGE = 100


@dataclass
class Positions:
    """The numbered pages of one kind of list."""

    members: type[TenantDocument]
    claims: type[TenantDocument]
    per_page: int
    _known_last: dict[str, int] = field(default_factory=dict)
    """The highest page this process has seen claimed, per organization: a hint, never trusted."""

    async def claim_pages(self, tenant: Tenant, count: int, *, shared: bool = False) -> list[int]:
        """Claims pages enough for `count` new members; returns their numbers, ascending.

        Claims go in ascending order from just past the last claimed page, so claimed pages
        stay a dense prefix (what `last_page` relies on); a page another writer took first ends
        the run, and the rest is claimed after it. Claims are never given back. `shared` marks
        them as pages small imports fill together (`pages_for`).
        """
        wanted = max(1, math.ceil(count / self.per_page))
        org = str(tenant.organization_id)

        def document(page: int) -> dict[str, Any]:
            claim: dict[str, Any] = {"_id": self.claim_id(tenant, page), "page": page}
            if shared:
                claim["shared"] = True
            return claim

        return await claim_run(
            tenant,
            self.claims,
            wanted,
            last=lambda: self.last_page(tenant),
            document=document,
            seen=lambda high: self._known_last.update({org: high}),
        )

    async def page_for_one(self, tenant: Tenant) -> int:
        """Returns a page for one new member: the last page while it has room, else a new one.

        Members added one at a time then fill pages as imports do. Two writers may both join
        the last page at once; a page then holds a few more than its size, which readers do
        not mind.
        """
        last = await self.last_page(tenant)
        if last >= 0:
            members = tenant.raw_find(self.members, {"page": last}, {"_id": 1})
            if len(await members.to_list(self.per_page)) < self.per_page:
                return last
        [page] = await self.claim_pages(tenant, 1)
        return page

    async def pages_for(self, tenant: Tenant, count: int) -> tuple[list[int], bool]:
        """Returns pages for `count` new members, and whether they are this writer's alone.

        More than a page's worth get pages of their own. Fewer join the last page while it is
        `shared` and has room for them all (as `page_for_one`), else claim a new shared page,
        so members added a few at a time fill pages as imports do, and never a page another
        writer claimed for itself (which it may mark empty, `skipTo`, once its insert is
        done)."""
        if count >= self.per_page:
            return await self.claim_pages(tenant, count), True
        last = await self.last_page(tenant)
        if last >= 0:
            claim = self.claim_id(tenant, last)
            rows = await tenant.raw_find(self.claims, {"_id": claim}, {"shared": 1}).to_list()
            if rows and rows[0].get("shared"):
                members = tenant.raw_find(self.members, {"page": last}, {"_id": 1})
                if len(await members.to_list(self.per_page)) + count <= self.per_page:
                    return [last], False
        return await self.claim_pages(tenant, 1, shared=True), False

    async def last_page(self, tenant: Tenant) -> int:
        """Returns the highest claimed page (-1 when none), probing forward from the hint."""
        org = str(tenant.organization_id)

        async def claimed(page: int) -> bool:
            if page < 0:
                return True
            found = tenant.raw_find(self.claims, {"_id": self.claim_id(tenant, page)}, {"_id": 1})
            return bool(await found.to_list(1))

        high = await last_claimed(claimed, self._known_last.get(org, -1))
        self._known_last[org] = high
        return high

    @staticmethod
    def claim_id(tenant: Tenant, page: int) -> str:
        """The claim's `_id`: a lookup by `_id` is the cheapest equality on every server."""
        return f"{tenant.organization_id}:{page}"


CONTACTS = Positions(Contact, ContactPage, CONTACTS_PER_PAGE)
CAMPAIGNS = Positions(Campaign, CampaignPage, CAMPAIGNS_PER_PAGE)
SUPPRESSIONS = Positions(Suppression, SuppressionPage, SUPPRESSIONS_PER_PAGE)


async def claim_pages(tenant: Tenant, contacts: int) -> list[int]:
    """Claims contact-list pages enough for `contacts` new contacts (`Positions.claim_pages`)."""
    return await CONTACTS.claim_pages(tenant, contacts)


async def page_for_one(tenant: Tenant) -> int:
    """Returns a contact-list page for one new contact (`Positions.page_for_one`)."""
    return await CONTACTS.page_for_one(tenant)


async def last_page(tenant: Tenant) -> int:
    """Returns the contact list's highest claimed page (-1 when none)."""
    return await CONTACTS.last_page(tenant)
