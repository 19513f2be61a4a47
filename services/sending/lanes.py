"""An organization's share of one dispatcher: its sending campaigns in turn.

A lane is memory only (what this dispatcher learnt of the campaigns' batches, so it does not ask
the database again about a batch it knows is done or held); the database decides every claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from services.campaigns.stats import batch_count
from services.organizations.settings import SendingRules
from services.storage.tenancy import Tenant


@dataclass(frozen=True)
class GivenBack:
    """A batch as this dispatcher gave it back for want of a rate slot."""

    epoch: int
    at: datetime
    rows: list[dict[str, Any]] | None
    """Its recipients as that turn left them (None: not known, read them)."""


@dataclass
class CampaignBatches:
    """What this dispatcher knows of one sending campaign's batches."""

    id: ObjectId
    batches: int
    done: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)
    """Being sent by this dispatcher now."""
    later: dict[int, datetime] = field(default_factory=dict)
    """Given back until quiet hours end: not before then."""
    elsewhere: set[int] = field(default_factory=set)
    """Found held by another dispatcher; looked at again on the lane's next round."""
    cursor: int = 0
    """Where the next look starts (the batch worked last, so a rate-limited batch goes on)."""
    given_back: dict[int, GivenBack] = field(default_factory=dict)
    """Batches this dispatcher gave back for want of a rate slot: its next turn there claims
    the next epoch without reading the leases."""

    def finished(self) -> bool:
        return len(self.done) >= self.batches

    def next_batch(self, now: datetime) -> int | None:
        """The first batch from the cursor on that may be claimable now (None: none is)."""
        for step in range(self.batches):
            batch = (self.cursor + step) % self.batches
            if batch in self.done or batch in self.busy or batch in self.elsewhere:
                continue
            until = self.later.get(batch)
            if until is not None and until > now:
                continue
            self.cursor = batch
            return batch
        return None


class Lane:
    """One organization's campaigns in round robin, its sending rules, and when its next rate
    slot may be free; each turn is one batch of the next campaign with work."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.campaigns: dict[ObjectId, CampaignBatches] = {}
        self.rules: SendingRules | None = None
        self.rate_wait: datetime | None = None
        """The organization's slots are used up until then (this dispatcher found)."""
        self.wake = asyncio.Event()
        """Set when the lane has new work or the dispatcher stops."""
        self.task: asyncio.Task[None] | None = None
        self._turn = 0

    def update(self, rows: Sequence[Mapping[str, Any]]) -> list[ObjectId]:
        """Takes the organization's sending campaigns as just read: new ones join the rotation
        (and wake the lane), those no longer sending leave it; returns those that left."""
        listed = {row["_id"]: batch_count(int(row.get("nextSeq") or 0)) for row in rows}
        left = [c for c in self.campaigns if c not in listed]
        for campaign_id in left:
            del self.campaigns[campaign_id]
        for campaign_id, batches in listed.items():
            known = self.campaigns.get(campaign_id)
            if known is None:
                self.campaigns[campaign_id] = CampaignBatches(campaign_id, batches)
                self.wake.set()
            else:
                known.batches = batches
        return left

    def new_round(self) -> None:
        """Forgets which batches other dispatchers held: they may have finished them since."""
        for campaign in self.campaigns.values():
            campaign.elsewhere.clear()

    def next_work(self, now: datetime) -> tuple[CampaignBatches, int] | None:
        """The next campaign in turn with a batch that may be claimable, and that batch."""
        order = list(self.campaigns.values())
        for step in range(len(order)):
            campaign = order[(self._turn + step) % len(order)]
            batch = campaign.next_batch(now)
            if batch is not None:
                self._turn = (self._turn + step + 1) % len(order)
                return campaign, batch
        return None
