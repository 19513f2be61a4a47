"""Batch leases: claiming a batch, keeping it, giving it back, and noticing a newer holder.

A batch (`seq // 100`, assigned at creation, so found by equality) is claimed by inserting
`BatchLease` `"<campaign>:<batch>:<epoch>"`; follow-up step n of it is a unit of its own,
claimed as `"<campaign>:<batch>:s<n>:<epoch>"` once step n - 1 of the batch is done. The
unique primary key lets exactly one claimer win each epoch, on FerretDB too, where a
conditional update can have several winners. An expired lease is taken over by inserting the
next epoch; a holder that sees a later epoch stops (fencing). The holder
renews its lease while it works, and only the holder writes to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from models import BatchLease
from services.sending import metrics
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)


@dataclass
class Claim:
    """A batch this dispatcher holds."""

    tenant: Tenant
    campaign_id: ObjectId
    batch: int
    epoch: int
    takeover: bool
    step: int = 0


@dataclass(frozen=True)
class Taken:
    """Why a batch cannot be claimed now."""

    done: bool
    until: datetime | None = None
    """When its lease runs out."""
    released: bool = False
    """Given back until `until` (quiet hours), rather than held by a dispatcher."""


class Leases:
    """One dispatcher's claims, under its owner name."""

    def __init__(self, owner: str, lease_seconds: float, clock: Callable[[], datetime]) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.claimed = 0
        self.takeovers = 0

    async def read(self, tenant: Tenant, campaign_id: ObjectId, batch: int) -> list[dict[str, Any]]:
        """The batch's lease documents, of every step (an equality read of a few rows)."""
        return await tenant.raw_find(
            BatchLease, {"campaignId": campaign_id, "batch": batch}
        ).to_list()

    @staticmethod
    def of_step(leases: Sequence[Mapping[str, Any]], step: int) -> list[Mapping[str, Any]]:
        return [row for row in leases if int(row.get("step") or 0) == step]

    @staticmethod
    def current_step(leases: Sequence[Mapping[str, Any]], units: Sequence[int]) -> int | None:
        """The first of the batch's `units` (steps, in order) not done yet; None when all are."""
        done = {int(row.get("step") or 0) for row in leases if row.get("done")}
        return next((step for step in units if step not in done), None)

    def taken(self, leases: Sequence[Mapping[str, Any]]) -> Taken | None:
        """Why the unit these leases (of one step) belong to cannot be claimed now (None: it
        can)."""
        if any(row.get("done") for row in leases):
            return Taken(done=True)
        latest = max(leases, key=lambda row: int(row["epoch"]), default=None)
        if latest is not None and latest["expiresAt"] > self.clock():
            return Taken(
                done=False, until=latest["expiresAt"], released=bool(latest.get("released"))
            )
        return None

    async def claim(
        self,
        tenant: Tenant,
        campaign_id: ObjectId,
        batch: int,
        leases: Sequence[Mapping[str, Any]],
        step: int = 0,
    ) -> Claim | None:
        """Claims the batch by inserting the next lease epoch; None if it is done, held, or
        another dispatcher won the insert.

        `leases` are the unit's lease documents (of `step`), read a little earlier: stale, they
        can only lead to a lost insert, never to a double hold."""
        if self.taken(leases) is not None:
            return None
        latest = max(leases, key=lambda row: int(row["epoch"]), default=None)
        epoch = int(latest["epoch"]) + 1 if latest is not None else 0
        lease = BatchLease(
            id=lease_id(campaign_id, batch, epoch, step),
            organizationId=tenant.organization_id,
            campaignId=campaign_id,
            batch=batch,
            epoch=epoch,
            step=step,
            owner=self.owner,
            expiresAt=self.clock() + timedelta(seconds=self.lease_seconds),
        )
        try:
            await tenant.insert(lease)
        except DuplicateKeyError:
            return None  # another dispatcher won this epoch
        self.claimed += 1
        metrics.BATCHES_CLAIMED.inc()
        # A lease its holder released (its turn ended, or it waits for quiet hours) is picked
        # up, not taken over; one that expired under a holder is.
        takeover = latest is not None and not latest.get("released")
        if takeover:
            self.takeovers += 1
            metrics.LEASE_TAKEOVERS.inc()
            logger.info("took over %s batch %d (epoch %d)", campaign_id, batch, epoch)
        return Claim(tenant, campaign_id, batch, epoch, takeover=takeover, step=step)

    async def holds(self, claim: Claim) -> bool:
        """Whether no later epoch of this unit exists (fencing). Any later one, not just the
        next: superseded epochs are purged (`lease_records`), the latest never is."""
        later = (
            await claim.tenant.raw_find(
                BatchLease,
                {
                    "campaignId": claim.campaign_id,
                    "batch": claim.batch,
                    "step": claim.step,
                    "epoch": {"$gt": claim.epoch},
                },
                {"_id": 1},
            )
            .limit(1)
            .to_list()
        )
        return not later

    async def drop(self, claim: Claim) -> None:
        """Deletes the holder's own record: its campaign is finished, nothing reads it again."""
        await claim.tenant.delete_many(
            BatchLease,
            {"_id": lease_id(claim.campaign_id, claim.batch, claim.epoch, claim.step)},
        )

    async def release(self, claim: Claim, *, done: bool, until: datetime | None = None) -> None:
        """Gives the batch up: done, or free again at `until` (quiet hours) or at once (the
        holder's turn ended, or the campaign was paused: whoever comes next picks it up)."""
        fields: dict[str, Any] = {"done": done, "released": True}
        if not done:
            fields["expiresAt"] = until or self.clock()
        await claim.tenant.update_one(
            BatchLease,
            {"_id": lease_id(claim.campaign_id, claim.batch, claim.epoch, claim.step)},
            {"$set": fields},
        )

    async def renew_forever(self, claim: Claim) -> None:
        """Pushes the lease's expiry forward every third of its length until cancelled."""
        every = self.lease_seconds / 3
        while True:
            await asyncio.sleep(every)
            expires = self.clock() + timedelta(seconds=self.lease_seconds)
            await claim.tenant.update_one(
                BatchLease,
                {"_id": lease_id(claim.campaign_id, claim.batch, claim.epoch, claim.step)},
                {"$set": {"expiresAt": expires}},
            )


RETRY_UNIT = 100
"""Unit `RETRY_UNIT + k` of a batch is retry round k of its failed first messages
(`services.sending.failures`); units below it are the first message (0) and follow-up steps."""


def lease_id(campaign_id: ObjectId, batch: int, epoch: int, step: int = 0) -> str:
    if step >= RETRY_UNIT:
        return f"{campaign_id}:{batch}:r{step - RETRY_UNIT}:{epoch}"
    if step:
        return f"{campaign_id}:{batch}:s{step}:{epoch}"
    return f"{campaign_id}:{batch}:{epoch}"
