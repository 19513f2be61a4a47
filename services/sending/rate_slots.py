"""The per-organization rate limit: slots of a second, each claimed by one unique insert.

An organization allowed `rate` messages a second has, in each second of the dispatchers'
clock, `ceil((rate - reps) / chunk)` campaign slots of up to `chunk` messages (the last one
for what remains) and `reps` single-message units at the end, kept for reps' one-to-one
messages (`rep_units`). Inserting `SendSlot` `"<organization>:<second>:<index>"` is the claim,
so however many dispatchers and API processes send for an organization, at most `rate`
messages start in any second, decided by the primary key alone.

Reps' messages come first: a rep's message takes a unit from the top down, one insert, and
never waits behind a campaign batch. Campaign lanes take the units too, but only with the
second's last campaign slot (one unordered insert of that slot and the units, so each unit
has one winner and a second at its limit still costs one chunk): an organization with no
rep writing loses nothing. A rep who finds the current second used up holds a unit of the
next second with a free one and goes out when it starts, before any campaign lane can take
that second's units.

Taking a campaign slot never waits: when the second is used up, the answer is when the next
one starts, and the caller serves someone else meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId
from pymongo.errors import BulkWriteError, DuplicateKeyError

from models import SendSlot
from services.organizations.settings import rate_per_second
from services.storage.tenancy import DUPLICATE_KEY, Tenant

PURGE_AFTER_S = 60
"""A second's slots matter only during that second; older ones are deleted by the dispatcher
that uses them, once a minute (FerretDB has no TTL indexes)."""
REP_SHARE = 10
"""One message in this many of an organization's rate is a unit reps' messages take first
(at least one a second)."""
REP_HORIZON_S = 60
"""How many seconds ahead a rep's message looks for a free unit; past it (reps writing more
than their units for a whole minute) it goes out without one."""
CLOCK_STEP_S = 0.05
"""How often a rep's message waiting for its second reads the clock again."""


@dataclass(frozen=True)
class Grant:
    """Permission to start `size` messages now."""

    size: int
    rate: int | None = None
    """The organization's limit it was granted under (None: unlimited), shown with a hold."""


@dataclass(frozen=True)
class Layout:
    """One second's slots: campaign slots of `chunks` sizes, then `units` single messages."""

    chunks: list[int]
    units: int

    @property
    def slots(self) -> int:
        return len(self.chunks) + self.units

    def size(self, index: int) -> int:
        return self.chunks[index] if index < len(self.chunks) else 1

    def last_claim(self, chunk: int) -> list[int]:
        """The indexes a campaign lane claims together at the end of the second: its last
        campaign slot and the units, when they fit in one chunk (else the units alone)."""
        units = list(range(len(self.chunks), self.slots))
        if self.chunks and self.chunks[-1] + self.units <= chunk:
            return [len(self.chunks) - 1, *units]
        return units


