"""Campaign progress, pushed live: one watcher per process, whatever the subscribers.

The database is the only bus, as for `messageReceived` (`services.conversations.live`): the
dispatcher of any process writes a campaign's counts, and each API process's watcher reads every
campaign its subscribers follow once per pass and hands the value to each subscriber it is new
to. Two hundred screens open on one campaign read it as one would, so a busy campaign's
audience costs the database nothing more (and a bystander organization nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bson import ObjectId

from core.errors import NotFound
from models import Campaign
from services.campaigns import lifecycle
from services.campaigns.queries import get_campaign
from services.storage.tenancy import Tenant

logger = logging.getLogger(__name__)

EVERY_S = 0.5
"""How often the watcher reads the campaigns followed: at most two values a second."""

Key = tuple[ObjectId, ObjectId]
"""A followed campaign: its organization and its id."""


def _state(campaign: Campaign) -> tuple[object, ...]:
    """What a subscriber is told about: a value is pushed when this changes."""
    return (
        campaign.status,
        campaign.stats,
        campaign.followUpStats,
        campaign.holds,
        campaign.nextSendAt,
    )


@dataclass(eq=False)
class _Follower:
    """One subscriber: the last state it was given, and the newest value waiting for it (only
    the newest: progress is a state, and a slow reader skips to it)."""

    last: tuple[object, ...]
    latest: Campaign | NotFound | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, value: Campaign | NotFound) -> None:
        if isinstance(value, Campaign):
            if _state(value) == self.last:
                return
            self.last = _state(value)
        self.latest = value
        self.ready.set()


class ProgressWatcher:
    """Reads the campaigns followed in this process, one read each per pass, and fans out."""

    def __init__(self, every_s: float = EVERY_S) -> None:
        self.every_s = every_s
        self.followers: dict[Key, set[_Follower]] = {}
        self.task: asyncio.Task[None] | None = None
        self.passes = 0
        self.reads = 0
        """Campaign reads made (a test counts them against subscribers)."""

    async def follow(self, tenant: Tenant, campaign_id: str) -> AsyncIterator[Campaign]:
        """The campaign now, then again whenever its status or counters change; ends when it
        is completed or cancelled. Raises `NotFound` as `get_campaign` does (also when the
        campaign is deleted while followed)."""
        campaign = await get_campaign(tenant, campaign_id)
        yield campaign
        if campaign.status in lifecycle.FINAL:
            return
        assert campaign.id is not None
        key = (tenant.organization_id, campaign.id)
        follower = _Follower(_state(campaign))
        self.followers.setdefault(key, set()).add(follower)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        try:
            while True:
                await follower.ready.wait()
                follower.ready.clear()
                value, follower.latest = follower.latest, None
                if isinstance(value, NotFound):
                    raise value
                if value is None:
                    continue
                yield value
                if value.status in lifecycle.FINAL:
                    return
        finally:
            group = self.followers.get(key, set())
            group.discard(follower)
            if not group:
                self.followers.pop(key, None)

    async def _run(self) -> None:
        while self.followers:
            try:
                await self.tick()
            except Exception:  # a failed pass must not end everyone's subscription
                logger.exception("reading campaign progress failed")
            await asyncio.sleep(self.every_s)

    async def tick(self) -> None:
        """One pass: each followed campaign read once, its value offered to its followers."""
        self.passes += 1
        for (organization_id, campaign_id), group in list(self.followers.items()):
            self.reads += 1
            value: Campaign | NotFound
            try:
                value = await get_campaign(
                    Tenant.for_organization(organization_id), str(campaign_id)
                )
            except NotFound as exc:
                value = exc
            for follower in list(group):
                with contextlib.suppress(Exception):
                    follower.offer(value)


WATCHER = ProgressWatcher()
"""This process's progress watcher."""
