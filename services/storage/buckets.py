"""Schedule buckets: campaigns in schedule-date order, read a day at a time by equality.

On MongoDB the order is an index range (`{organizationId, scheduleDate, _id}` and a limit) that
reads only the page; FerretDB pushes down nothing but equalities, so that same query reads and
sorts every campaign of the organization (docs/database.md). Each campaign therefore carries a
`scheduleBucket`: the day of its `scheduleDate` (days since 1970, UTC), or, without a date, one
bucket per list page below every day (`UNDATED + page`), so that no bucket grows with the
organization. The order is read bucket by bucket with `{organizationId, scheduleBucket}`, which
both servers answer from an index, and each bucket's campaigns are put in order in memory (a
day's campaigns, or at most a list page's).

Which buckets exist is known from `CampaignBucket` records, one per bucket ever used and one per
block of `BLOCK` buckets (about two months of days) ever used, each inserted once (a repeat is
a duplicate key, ignored) before the first campaign is written into it: no document has two
writers, and a reader never misses a bucket that holds a campaign. A reader reads the blocks
(a few a year), then the buckets of each block it walks into, so the records it reads do not
grow with the days ever used either. The bucket is written with `scheduleDate`, in the same
versioned change. Buckets that empty again stay registered and cost a reader one empty read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pymongo.errors import BulkWriteError

from models import CampaignBucket
from services.storage.tenancy import DUPLICATE_KEY, Tenant

UNDATED = -(10**9)
"""The bucket of list page 0's campaigns without a date; page p's is `UNDATED + p`."""
DAY_SECONDS = 86_400
BLOCK = 64
"""Buckets per block of the records."""


def bucket_of(when: datetime | None, page: int | None) -> int:
    """The bucket of a campaign scheduled at `when` (None: no date) on list page `page`."""
    if when is None:
        return UNDATED + (page or 0)
    moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() // DAY_SECONDS))


async def place(tenant: Tenant, when: datetime | None, page: int | None) -> int:
    """Registers the bucket of `when` (and `page`) if new, and returns it: call before writing
    a campaign's `scheduleDate`, and write the bucket with it."""
    bucket = bucket_of(when, page)
    await register(tenant, [bucket])
    return bucket


def records(organization_id: object, buckets: list[int]) -> list[dict[str, Any]]:
    """The records that say these buckets are used: one per bucket, one per block."""
    used = sorted(set(buckets))
    return [
        *(
            {"_id": f"{organization_id}:block:{block}", "kind": "block", "block": block}
            for block in sorted({bucket // BLOCK for bucket in used})
        ),
        *(
            {"_id": f"{organization_id}:{b}", "kind": "bucket", "bucket": b, "block": b // BLOCK}
            for b in used
        ),
    ]


async def register(tenant: Tenant, buckets: list[int]) -> None:
    """Records buckets as used (a bucket recorded already is left as it is)."""
    try:
        await tenant.raw_insert_many(
            CampaignBucket, records(tenant.organization_id, buckets), ordered=False
        )
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise  # only "recorded already" is expected


async def walk(tenant: Tenant, *, descending: bool, start: int | None = None) -> AsyncIterator[int]:
    """The buckets the organization's campaigns were ever put in, in order, from `start` (a
    bucket) on: the blocks read once, each block's buckets when the walk gets there."""
    rows = tenant.raw_find(CampaignBucket, {"kind": "block"}, {"block": 1})
    blocks = sorted({int(row["block"]) async for row in rows}, reverse=descending)
    for block in blocks:
        if start is not None and (block > start // BLOCK if descending else block < start // BLOCK):
            continue
        query = {"kind": "bucket", "block": block}
        rows = tenant.raw_find(CampaignBucket, query, {"bucket": 1})
        for bucket in sorted({int(row["bucket"]) async for row in rows}, reverse=descending):
            if start is None or (bucket <= start if descending else bucket >= start):
                yield bucket