def rep_units(rate: int) -> int:
    """Units of each second reps' messages take before campaigns."""
    return max(1, rate // REP_SHARE)


def layout(rate: int, chunk: int) -> Layout:
    """The slots of one second for an organization allowed `rate` messages a second."""
    units = min(rate, rep_units(rate))
    full, rest = divmod(rate - units, chunk)
    return Layout([chunk] * full + ([rest] if rest else []), units)


def slot_sizes(rate: int, chunk: int) -> list[int]:
    """The sizes of the campaign claims of one second, in the order a lane makes them."""
    second = layout(rate, chunk)
    last = second.last_claim(chunk)
    singles = [second.chunks[i] for i in range(len(second.chunks)) if i not in last]
    return [*singles, sum(second.size(i) for i in last)]


class RateSlots:
    """One process's way to its organizations' slots (it remembers which seconds it found
    used up, so a waiting organization costs no database round trip)."""

    def __init__(self, clock: Callable[[], datetime], chunk: int) -> None:
        self.clock = clock
        self.chunk = chunk
        self._tried: dict[ObjectId, tuple[int, int]] = {}
        """Per organization: the second looked at last, and its first campaign slot not known
        taken (-1: all are)."""
        self._purged: dict[ObjectId, int] = {}

    def free_at(self, organization_id: ObjectId) -> datetime | None:
        """When the organization's next slot may be free, if this dispatcher already found the
        current second used up (None: one may be free now)."""
        second = self._second()
        seen, first = self._tried.get(organization_id, (second, 0))
        return _start_of(second + 1) if seen == second and first < 0 else None

    async def take(self, tenant: Tenant, rate: int | None) -> Grant | datetime:
        """A campaign slot of the current second for the organization, or when the next
        second starts if this one is used up. Never waits."""
        if not rate:
            return Grant(self.chunk)
        second = self._second()
        org = tenant.organization_id
        if (free := self.free_at(org)) is not None:
            return free
        plan = layout(rate, self.chunk)
        last = plan.last_claim(self.chunk)
        seen, first = self._tried.get(org, (second, 0))
        start = first if seen == second else 0
        for index in range(start, len(plan.chunks)):
            if index in last:
                break
            if await self._insert(tenant, second, index, plan.size(index)):
                self._tried[org] = (second, index + 1)
                await self._purge(tenant, second)
                return Grant(plan.size(index), rate)
        self._tried[org] = (second, -1)
        won = await self._insert_all(tenant, second, [(i, plan.size(i)) for i in last])
        if won:
            await self._purge(tenant, second)
            return Grant(won, rate)
        return _start_of(second + 1)

    async def take_unit(self, tenant: Tenant, rate: int | None) -> datetime | None:
        """A unit for one rep's message: of the current second (None: send now), else of the
        first later second with one free (send when it starts). Top unit first, so campaign
        lanes, which claim units from the bottom with their last slot, meet it last."""
        if not rate:
            return None
        now = self._second()
        plan = layout(rate, self.chunk)
        for second in range(now, now + REP_HORIZON_S):
            for index in reversed(range(len(plan.chunks), plan.slots)):
                if await self._insert(tenant, second, index, 1):
                    return None if second == now else _start_of(second)
        return _start_of(now + REP_HORIZON_S)

    async def _insert(self, tenant: Tenant, second: int, index: int, size: int) -> bool:
        claim = SendSlot(
            id=slot_id(tenant.organization_id, second, index),
            organizationId=tenant.organization_id,
            second=second,
            slot=index,
            size=size,
        )
        try:
            await tenant.insert(claim)
        except DuplicateKeyError:
            return False  # taken by this or another process
        return True

    async def _insert_all(self, tenant: Tenant, second: int, slots: list[tuple[int, int]]) -> int:
        """Claims several slots in one unordered insert; returns the messages of those won
        (each slot has one winner: a duplicate is its own error, the rest go in)."""
        org = tenant.organization_id
        documents = [
            {"_id": slot_id(org, second, index), "second": second, "slot": index, "size": size}
            for index, size in slots
        ]
        try:
            await tenant.raw_insert_many(SendSlot, documents, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if any(error.get("code") != DUPLICATE_KEY for error in errors):
                raise
            lost = {int(error["index"]) for error in errors}
            return sum(size for i, (_, size) in enumerate(slots) if i not in lost)
        return sum(size for _, size in slots)

    def _second(self) -> int:
        return int(self.clock().timestamp())

    async def _purge(self, tenant: Tenant, second: int) -> None:
        """Deletes the organization's slots of past minutes, once a minute per dispatcher."""
        minute = second // 60
        if self._purged.get(tenant.organization_id) == minute:
            return
        self._purged[tenant.organization_id] = minute
        await tenant.delete_many(SendSlot, {"second": {"$lt": second - PURGE_AFTER_S}})


@dataclass
class RepMeter:
    """Reps' messages within their organization's rate: each takes a unit before it goes."""

    slots: RateSlots
    default_rate: int | None
    """The deployment's rate, for organizations without their own (None: no limit)."""

    async def admit(self, tenant: Tenant) -> None:
        """Returns when the rep's message may start: at once with a unit of this second, else
        at the start of the second whose unit it holds (seconds, never behind a campaign)."""
        rate = await rate_per_second(tenant, self.default_rate)
        at = await self.slots.take_unit(tenant, rate)
        if at is None:
            return
        # By the clock's own reading, in short steps: a test's clock moves while this waits.
        left = (at - self.slots.clock()).total_seconds()
        while left > 0:
            await asyncio.sleep(min(left, CLOCK_STEP_S))
            left = (at - self.slots.clock()).total_seconds()


def slot_id(organization_id: ObjectId, second: int, index: int) -> str:
    return f"{organization_id}:{second}:{index}"


def _start_of(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)
