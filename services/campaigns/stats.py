"""A campaign's counters while it sends: its batches' counts summed on read.

The dispatcher writes each batch's counts to that batch's own document (one writer per
document), and folds them into the campaign when it completes; until then, readers add them up.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bson import ObjectId

from models import BatchCounts, Campaign, Reply
from models.campaign import CampaignStats, CampaignStatus, FollowUpStats, Hold, HoldReason
from models.recipient import RECIPIENT_BATCH
from services.storage.tenancy import Tenant

STARTED = frozenset({CampaignStatus.SENDING, CampaignStatus.PAUSED, CampaignStatus.CANCELLED})
"""Statuses in which a campaign may have batch counts not yet folded into it."""


@dataclass
class BatchTotals:
    """A campaign's batch counts summed (one read of all its `BatchCounts`)."""

    counts: Counter[str]
    """sent, failed, skipped, unknown (of the first message)."""
    steps: dict[int, Counter[str]]
    """The same per follow-up step, plus `stopped`."""
    next_send_at: datetime | None
    """The earliest time a batch's recipients waiting for quiet hours go out."""
    waiting: int
    """Recipients waiting for a window that opens after `now`."""
    zones: dict[tuple[str, str | None], tuple[int, datetime]] = field(default_factory=dict)
    """Of those, by time zone (and state): how many, and when the first window opens."""
    first_waiting: int = 0
    """Recipients of the first message waiting (quiet hours)."""
    rate: int | None = None
    """The organization's rate limit the batches last ran under."""


async def batch_totals(tenant: Tenant, campaign_id: ObjectId, now: datetime) -> BatchTotals:
    counts = Counter[str]()
    steps: dict[int, Counter[str]] = {}
    opens: list[datetime] = []
    waiting = 0
    zones: dict[tuple[str, str | None], tuple[int, datetime]] = {}
    first_waiting = 0
    rates: list[int] = []
    async for row in tenant.raw_find(BatchCounts, {"campaignId": campaign_id}):
        step = int(row.get("step") or 0)
        into = steps.setdefault(step, Counter()) if step else counts
        for key in ("sent", "failed", "skipped", "unknown", "stopped"):
            into[key] += int(row.get(key) or 0)
        if row.get("nextSendAt") is not None:
            opens.append(row["nextSendAt"])
            if row["nextSendAt"] > now:
                waiting += int(row.get("waiting") or 0)
            first_waiting += 0 if step else int(row.get("waiting") or 0)
        # As the batch's holder last saw them (like `nextSendAt`): its next turn rewrites them.
        for item in row.get("waitingZones") or []:
            where = (item["zone"], item.get("state"))
            count, until = zones.get(where, (0, item["until"]))
            zones[where] = (count + int(item["count"]), min(until, item["until"]))
        if row.get("rate"):
            rates.append(int(row["rate"]))
    counts.pop("stopped", None)
    return BatchTotals(
        counts,
        steps,
        min(opens, default=None),
        waiting,
        zones,
        first_waiting,
        max(rates, default=None),
    )


RATE_HOLD_SECONDS = 5
"""A rate limit holds a campaign back (and says so) when its due messages need longer than
this at the organization's rate."""


def holds(
    campaign: Campaign, stats: CampaignStats, totals: BatchTotals, now: datetime
) -> list[Hold]:
    """What holds the campaign's due recipients back: their windows, by zone, and the
    organization's rate limit when what is due needs more than a few seconds of it."""
    out = [
        Hold(
            reason=HoldReason.QUIET_HOURS,
            recipients=count,
            until=until,
            zone=zone,
            state=state,
            message=f"{count} recipient(s) wait for the sending window in {zone}"
            + (f" under {state}'s rules for marketing texts" if state else "")
            + f" (opens {until:%Y-%m-%d %H:%M} UTC)",
        )
        if zone
        else Hold(
            reason=HoldReason.FREQUENCY_CAP,
            recipients=count,
            until=until,
            message=f"{count} recipient(s) had their most messages for 24 hours; the first "
            f"may go at {until:%Y-%m-%d %H:%M} UTC",
        )
        for (zone, state), (count, until) in sorted(totals.zones.items(), key=lambda z: z[1][1])
    ]
    done = stats.sent + stats.failed + stats.skipped + stats.unknown
    due = stats.total - done - totals.first_waiting
    if (
        campaign.status is CampaignStatus.SENDING
        and totals.rate
        and due > totals.rate * RATE_HOLD_SECONDS
    ):
        until = now + timedelta(seconds=math.ceil(due / totals.rate))
        out.append(
            Hold(
                reason=HoldReason.RATE_LIMIT,
                recipients=due,
                until=until,
                message=f"{due} recipient(s) go out at the organization's limit of "
                f"{totals.rate} a second (about {until:%H:%M:%S} UTC)",
            )
        )
    return out


