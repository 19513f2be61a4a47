"""A campaign's status moves: schedule, send now, pause, resume, cancel, delete.

    draft ──schedule──▶ scheduled ──(due)──▶ sending ──(all done)──▶ completed
      │                   │  ▲                 │  ▲
      │                   ▼  │resume           ▼  │resume
      │                  paused ◀──pause──── sending
      └───────────── cancel (from any status but completed/cancelled) ──▶ cancelled

`sendCampaignNow` moves draft, scheduled or paused straight to sending. Every move is a
numbered change (`services.storage.history`): of two racing requests exactly one wins, and the other
is refused with `INVALID_TRANSITION` naming the status the winner left — a move is decided
for the status the caller saw, so it is not replayed on top of another move.
"""

from __future__ import annotations

from core.config import Settings
from core.errors import FieldError, InvalidInput, InvalidTransition, NotFound
from models import Campaign
from models.base import utcnow
from models.campaign import CampaignStatus
from services.dates import parse_send_time
from services.storage import buckets, history, slots, tallies
from services.storage.history import LostToStatusChange, Planned
from services.storage.tenancy import Tenant

S = CampaignStatus
FINAL = frozenset({S.COMPLETED, S.CANCELLED})
EDITABLE = frozenset({S.DRAFT, S.SCHEDULED, S.PAUSED})
"""Statuses in which a campaign's template, date and recipients may change."""
DELETABLE = frozenset({S.DRAFT, S.CANCELLED})


async def schedule(
    tenant: Tenant, campaign_id: str, schedule_date: str, settings: Settings
) -> Campaign:
    """Schedules (or reschedules) a campaign to start sending at `schedule_date`."""
    errors: list[FieldError] = []
    when = parse_send_time(
        schedule_date, ("scheduleDate",), settings.schedule_grace_seconds, errors
    )
    if when is None and not errors:
        errors.append(FieldError(("scheduleDate",), "REQUIRED", "scheduleDate is required"))
    if errors:
        raise InvalidInput("Invalid schedule", errors)

    async def plan(campaign: Campaign) -> Planned:
        _allow("schedule", campaign, EDITABLE)
        _need_recipients(campaign)
        bucket = await buckets.place(tenant, when, campaign.page)
        return _move("schedule", campaign, S.SCHEDULED, scheduleDate=when, scheduleBucket=bucket)

    return await _apply(tenant, campaign_id, "schedule", plan)


async def send_now(tenant: Tenant, campaign_id: str) -> Campaign:
    """Starts sending at once, whatever the schedule said."""

    async def plan(campaign: Campaign) -> Planned:
        _allow("send", campaign, EDITABLE)
        _need_recipients(campaign)
        now = utcnow()
        started = campaign.startedAt or now  # resuming a paused send keeps when it began
        bucket = await buckets.place(tenant, now, campaign.page)
        return _move(
            "send", campaign, S.SENDING, scheduleDate=now, scheduleBucket=bucket, startedAt=started
        )

    return await _apply(tenant, campaign_id, "send", plan)


async def pause(tenant: Tenant, campaign_id: str) -> Campaign:
    """Holds a scheduled or sending campaign; nothing more is sent until it resumes."""

    async def plan(campaign: Campaign) -> Planned:
        _allow("pause", campaign, {S.SCHEDULED, S.SENDING})
        return _move("pause", campaign, S.PAUSED)

    return await _apply(tenant, campaign_id, "pause", plan)


async def resume(tenant: Tenant, campaign_id: str) -> Campaign:
    """Continues a paused campaign: sending again if it had started, else scheduled."""

    async def plan(campaign: Campaign) -> Planned:
        _allow("resume", campaign, {S.PAUSED})
        target = S.SENDING if campaign.startedAt is not None else S.SCHEDULED
        if target is S.SCHEDULED and campaign.scheduleDate is None:
            target = S.SENDING  # paused before any date was set: resuming means send
        return _move("resume", campaign, target)

    return await _apply(tenant, campaign_id, "resume", plan)


async def cancel(tenant: Tenant, campaign_id: str) -> Campaign:
    """Stops a campaign for good; recipients not yet sent to are never sent to."""

    async def plan(campaign: Campaign) -> Planned:
        _allow("cancel", campaign, set(S) - FINAL)
        return _move("cancel", campaign, S.CANCELLED)

    return await _apply(tenant, campaign_id, "cancel", plan)


async def delete(tenant: Tenant, campaign_id: str) -> str:
    """Deletes a draft or cancelled campaign with its recipients and history; returns its id."""

    async def plan(campaign: Campaign) -> Planned:
        _allow("delete", campaign, DELETABLE)
        work = {"deleteRecipientsOf": campaign.id}
        return Planned("delete", {}, campaign.status.value, "deleted", work)

    try:
        campaign = await _apply(tenant, campaign_id, "delete", plan)
    except InvalidTransition as lost:
        if lost.current != "deleted":
            raise
        # Another deletion's change is written (by it, or just here for a writer that died)
        # but the campaign is still there: delete it as that deletion would have.
        found = await tenant.get(Campaign, campaign_id)
        if found is None:
            raise NotFound("campaign") from None
        campaign = found
    assert campaign.id is not None
    if campaign.listSeq is not None:  # its number first: a numbered page never counts it
        await slots.CAMPAIGNS.record_gaps(tenant, [campaign.listSeq])
    deleted = await tenant.delete_many(Campaign, {"_id": campaign.id})
    await tallies.add(tenant, tallies.CAMPAIGNS, -deleted)
    if deleted:  # of deletions at once, the one that deleted it
        await tallies.moved(tenant, Campaign, campaign.status, None)
    await history.forget(tenant, campaign.id)
    return str(campaign.id)


def _allow(action: str, campaign: Campaign, allowed: set[S] | frozenset[S]) -> None:
    if campaign.status not in allowed:
        raise InvalidTransition(action, campaign.status.value)


def _need_recipients(campaign: Campaign) -> None:
    if campaign.stats.total == 0:
        message = "The campaign has no recipients; add some first"
        raise InvalidInput(message, [FieldError(("id",), "NO_RECIPIENTS", message)])


def _move(action: str, campaign: Campaign, target: S, **fields: object) -> Planned:
    return Planned(
        action,
        {"status": target.value, **fields},
        campaign.status.value,
        target.value,
    )


async def _apply(
    tenant: Tenant,
    campaign_id: str,
    action: str,
    plan: history.Plan[Campaign],
) -> Campaign:
    try:
        campaign, _ = await history.change(tenant, Campaign, campaign_id, plan, what="campaign")
    except LostToStatusChange as lost:
        raise InvalidTransition(action, lost.status) from None
    return campaign
