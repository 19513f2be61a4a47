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
- **Every record of a cancelled (or deleted) campaign**, when it leaves a dispatcher's lanes:
  nothing reads them again. A dispatcher that still claims a batch of it deletes its own record
  on finding it so. A completed campaign keeps each unit's done record (retrying its failed
  messages reads them; one per batch and unit, not one per turn), and a paused one keeps its
  latest (resuming continues from the finished units); their superseded epochs go. What was done
stays elsewhere: a batch's last epoch is on its counts (`BatchCounts.epoch`) and on its
recipients (`leaseEpoch`), which are not purged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from models import BatchLease
from services.storage.tenancy import Tenant

PURGE_EVERY = timedelta(seconds=60)
"""How often a dispatcher purges the superseded epochs of the campaigns sending."""


async def purge_superseded(tenant: Tenant, campaign_id: ObjectId, expired_before: datetime) -> int:
    """Deletes the campaign's lease records that a later epoch of their unit (a batch's first
    message, follow-up step or retry round) replaced and that expired before `expired_before`;
    returns how many. A unit's done record is never deleted.

    One read of the campaign's records, then one delete per unit with some to purge, of the
    epochs below the first one that must stay (a range the unit's index serves)."""
    rows = await tenant.raw_find(
        BatchLease,
        {"campaignId": campaign_id},
        {"batch": 1, "step": 1, "epoch": 1, "expiresAt": 1, "done": 1},
    ).to_list()
    by_unit: dict[tuple[int, int], list[Mapping[str, Any]]] = {}
    for row in rows:
        by_unit.setdefault((int(row["batch"]), int(row.get("step") or 0)), []).append(row)
    deleted = 0
    for (batch, step), leases in by_unit.items():
        epochs = [int(row["epoch"]) for row in leases]
        stay = [
            int(row["epoch"])
            for row in leases
            if row.get("done") or row["expiresAt"] >= expired_before
        ]
        keep_from = min([max(epochs), *stay])
        if min(epochs) < keep_from:
            deleted += await tenant.delete_many(
                BatchLease,
                {
                    "campaignId": campaign_id,
                    "batch": batch,
                    "step": step,
                    "epoch": {"$lt": keep_from},
                },
            )
    return deleted


async def purge_campaign(tenant: Tenant, campaign_id: ObjectId) -> int:
    """Deletes every lease record of a finished campaign; returns how many."""
    return await tenant.delete_many(BatchLease, {"campaignId": campaign_id})
