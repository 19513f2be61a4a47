"""Purging lease records the dispatchers no longer read.

Every turn at a batch inserts a lease epoch (a rate-limited batch of 100 at 10 a second takes
ten), so without a purge the collection grows by one record per turn, forever. FerretDB has no
TTL indexes, so the dispatchers delete them themselves, by equality reads a declared index
serves:

- **Superseded epochs** of a batch (all but its latest), once a minute for each sending
  campaign, and only those whose expiry is older than twice the lease: a claim is based on
  what was read at most a lease ago, so it can never re-insert a purged epoch number and
  believe it holds the batch. Fencing asks for *any* later epoch (`Leases.holds`), so an old
  holder still sees the latest one, which is never purged while its campaign sends.
- **Every record of a finished campaign** (completed or cancelled), when it leaves a
  dispatcher's lanes: nothing reads them again. A dispatcher that still claims a batch of it
  deletes its own record on finding the campaign finished.

Paused campaigns keep theirs (resuming continues from the finished batches). What was done
stays elsewhere: a batch's last epoch is on its counts (`BatchCounts.epoch`) and on its
recipients (`leaseEpoch`), which are not purged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId

from models import BatchLease
from services.storage.tenancy import Tenant

PURGE_EVERY = timedelta(seconds=60)
"""How often a dispatcher purges the superseded epochs of the campaigns sending."""


async def purge_superseded(tenant: Tenant, campaign_id: ObjectId, expired_before: datetime) -> int:
    """Deletes the campaign's lease records that a later epoch of their batch replaced and
    that expired before `expired_before`; returns how many.

    One read of the campaign's records, then one delete per batch with some to purge, of the
    epochs below the first one that must stay (a range the batch's index serves)."""
    rows = await tenant.raw_find(
        BatchLease, {"campaignId": campaign_id}, {"batch": 1, "epoch": 1, "expiresAt": 1}
    ).to_list()
    by_batch: dict[int, list[tuple[int, datetime]]] = {}
    for row in rows:
        by_batch.setdefault(int(row["batch"]), []).append((int(row["epoch"]), row["expiresAt"]))
    deleted = 0
    for batch, leases in by_batch.items():
        latest = max(epoch for epoch, _ in leases)
        young = [epoch for epoch, expires in leases if expires >= expired_before]
        keep_from = min([latest, *young])
        if any(epoch < keep_from for epoch, _ in leases):
            deleted += await tenant.delete_many(
                BatchLease,
                {"campaignId": campaign_id, "batch": batch, "epoch": {"$lt": keep_from}},
            )
    return deleted


async def purge_campaign(tenant: Tenant, campaign_id: ObjectId) -> int:
    """Deletes every lease record of a finished campaign; returns how many."""
    return await tenant.delete_many(BatchLease, {"campaignId": campaign_id})
