"""Dense list numbers with recorded gaps: where the n-th newest campaign is, without counting.

The legacy REST list is numbered (`?page=7&limit=20`): page 7 is the campaigns at ranks 120 to
139, newest first. A sort with `skip` reads and sorts every campaign of the organization on
FerretDB (docs/database.md), and walking list pages to count them reads every campaign before
the page. So each campaign gets a number when it is created, dense from 0 per organization
(each claimed with a unique `_id` insert, so no two writers share one, and none is skipped),
and its list page is that number divided by the page size. A deletion records its number as a
gap (an insert of its own, never a change to a shared document). The n-th newest campaign is
then the n-th number down from the last claimed one, not counting gaps: found from the gap
records of the numbers above it, read a chapter (`CHAPTER` numbers) at a time by equality,
and the page's campaigns are read by their list pages (`{organizationId, page}`). A page costs
the same at any number of campaigns, and a deep page reads one more chapter's gaps (a few
small documents) per `CHAPTER` campaigns above it.

A number claimed by a creation that then failed is recorded as a gap by that creation; one
whose process died between the claim and the insert leaves a number without a campaign and
without a gap, and the page it falls on is one short (no campaign is listed twice or missed).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pymongo.errors import BulkWriteError

from models import CampaignSlot
from models.base import TenantDocument
from services.storage.sequences import claim_run, last_claimed
from services.storage.tenancy import DUPLICATE_KEY, Tenant

CHAPTER = 1000
"""Numbers whose gaps are read together."""


@dataclass
class Slots:
    """The numbers of one kind of list (their claims and gaps live in `claims`)."""

    claims: type[TenantDocument]
    _known_last: dict[str, int] = field(default_factory=dict)
    """The highest number this process has seen claimed, per organization: a hint."""

    async def claim(self, tenant: Tenant) -> int:
        """Claims the next number (just past the last claimed one) and returns it."""
        [number] = await self.claim_run(tenant, 1)
        return number

    async def claim_run(self, tenant: Tenant, count: int) -> list[int]:
        """Claims `count` numbers from just past the last claimed one, ascending; a number
        another writer took first ends the run, and the rest are claimed after it."""
        org = str(tenant.organization_id)
        return await claim_run(
            tenant,
            self.claims,
            count,
            last=lambda: self.last(tenant),
            document=lambda n: {"_id": self.claim_id(tenant, n), "seq": n},
            seen=lambda high: self._known_last.update({org: high}),
        )

    async def last(self, tenant: Tenant) -> int:
        """Returns the highest claimed number (-1 when none), probing forward from the hint."""
        org = str(tenant.organization_id)

        async def claimed(number: int) -> bool:
            if number < 0:
                return True
            query = {"_id": self.claim_id(tenant, number)}
            return bool(await tenant.raw_find(self.claims, query, {"_id": 1}).to_list(1))

        high = await last_claimed(claimed, self._known_last.get(org, -1))
        self._known_last[org] = high
        return high

    async def record_gaps(self, tenant: Tenant, numbers: list[int]) -> None:
        """Records numbers whose campaigns are gone (or never were); recording one twice is
        harmless."""
        gaps = [
            {"_id": f"{tenant.organization_id}:gap:{n}", "seq": n, "chapter": n // CHAPTER}
            for n in numbers
        ]
        try:
            await tenant.raw_insert_many(self.claims, gaps, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise  # only "recorded already" is expected

    async def gaps(self, tenant: Tenant, chapter: int) -> set[int]:
        """The recorded gaps among the numbers of one chapter."""
        rows = tenant.raw_find(self.claims, {"chapter": chapter}, {"seq": 1})
        return {int(row["seq"]) async for row in rows}

    async def newest(self, tenant: Tenant, skip: int, count: int) -> list[int]:
        """The numbers at ranks `[skip, skip + count)` counted from the newest, skipping gaps:
        newest first.

        The chapters down to `skip + count` numbers below the last are read at once (at least
        that many numbers are passed); gaps may take the walk further, a chapter at a time.
        """
        last = await self.last(tenant)
        if last < 0 or count <= 0:
            return []
        top = last // CHAPTER
        bottom = max(0, (last - skip - count + 1) // CHAPTER)
        chapters = list(range(top, bottom - 1, -1))
        read = await asyncio.gather(*(self.gaps(tenant, c) for c in chapters))
        known = dict(zip(chapters, read, strict=True))
        found: list[int] = []
        rank = 0
        number = last
        while number >= 0 and len(found) < count:
            chapter = number // CHAPTER
            gaps = known.get(chapter)
            if gaps is None:
                gaps = known[chapter] = await self.gaps(tenant, chapter)
            low = chapter * CHAPTER
            live = number - low + 1 - sum(1 for g in gaps if low <= g <= number)
            if rank + live <= skip:
                rank += live  # the whole chapter is above the page
            else:
                for n in range(number, low - 1, -1):
                    if n in gaps:
                        continue
                    if rank >= skip:
                        found.append(n)
                        if len(found) == count:
                            break
                    rank += 1
            number = low - 1
        return found

    @staticmethod
    def claim_id(tenant: Tenant, number: int) -> str:
        """The claim's `_id`: a lookup by `_id` is the cheapest equality on every server."""
        return f"{tenant.organization_id}:{number}"


CAMPAIGNS = Slots(CampaignSlot)
