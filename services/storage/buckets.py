"""Schedule buckets: campaigns in schedule-date order, read a day at a time by equality.

On MongoDB the order is an index range (`{organizationId, scheduleDate, _id}` and a limit) that
reads only the page; FerretDB pushes down nothing but equalities, so that same query reads and
sorts every campaign of the organization (docs/database.md). Each campaign therefore carries a
`scheduleBucket`: the day of its `scheduleDate` (days since 1970, UTC), or, without a date, one
bucket per list page below every day (`UNDATED + page`), so that no bucket grows with the
organization. The order is read bucket by bucket with `{organizationId, scheduleBucket}`, which
both servers answer from an index, and each bucket's campaigns are put in order in memory (a
day's campaigns, or at most a list page's).

Which buckets exist is known from `CampaignBucket` records, one per bucket ever used, each
inserted once (a repeat is a duplicate key, ignored) before the first campaign is written into
it: no document has two writers, and a reader never misses a bucket that holds a campaign. The
bucket is written with `scheduleDate`, in the same versioned change. Buckets that empty again
stay registered and cost a reader one empty read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.errors import BulkWriteError

from models import CampaignBucket
from services.storage.history import DUPLICATE_KEY
from services.storage.tenancy import Tenant

UNDATED = -(10**9)
"""The bucket of list page 0's campaigns without a date; page p's is `UNDATED + p`."""
DAY_SECONDS = 86_400


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


async def register(tenant: Tenant, buckets: list[int]) -> None:
    """Records buckets as used (a bucket recorded already is left as it is)."""
    records = [
        {"_id": f"{tenant.organization_id}:{bucket}", "bucket": bucket}
        for bucket in sorted(set(buckets))
    ]
    try:
        await tenant.raw_insert_many(CampaignBucket, records, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
            raise  # only "recorded already" is expected


async def registered(tenant: Tenant) -> list[int]:
    """Every bucket the organization's campaigns were ever put in, ascending."""
    rows = tenant.raw_find(CampaignBucket, {}, {"bucket": 1})
    return sorted({int(row["bucket"]) async for row in rows})