async def follow_up_stats(
    tenant: Tenant, campaign: Campaign, first: CampaignStats, totals: BatchTotals | None
) -> list[FollowUpStats]:
    """Per step: its counts (live from the batches while the campaign runs, else as folded
    at its end), the replies that came after it, and an estimate of who is still to get it."""
    if not campaign.followUps or campaign.startedAt is None or campaign.id is None:
        return []
    replies = await asyncio.gather(
        *(
            tenant.count(Reply, {"campaignId": campaign.id, "step": step})
            for step in range(len(campaign.followUps) + 1)
        )
    )
    if totals is None:  # folded at its end; replies keep coming
        return [
            folded.model_copy(update={"replied": replies[folded.step]})
            for folded in campaign.followUpTotals
            if folded.step < len(replies)
        ]
    out: list[FollowUpStats] = []
    previous_sent = first.sent
    for step in range(1, len(campaign.followUps) + 1):
        counts = totals.steps.get(step, Counter())
        done = sum(counts[k] for k in ("sent", "failed", "skipped", "unknown"))
        stopped = max(replies[step - 1], counts["stopped"])
        running = campaign.status in (CampaignStatus.SENDING, CampaignStatus.PAUSED)
        pending = max(0, previous_sent - stopped - done) if running and campaign.isAutopilot else 0
        out.append(
            FollowUpStats(
                step=step,
                sent=counts["sent"],
                failed=counts["failed"],
                skipped=counts["skipped"] + counts["unknown"],
                replied=replies[step],
                pending=pending,
            )
        )
        previous_sent = counts["sent"]
    return out


async def live_state(tenant: Tenant, campaign: Campaign) -> tuple[CampaignStats, datetime | None]:
    """The campaign's counters (stored ones, plus its batches' while it sends: the batch counts
    are folded into the campaign when it completes), and when recipients waiting for quiet
    hours to end go out (the earliest of its batches')."""
    if campaign.status not in STARTED or campaign.startedAt is None:
        campaign._follow_up_stats = await follow_up_stats(tenant, campaign, campaign.stats, None)
        return campaign.stats, None
    assert campaign.id is not None
    totals = await batch_totals(tenant, campaign.id, Tenant.now())
    stats = CampaignStats(
        total=campaign.stats.total, retried=campaign.stats.retried, **totals.counts
    )
    campaign._follow_up_stats = await follow_up_stats(tenant, campaign, stats, totals)
    if campaign.status is CampaignStatus.SENDING:  # paused or cancelled: that is the hold
        campaign._holds = holds(campaign, stats, totals, Tenant.now())
    return stats, totals.next_send_at


async def live_stats(tenant: Tenant, campaign: Campaign) -> CampaignStats:
    return (await live_state(tenant, campaign))[0]


async def with_live_stats(tenant: Tenant, campaigns: Sequence[Campaign]) -> None:
    """Replaces the stats of campaigns that are sending (or stopped mid-send) by live ones,
    sets their `nextSendAt`, and counts the replies of every campaign that started sending."""
    started = [c for c in campaigns if c.startedAt is not None]
    states = await asyncio.gather(*(live_state(tenant, c) for c in started))
    for campaign, (stats, next_send_at) in zip(started, states, strict=True):
        campaign.stats = stats
        campaign._next_send_at = next_send_at
    sent = [c for c in campaigns if c.startedAt is not None and c.id is not None]
    replies = await asyncio.gather(*(replied(tenant, c.id) for c in sent if c.id is not None))
    for campaign, count in zip(sent, replies, strict=True):
        campaign.stats = campaign.stats.model_copy(update={"replied": count})


async def replied(tenant: Tenant, campaign_id: ObjectId) -> int:
    """How many contacts replied to the campaign: its `Reply` records, counted by equality
    (each is one contact's first reply, inserted once; no counter has two writers)."""
    return await tenant.count(Reply, {"campaignId": campaign_id})


def batch_count(next_seq: int) -> int:
    """How many batches recipients numbered below `next_seq` fall into."""
    return math.ceil(next_seq / RECIPIENT_BATCH)
