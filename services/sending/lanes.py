"""An organization's share of one dispatcher: its sending campaigns in turn.

A campaign's units of work are its batches, and for a campaign with follow-ups on autopilot,
step n of each batch once step n - 1 of that batch is done (`steps` is how many steps run).

A lane is memory only (what this dispatcher learnt of the campaigns' batches, so it does not ask
the database again about a batch it knows is done or held); the database decides every claim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from models import Campaign
from services.campaigns.stats import batch_count
from services.organizations.settings import SendingRules
from services.sending.leases import RETRY_UNIT
from services.storage.tenancy import Tenant


@dataclass(frozen=True)
class GivenBack:
    """A batch as this dispatcher gave it back for want of a rate slot."""

    epoch: int
    step: int
    """The unit it held (the first message, a follow-up step, a retry round)."""
    at: datetime
    rows: list[dict[str, Any]] | None
    """Its recipients as that turn left them (None: not known, read them)."""


def batch_units(batch: int, steps: int, retry: int, retry_batches: Collection[int]) -> list[int]:
    """A batch's units in order: the first message, the follow-up steps that run, and the
    retry round if it resends some of the batch. A campaign is done when all are, for every
    batch."""
    units = list(range(steps + 1))
    if retry and batch in retry_batches:
        units.append(RETRY_UNIT + retry)
    return units


def campaign_units(campaign: Campaign) -> list[tuple[int, int]]:
    """Every (batch, unit) the campaign needs done, as it is now."""
    return [
        (batch, unit)
        for batch in range(batch_count(campaign.nextSeq))
        for unit in batch_units(
            batch, campaign.cadence(), campaign.retryRound, frozenset(campaign.retryBatches)
        )
    ]


@dataclass
class CampaignBatches:
    """What this dispatcher knows of one sending campaign's batches."""

    id: ObjectId
    batches: int
    steps: int = 0
    """Follow-up steps that run (0: the first message only, or autopilot is off)."""
    retry: int = 0
    """The retry round of failed first messages under way (0: none)."""
    retry_batches: frozenset[int] = frozenset()
    """The batches that round resends to."""
    done: set[int] = field(default_factory=set)
    """Batches with every step done."""
    step_of: dict[int, int] = field(default_factory=dict)
    """The step a batch is at, where this dispatcher learnt it is past the first message."""
    busy: set[int] = field(default_factory=set)
    """Being sent by this dispatcher now."""
    later: dict[int, datetime] = field(default_factory=dict)
    """Given back until quiet hours end: not before then."""
    elsewhere: set[int] = field(default_factory=set)
    """Found held by another dispatcher; looked at again on the lane's next round."""
    noted: set[int] = field(default_factory=set)
    """Follow-up steps whose start this dispatcher saw recorded."""
    logged: set[str] = field(default_factory=set)
    """Holds this dispatcher logged for the campaign (each once)."""
    cursor: int = 0
    """Where the next look starts (the batch worked last, so a rate-limited batch goes on)."""
    given_back: dict[int, GivenBack] = field(default_factory=dict)
    """Batches this dispatcher gave back for want of a rate slot: its next turn there claims
    the next epoch without reading the leases."""

    def finished(self) -> bool:
        return len(self.done) >= self.batches

    def step(self, batch: int) -> int:
        return self.step_of.get(batch, 0)

    def units(self, batch: int) -> list[int]:
        return batch_units(batch, self.steps, self.retry, self.retry_batches)

    def unit_done(self, batch: int, step: int) -> None:
        """Unit `step` of the batch is done: the batch moves to its next unit, or is done."""
        later = [unit for unit in self.units(batch) if unit > step]
        if not later:
            self.done.add(batch)
        else:
            self.step_of[batch] = later[0]
            self.later.pop(batch, None)

    def passed(self, step: int) -> bool:
        """Whether every batch is known to be past `step`."""
        return all(b in self.done or self.step(b) > step for b in range(self.batches))

    def set_units(self, steps: int, retry: int, retry_batches: frozenset[int]) -> None:
        """Autopilot was switched, steps changed or a retry began: batches done under the old
        units are looked at again (their leases say which unit they reached)."""
        if (steps, retry, retry_batches) != (self.steps, self.retry, self.retry_batches):
            self.steps, self.retry, self.retry_batches = steps, retry, retry_batches
            if self.done:
                self.done.clear()
                self.later.clear()

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
        listed = {row["_id"]: row for row in rows}
        left = [c for c in self.campaigns if c not in listed]
        for campaign_id in left:
            del self.campaigns[campaign_id]
        for campaign_id, row in listed.items():
            batches = batch_count(int(row.get("nextSeq") or 0))
            steps = Campaign.steps_running(row.get("followUps"), row.get("isAutopilot"))
            retry = int(row.get("retryRound") or 0)
            retry_batches = frozenset(int(b) for b in row.get("retryBatches") or [])
            known = self.campaigns.get(campaign_id)
            if known is None:
                known = self.campaigns[campaign_id] = CampaignBatches(campaign_id, batches)
                known.set_units(steps, retry, retry_batches)
                self.wake.set()
            else:
                known.batches = batches
                if (steps, retry, retry_batches) != (
                    known.steps,
                    known.retry,
                    known.retry_batches,
                ):
                    known.set_units(steps, retry, retry_batches)
                    self.wake.set()
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
