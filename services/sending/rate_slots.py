"""The per-organization rate limit: slots of a second, each claimed by one unique insert.

An organization allowed `rate` messages a second has `ceil(rate / chunk)` slots in each second
of the dispatchers' clock, each for up to `chunk` messages (the last one for what remains).
Inserting `SendSlot` `"<organization>:<second>:<slot>"` is the claim, so however many
dispatchers send for an organization, at most `rate` messages start in any second, decided by
the primary key alone. Taking a slot never waits: when the second is used up, the answer is
when the next one starts, and the caller serves someone else meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from models import SendSlot
from services.storage.tenancy import Tenant

PURGE_AFTER_S = 60
"""A second's slots matter only during that second; older ones are deleted by the dispatcher
that uses them, once a minute (FerretDB has no TTL indexes)."""


@dataclass(frozen=True)
class Grant:
    """Permission to start `size` messages now."""

    size: int
    rate: int | None = None
    """The organization's limit it was granted under (None: unlimited), shown with a hold."""


def slot_sizes(rate: int, chunk: int) -> list[int]:
    """The sizes of one second's slots: `chunk` each, the last one what is left of `rate`."""
    full, rest = divmod(rate, chunk)
    return [chunk] * full + ([rest] if rest else [])


class RateSlots:
    """One dispatcher's way to its organizations' slots (it remembers which seconds it found
    used up, so a waiting organization costs no database round trip)."""

    def __init__(self, clock: Callable[[], datetime], chunk: int) -> None:
        self.clock = clock
        self.chunk = chunk
        self._tried: dict[ObjectId, tuple[int, int]] = {}
        """Per organization: the second looked at last, and its first slot not known taken
        (-1: all are)."""
        self._purged: dict[ObjectId, int] = {}

    def free_at(self, organization_id: ObjectId) -> datetime | None:
        """When the organization's next slot may be free, if this dispatcher already found the
        current second used up (None: one may be free now)."""
        second = self._second()
        seen, first = self._tried.get(organization_id, (second, 0))
        return _start_of(second + 1) if seen == second and first < 0 else None

    async def take(self, tenant: Tenant, rate: int | None) -> Grant | datetime:
        """A slot of the current second for the organization, or when the next second starts
        if this one is used up. Never waits."""
        if not rate:
            return Grant(self.chunk)
        second = self._second()
        org = tenant.organization_id
        if (free := self.free_at(org)) is not None:
            return free
        sizes = slot_sizes(rate, self.chunk)
        seen, first = self._tried.get(org, (second, 0))
        for slot in range(first if seen == second else 0, len(sizes)):
            claim = SendSlot(
                id=f"{org}:{second}:{slot}", organizationId=org, second=second, slot=slot
            )
            try:
                await tenant.insert(claim)
            except DuplicateKeyError:
                continue  # taken by this or another dispatcher
            self._tried[org] = (second, slot + 1)
            await self._purge(tenant, second)
            return Grant(sizes[slot], rate)
        self._tried[org] = (second, -1)
        return _start_of(second + 1)

    def _second(self) -> int:
        return int(self.clock().timestamp())

    async def _purge(self, tenant: Tenant, second: int) -> None:
        """Deletes the organization's slots of past minutes, once a minute per dispatcher."""
        minute = second // 60
        if self._purged.get(tenant.organization_id) == minute:
            return
        self._purged[tenant.organization_id] = minute
        await tenant.delete_many(SendSlot, {"second": {"$lt": second - PURGE_AFTER_S}})


def _start_of(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)
