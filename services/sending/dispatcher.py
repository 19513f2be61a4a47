"""The dispatcher: starts due campaigns and shares sending fairly among organizations.

Any number of dispatchers (inside API processes, or `python -m worker` processes) run the same
loop, coordinated by nothing but the database: batch leases (`leases`), rate slots
(`rate_slots`), and numbered changes for starting and completing a campaign
(`services.storage.history`), like a user's.

Inside one dispatcher, every organization with campaigns sending has a lane (`lanes`) that works
on its own: a turn is one batch of the organization's next campaign in rotation, sent chunk by
chunk while the organization's rate slots of the current second last (`batches`). A lane whose
slots are used up gives its batch back and waits for the next second holding nothing (no
lease, no send), so one organization's limit or size never delays another's, and a campaign
sent after a huge one of the same organization gets every other turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.errors import PyMongoError

from models import BatchLease, Campaign
from models.campaign import CampaignStatus
from services.campaigns.stats import batch_totals, live_stats
from services.organizations.settings import sending_rules
from services.sending import metrics
from services.sending.batches import FINISHED, BatchResult, BatchSender
from services.sending.config import DispatchConfig, config_from
from services.sending.followups import CadenceSender, follow_up_history
from services.sending.lanes import CampaignBatches, GivenBack, Lane, campaign_units
from services.sending.lease_records import PURGE_EVERY, purge_campaign, purge_superseded
from services.sending.leases import RETRY_UNIT, Claim, Leases
from services.sending.provider import Provider
from services.sending.rate_slots import Grant, RateSlots, RepMeter, slot_sizes
from services.storage import history
from services.storage.history import LostToStatusChange, Planned
from services.storage.tenancy import Tenant

__all__ = ["DispatchConfig", "Dispatcher", "config_from"]

logger = logging.getLogger(__name__)

GAUGES_EVERY_S = 10.0
"""How often a dispatcher recomputes the lag gauges (Prometheus scrapes every 15 s or so)."""


class Dispatcher:
    """Starts due campaigns and sends their batches, one lane per organization; `run` until
    told to stop, or `tick` for one round."""

    def __init__(self, provider: Provider, config: DispatchConfig | None = None) -> None:
        self.provider = provider
        self.config = config or DispatchConfig()
        self.leases = Leases(self.config.owner, self.config.lease_seconds, self.config.clock)
        self.sender = BatchSender(provider, self.config, self.leases)
        self.cadence = CadenceSender(provider, self.config, self.leases)
        self.slots = RateSlots(self.config.clock, self.config.chunk)
        self._lanes: dict[ObjectId, Lane] = {}
        self._capacity = asyncio.Semaphore(self.config.max_batches)
        self._gauges_at = -math.inf
        self._sending: list[dict[str, Any]] = []
        """The campaigns sending at the last look."""
        self._left: set[tuple[ObjectId, ObjectId]] = set()
        """Campaigns (organization, id) that left a lane since the last look: finished ones
        have their lease records purged."""
        self._leases_purged_at: datetime | None = None
        self._purging: asyncio.Task[None] | None = None

    @property
    def claimed(self) -> int:
        """Batches this dispatcher claimed (a rate-limited batch once per turn)."""
        return self.leases.claimed

    @property
    def takeovers(self) -> int:
        """Batches it took over from a holder whose lease expired."""
        return self.leases.takeovers

    def now(self) -> datetime:
        return self.config.clock()

    def rep_meter(self) -> RepMeter:
        """Reps' messages this process sends (those waiting for quiet hours), on its clock and
        its organizations' slots."""
        return RepMeter(self.slots, self.config.rate_per_second)

    async def run(self, stop: asyncio.Event) -> None:
        """Works until `stop` is set, then lets every lane finish its chunk in flight; a
        database outage is waited out, never fatal."""
        try:
            while not stop.is_set():
                try:
                    await self.refresh()
                    await self._gauges()
                except PyMongoError as exc:
                    logger.warning("dispatcher: database unavailable (%s); retrying", exc)
                except Exception:  # a bug must not stop sending for good; the next look retries
                    logger.exception("dispatcher: look for work failed; retrying")
                if self._purging is None or self._purging.done():
                    # Beside the looks, never delaying them (a new campaign waits for one).
                    self._purging = asyncio.create_task(self._purge_in_background())
                for lane in self._lanes.values():
                    if lane.campaigns and (lane.task is None or lane.task.done()):
                        lane.task = asyncio.create_task(self._keep_serving(lane, stop))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.poll_seconds)
        finally:
            for lane in self._lanes.values():
                lane.wake.set()
            running = [lane.task for lane in self._lanes.values() if lane.task is not None]
            if self._purging is not None:
                self._purging.cancel()
                running.append(self._purging)
            await asyncio.gather(*running, return_exceptions=True)

    async def tick(self) -> int:
        """One round: starts due campaigns, then every lane works until nothing of its own is
        ready (all claimed, done, waiting for quiet hours, or its rate used up for the second);
        returns how many batch turns it took."""
        await self.refresh()
        await self.purge_leases()
        lanes = [lane for lane in self._lanes.values() if lane.campaigns]
        turns = sum(await asyncio.gather(*(self._serve(lane) for lane in lanes)))
        await self._gauges()
        return turns

    async def _keep_serving(self, lane: Lane, stop: asyncio.Event) -> None:
        """A lane's life under `run`: serve, then sleep until its next rate slot, new work or
        the next look, whichever comes first; ends when its organization has nothing sending."""
        while not stop.is_set() and lane.campaigns:
            lane.wake.clear()
            try:
                await self._serve(lane, stop)
            except PyMongoError as exc:
                logger.warning("dispatcher: database unavailable (%s); retrying", exc)
            except Exception:  # a bug must not stop sending for good; the next round retries
                logger.exception("dispatcher: lane of %s failed", lane.tenant.organization_id)
            delay = self.config.poll_seconds
            if lane.rate_wait is not None:
                delay = min(delay, (lane.rate_wait - self.now()).total_seconds())
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), delay)

    async def _serve(self, lane: Lane, stop: asyncio.Event | None = None) -> int:
        """Works the lane's turns, up to `parallel_batches` at once, until none is ready now
        (or `stop` is set: a busy lane whose turns outlast a second would otherwise go on)."""
        lane.new_round()
        for campaign in [c for c in lane.campaigns.values() if c.finished()]:
            await self._complete(lane, campaign)

        async def worker() -> int:
            turns = 0
            while not (stop and stop.is_set()) and (worked := await self._turn(lane)) is not None:
                turns += worked
            return turns

        # More batches at once than the organization has slots in a second would only claim
        # batches to give them back.
        rate = lane.rules.rate_per_second if lane.rules is not None else None
        workers = self.config.parallel_batches
        if rate:
            workers = min(workers, len(slot_sizes(rate, self.config.chunk)))
        return sum(await asyncio.gather(*(worker() for _ in range(workers))))

    async def _turn(self, lane: Lane) -> int | None:
        """One turn at the lane's next batch: 1 if it sent, 0 if it only learnt something (the
        batch is done or held elsewhere), None when the lane has nothing ready now."""
        now = self.now()
        if lane.rules is None:
            return None
        if lane.rules.rate_per_second:
            lane.rate_wait = self.slots.free_at(lane.tenant.organization_id)
            if lane.rate_wait is not None:
                return None
        work = lane.next_work(now)
        if work is None:
            return None
        campaign, batch = work
        campaign.busy.add(batch)
        try:
            async with self._capacity:
                return await self._take_turn(lane, campaign, batch)
        finally:
            campaign.busy.discard(batch)

    async def _take_turn(self, lane: Lane, campaign: CampaignBatches, batch: int) -> int:
        """Reads the batch's leases, claims its current unit (the first message, or the next
        follow-up step), takes a rate slot and sends what the slots of this second allow. The
        claim comes first so that a slot is never spent on a unit another dispatcher won;
        without a slot the unit is given back at once, so a lane that must wait holds no
        lease."""
        assert lane.rules is not None
        tenant, rules = lane.tenant, lane.rules
        given_back = self._given_back(campaign, batch)
        if given_back is not None:
            # The unit it gave back is still the batch's current one: only a claim of it could
            # have finished it, and ours of the next epoch would then lose.
            step = given_back.step
            unit: list[Mapping[str, Any]] = [
                {"epoch": given_back.epoch, "released": True, "expiresAt": given_back.at}
            ]
        else:
            leases = await self.leases.read(tenant, campaign.id, batch)
            current = Leases.current_step(leases, campaign.units(batch))
            if current is None:
                campaign.done.add(batch)
                if campaign.finished():
                    await self._complete(lane, campaign)
                return 0
            step = current
            unit = Leases.of_step(leases, step)
        if step:
            campaign.step_of[batch] = step
        follow_up = 0 < step < RETRY_UNIT
        taken = self.leases.taken(unit)
        if taken is not None:
            if taken.released and taken.until is not None:
                campaign.later[batch] = taken.until
            else:
                campaign.elsewhere.add(batch)
            return 0
        claim = await self.leases.claim(tenant, campaign.id, batch, unit, step)
        if claim is None:
            campaign.elsewhere.add(batch)  # another dispatcher won the insert
            return 0
        grant = await self.slots.take(tenant, rules.rate_per_second)
        if not isinstance(grant, Grant):
            await self.leases.release(claim, done=False)  # never held while waiting
            rows = given_back.rows if given_back is not None else None
            campaign.given_back[batch] = GivenBack(claim.epoch, step, self.now(), rows)
            lane.rate_wait = grant
            return 0

        async def next_grant() -> Grant | datetime:
            return await self.slots.take(tenant, rules.rate_per_second)

        if follow_up:
            end = await self.cadence.send(
                claim, rules.window, grant, next_grant, rules.frequency_cap
            )
        else:
            # Our own epoch claimed next: nobody held the batch since our turn, so its
            # recipients are as that turn left them.
            rows = given_back.rows if given_back is not None else None
            end = await self.sender.send(
                claim, rules.window, grant, next_grant, rules.frequency_cap, rows
            )
        if follow_up and end.sent and step not in campaign.noted:
            campaign.noted.add(step)
            await follow_up_history(tenant, campaign.id, step, started=True)
        if end.result is BatchResult.DONE:
            campaign.unit_done(batch, step)
            if follow_up and campaign.passed(step):
                await follow_up_history(tenant, campaign.id, step, started=False)
            if campaign.finished():
                await self._complete(lane, campaign)
        elif end.result is BatchResult.WAITING and end.at is not None:
            campaign.later[batch] = end.at
            for zone in end.zones:
                _log_hold(campaign, zone, end.at)
        elif end.result is BatchResult.RATE_LIMITED:
            campaign.given_back[batch] = GivenBack(claim.epoch, step, self.now(), end.rows)
            lane.rate_wait = end.at
            _log_hold(campaign, f"the organization's rate limit of {rules.rate_per_second}/s", None)
        else:  # paused, cancelled or fenced out: leave the campaign until the next look
            lane.campaigns.pop(campaign.id, None)
            self._left.add((lane.tenant.organization_id, campaign.id))
        return 1

    def _given_back(self, campaign: CampaignBatches, batch: int) -> GivenBack | None:
        """The batch as this dispatcher gave it back for want of a rate slot, if that was less
        than half a lease ago (else None: read the leases).

        Claiming the next epoch from it saves a read of the leases per turn, and a won claim
        one of the recipients. Stale, it can only lose the insert to whoever claimed since,
        never re-insert a purged epoch: purged ones expired two leases before the purge
        (`lease_records`)."""
        known = campaign.given_back.pop(batch, None)
        if known is None or self.now() - known.at >= timedelta(
            seconds=self.config.lease_seconds / 2
        ):
            return None
        return known

    async def _complete(self, lane: Lane, campaign: CampaignBatches) -> None:
        lane.campaigns.pop(campaign.id, None)
        self._left.add((lane.tenant.organization_id, campaign.id))
        await self.complete(lane.tenant, campaign.id)

    async def refresh(self) -> None:
        """Starts due campaigns, then gives each organization with campaigns sending its lane
        and its current rules (one read of its settings)."""
        await self.start_due()
        sending = await Tenant.across_organizations(
            Campaign,
            {"status": CampaignStatus.SENDING.value},
            {
                "organizationId": 1,
                "nextSeq": 1,
                "stats.total": 1,
                "followUps": 1,
                "isAutopilot": 1,
                "retryRound": 1,
                "retryBatches": 1,
            },
        )
        by_org: dict[ObjectId, list[dict[str, Any]]] = {}
        for row in sending:
            by_org.setdefault(row["organizationId"], []).append(row)
        for org, lane in list(self._lanes.items()):
            if org not in by_org:
                self._left.update((org, left) for left in lane.update([]))
                if lane.task is None or lane.task.done():
                    del self._lanes[org]
        for org, rows in by_org.items():
            if org not in self._lanes:
                self._lanes[org] = Lane(Tenant.for_organization(org))
            self._left.update((org, left) for left in self._lanes[org].update(rows))
        lanes = [self._lanes[org] for org in by_org]
        rules = await asyncio.gather(
            *(
                sending_rules(lane.tenant, self.config.defaults, self.config.rate_per_second)
                for lane in lanes
            )
        )
        for lane, current in zip(lanes, rules, strict=True):
            lane.rules = current
        self._sending = sending

    async def _purge_in_background(self) -> None:
        try:
            await self.purge_leases()
        except PyMongoError as exc:
            logger.warning("dispatcher: lease purge failed (%s); the next one retries", exc)
        except Exception:  # a bug in the purge must not stop sending
            logger.exception("dispatcher: lease purge failed")

    async def purge_leases(self) -> None:
        """Deletes the lease records of campaigns that left a lane cancelled (or deleted), the
        superseded epochs of those that left it completed, and once every `PURGE_EVERY` those
        of the campaigns sending (`lease_records`)."""
        left, self._left = self._left, set()
        now = self.now()
        expired_before = now - 2 * timedelta(seconds=self.config.lease_seconds)
        for org, campaign_id in left:
            tenant = Tenant.for_organization(org)
            rows = await tenant.raw_find(Campaign, {"_id": campaign_id}, {"status": 1}).to_list()
            status = rows[0].get("status") if rows else None
            if status in FINISHED:
                await purge_campaign(tenant, campaign_id)
            elif status == CampaignStatus.COMPLETED.value:
                # Its done records stay: a retry of its failed messages reads them. Every unit
                # is done, so no claim can follow: nothing superseded needs to wait out its age.
                await purge_superseded(tenant, campaign_id, now)
        if self._leases_purged_at is not None and now - self._leases_purged_at < PURGE_EVERY:
            return
        self._leases_purged_at = now
        for row in self._sending:
            tenant = Tenant.for_organization(row["organizationId"])
            await purge_superseded(tenant, row["_id"], expired_before)

    async def _gauges(self) -> None:
        """The lag and quiet-hours gauges, from the batch counts of every sending campaign
        (a read of all of a campaign's batches, so not on every look)."""
        if time.monotonic() - self._gauges_at < GAUGES_EVERY_S:
            return
        self._gauges_at = time.monotonic()
        due = waiting = 0
        for row in self._sending:
            tenant = Tenant.for_organization(row["organizationId"])
            totals = await batch_totals(tenant, row["_id"], self.now())
            total = int((row.get("stats") or {}).get("total") or 0)
            due += max(0, total - sum(totals.counts.values()) - totals.waiting)
            waiting += totals.waiting
        metrics.DUE_RECIPIENTS.set(due)
        metrics.WAITING_RECIPIENTS.set(waiting)

    async def claim(self, tenant: Tenant, campaign_id: ObjectId, batch: int) -> Claim | None:
        """Claims a batch by inserting the next lease epoch; None if it is done or held."""
        leases = await self.leases.read(tenant, campaign_id, batch)
        return await self.leases.claim(tenant, campaign_id, batch, Leases.of_step(leases, 0))

    async def start_due(self) -> None:
        """Moves scheduled campaigns whose date has come to `sending` (one change each: of
        several dispatchers, one wins and the others see it moved)."""
        now = self.now()
        scheduled = await Tenant.across_organizations(
            Campaign,
            {"status": CampaignStatus.SCHEDULED.value},
            {"organizationId": 1, "scheduleDate": 1},
        )
        for row in scheduled:
            due = row.get("scheduleDate")
            if due is None or due > now:  # the client decodes dates as UTC-aware
                continue
            tenant = Tenant.for_organization(row["organizationId"])

            async def plan(campaign: Campaign) -> Planned:
                if campaign.status is not CampaignStatus.SCHEDULED:
                    return Planned("start", {}, campaign.status.value, campaign.status.value)
                started = campaign.startedAt or Tenant.now()
                return Planned(
                    "start",
                    {"status": CampaignStatus.SENDING.value, "startedAt": started},
                    CampaignStatus.SCHEDULED.value,
                    CampaignStatus.SENDING.value,
                )

            with contextlib.suppress(LostToStatusChange):
                await history.change(tenant, Campaign, row["_id"], plan, what="campaign")

    async def complete(self, tenant: Tenant, campaign_id: ObjectId) -> None:
        """Moves a sending campaign with no batch left to `completed`, folding the batch
        counts into its stats (one change: of several dispatchers, one wins)."""
        campaign = await tenant.get(Campaign, campaign_id)
        if campaign is None or campaign.status is not CampaignStatus.SENDING:
            return
        done = {
            (int(row["batch"]), int(row.get("step") or 0))
            async for row in tenant.raw_find(
                BatchLease, {"campaignId": campaign_id, "done": True}, {"batch": 1, "step": 1}
            )
        }
        units = campaign_units(campaign)
        if any(unit not in done for unit in units):
            return
        for step in campaign.followUpsStarted:  # ends another dispatcher saw but did not write
            if step not in campaign.followUpsEnded:
                await follow_up_history(tenant, campaign_id, step, started=False)
        stats = await live_stats(tenant, campaign)
        steps = [s.model_copy(update={"pending": 0}).model_dump() for s in campaign.followUpStats]

        async def plan(current: Campaign) -> Planned:
            # Autopilot switched back on, or a retry begun, since the look: not done after all.
            if current.status is not CampaignStatus.SENDING or campaign_units(current) != units:
                return Planned("complete", {}, current.status.value, current.status.value)
            return Planned(
                "complete",
                {
                    "status": CampaignStatus.COMPLETED.value,
                    "stats": stats.model_dump(),
                    "followUpTotals": steps,
                },
                CampaignStatus.SENDING.value,
                CampaignStatus.COMPLETED.value,
            )

        with contextlib.suppress(LostToStatusChange):
            await history.change(
                tenant, Campaign, PydanticObjectId(campaign_id), plan, what="campaign"
            )


def _log_hold(campaign: CampaignBatches, why: str, until: datetime | None) -> None:
    """Says once per campaign and hold (per dispatcher) that recipients are held back."""
    if why in campaign.logged:
        return
    campaign.logged.add(why)
    logger.info(
        "campaign %s: recipients held back by %s%s",
        campaign.id,
        why,
        f" until {until:%Y-%m-%d %H:%M} UTC" if until else "",
    )
