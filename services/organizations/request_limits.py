"""How many API requests an organization, and each of its users, may make: one budget per
window for the whole deployment, however many API processes serve it; a write costs more than
a read.

Each process counts in memory, so a request never waits for the database, and shares its
counts: every `sync_every` seconds (and as soon as a key has used half its slack) it writes its
own share of the current window, one document per process and window replaced whole (no
shared `$inc`, which FerretDB runs as read, add, write back and so loses increments: see
docs/database.md), then reads the other processes' shares of that window. A request is admitted
while this process's count, the others' as last read and the previous window's weight leave
room for it (the sliding-window counter the `limits` library also uses).

What the others admitted since the last read is not seen, so a process admits at most `slack`
units of a key between two syncs; past that, the request waits for the next sync (a database
round trip, only for a key spending its budget fast). The first request of each window waits
for one too, so a process knows the window's shares (and the last window's final ones) before
it admits anything in it: one wait per process a window, whatever the keys. Hence the
deployment admits at most the limit plus `(N - 1) * slack` per window, N being the processes
that served the key (docs/operations.md#request-limits gives the numbers).

The `limits` library parses the budget's notation. Its storages are not used: the memory one
is per process (and starts a timer thread per key), and the MongoDB one does not run on the
embedded FerretDB at all (TTL indexes and update pipelines are not implemented there;
`tests/test_request_limits.py` checks it), and would cost a round trip per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from limits import parse
from pymongo import ReplaceOne
from pymongo.errors import PyMongoError

from models import RequestShare

logger = logging.getLogger("campaigns.limits")

SYNC_EVERY_S = 0.25
"""How often a process serving requests writes its shares and reads the others'."""
SLACK_SHARE = 20
"""A process admits at most this fraction (1/20) of a budget for one key between two syncs."""


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go ahead, and what the rate-limit headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the budget has room again (the window's end while there is room)."""
    window_seconds: int


@dataclass
class _Window:
    """One window's counts of one budget, as this process knows them."""

    index: int
    mine: dict[str, int] = field(default_factory=dict)
    """Admitted by this process."""
    published: dict[str, int] = field(default_factory=dict)
    """`mine` as written in the last complete sync (its write, then its read)."""
    others: dict[str, int] = field(default_factory=dict)
    """The other processes' shares, summed, as of the last read."""
    changed: bool = False
    """`mine` moved since the last write."""
    read: bool = False
    """`others` was read (at least once) in this window."""
    read_final: bool = False
    """(For a past window) the others' last shares were read after it ended."""

    def total(self, key: str) -> int:
        return self.mine.get(key, 0) + self.others.get(key, 0)


class Budget:
    """One budget (`600/minute`) per key, counted by this process together with the others."""

    def __init__(self, name: str, limit: str, largest_cost: int) -> None:
        item = parse(limit)
        self.name = name
        self.limit: int = item.amount
        self.window: int = item.get_expiry()
        self.slack = max(math.ceil(self.limit / SLACK_SHARE), largest_cost)
        """Units of one key this process may admit between two syncs (at least a write)."""
        self.current = _Window(-1)
        self.previous: _Window | None = None
        self.refusing: set[str] = set()
        """Keys refused in the current window (logged once each)."""

    def _at(self, now: float) -> tuple[_Window, float, int]:
        """The window `now` is in (the previous one kept when it is the one just before),
        the time into it, and its index."""
        index = int(now // self.window)
        if index != self.current.index:
            ended = self.current
            self.previous = ended if ended.index == index - 1 else None
            self.current = _Window(index)
            self.refusing = set()
        return self.current, now - index * self.window, index

    def count(self, key: str, now: float) -> tuple[int, float]:
        """The key's count at `now`: this window's, plus the previous window's weighted by how
        much of it the sliding window still covers; and the time into the window."""
        current, into, _ = self._at(now)
        carried = self._carried(key)
        weighted = math.floor(carried * (self.window - into) / self.window)
        return weighted + current.total(key), into

    def _carried(self, key: str) -> int:
        """The key's total in the window before the current one (0 if that was idle)."""
        previous = self.previous
        if previous is None or previous.index != self.current.index - 1:
            return 0
        return previous.total(key)

    def check(self, key: str, cost: int, now: float) -> tuple[Verdict, bool]:
        """The verdict on a request of `key` costing `cost`, not yet counted, and whether it
        must wait for a sync first: this process has not read the window's shares yet, or it
        used the key's slack since the last sync."""
        used, into = self.count(key, now)
        if used + cost > self.limit:
            return self._refusal(key, cost, into), False
        current = self.current
        unshared = current.mine.get(key, 0) - current.published.get(key, 0)
        must_wait = not current.read or (unshared > 0 and unshared + cost > self.slack)
        remaining = self.limit - used - cost
        reset = max(1, math.ceil(self.window - into))
        return Verdict(True, self.limit, remaining, reset, self.window), must_wait

    def _refusal(self, key: str, cost: int, into: float) -> Verdict:
        """A refusal, with when there will be room for `cost` again if nothing else comes."""
        now_count = self.current.total(key)
        carried = self._carried(key)
        room = self.limit - now_count - cost
        if room >= 0 and carried:
            # Within this window, as the previous one's weight slides out.
            wait = self.window * (1 - room / carried) - into
        else:
            # After this window ends, as its own count slides out.
            fraction = 1 - (self.limit - cost) / now_count if now_count else 0
            wait = self.window - into + self.window * max(0.0, fraction)
        if key not in self.refusing:
            self.refusing.add(key)
            logger.info(
                "%s %s is over its budget of %s/%ss; refusing its requests",
                self.name,
                key,
                self.limit,
                self.window,
            )
        return Verdict(False, self.limit, 0, max(1, math.ceil(wait)), self.window)

    def add(self, key: str, cost: int) -> bool:
        """Counts an admitted request; tells whether the key used half its slack (time to
        sync)."""
        current = self.current
        mine = current.mine.get(key, 0) + cost
        current.mine[key] = mine
        current.changed = True
        return 2 * (mine - current.published.get(key, 0)) >= self.slack

    def roll(self, now: float) -> None:
        """Moves to the window `now` is in."""
        self._at(now)


class RequestLimits:
    """The organization's budget and, within it, each user's, shared with the deployment's
    other API processes through the `RequestShare` documents."""

    def __init__(
        self,
        organization: str | None,
        user: str | None,
        *,
        largest_cost: int = 1,
        clock: Callable[[], datetime] = utcnow,
        sync_every: float = SYNC_EVERY_S,
    ) -> None:
        self.organization = (
            Budget("organization", organization, largest_cost) if organization else None
        )
        self.user = Budget("user", user, largest_cost) if user else None
        self.clock = clock
        self.sync_every = sync_every
        self.writer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """This limiter's name among the processes sharing budgets (one per process)."""
        self._wake = asyncio.Event()
        self._synced: asyncio.Future[None] | None = None
        self._running = False
        self._failing = False
        self._syncing = asyncio.Lock()
        """One round at a time: two replacing one share could leave the older count."""

    def __bool__(self) -> bool:
        return self.organization is not None or self.user is not None

    def _budgets(self, organization_id: str, user_id: str) -> list[tuple[Budget, str]]:
        pairs = []
        if self.user is not None:
            pairs.append((self.user, f"{organization_id}:{user_id}"))
        if self.organization is not None:
            pairs.append((self.organization, organization_id))
        return pairs

    def refusal(self, organization_id: str, user_id: str) -> Verdict | None:
        """The refusal any request of this caller gets now (a read, the cheapest, would not
        fit), or None: decided without counting anything and without the request's body."""
        now = self.clock().timestamp()
        for budget, key in self._budgets(organization_id, user_id):
            verdict, _ = budget.check(key, 1, now)
            if not verdict.allowed:
                return verdict
        return None

    async def hit(self, organization_id: str, user_id: str, cost: int = 1) -> Verdict:
        """Counts a request against the user's budget and the organization's; the first
        refusal answers, and a refused request counts in neither. An allowed request reports
        the budget with less room left."""
        pairs = self._budgets(organization_id, user_id)
        while True:
            now = self.clock().timestamp()
            verdicts = []
            waiting = False
            for budget, key in pairs:
                verdict, must_wait = budget.check(key, cost, now)
                if not verdict.allowed:
                    return verdict
                verdicts.append(verdict)
                waiting = waiting or must_wait
            if waiting and self._running:
                await self._next_sync()
                continue
            wake = False
            for budget, key in pairs:
                wake = budget.add(key, cost) or wake
            if wake:
                self._wake.set()
            return min(verdicts, key=lambda v: v.remaining / v.limit)

    async def _next_sync(self) -> None:
        if self._synced is None or self._synced.done():
            self._synced = asyncio.get_running_loop().create_future()
        synced = self._synced
        self._wake.set()
        await asyncio.shield(synced)

    async def run(self) -> None:
        """Shares the counts until cancelled: every `sync_every` seconds while requests come,
        and at once when a key used half its slack or a request waits."""
        self._running = True
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.sync_every)
                self._wake.clear()
                await self.sync()
        finally:
            self._running = False
            if self._synced is not None and not self._synced.done():
                self._synced.set_result(None)

    async def sync(self) -> None:
        """Writes this process's shares and reads the others' (one round). When the database
        fails, each process goes on counting alone until it answers again."""
        async with self._syncing:
            await self._round()

    async def _round(self) -> None:
        synced = self._synced
        try:
            for budget in (self.organization, self.user):
                if budget is not None:
                    await self._sync(budget, waiting=synced is not None and not synced.done())
            if self._failing:
                logger.warning("request budgets are shared again")
                self._failing = False
        except Exception as exc:  # the sharing must not stop: requests wait on it
            if not self._failing:
                logger.warning(
                    "request budgets cannot be shared (%s); counting alone",
                    exc,
                    exc_info=not isinstance(exc, PyMongoError),
                )
                self._failing = True
            for budget in (self.organization, self.user):
                if budget is not None:
                    budget.current.published = dict(budget.current.mine)
                    budget.current.read = True
        finally:
            if synced is not None and not synced.done():
                synced.set_result(None)

    async def _sync(self, budget: Budget, *, waiting: bool) -> None:
        """Writes what changed, then reads the others' shares if this process admitted
        anything since the last round or a request waits (an idle process reads nothing but a
        new window's shares, once)."""
        collection = RequestShare.get_pymongo_collection()
        budget.roll(self.clock().timestamp())
        current, previous = budget.current, budget.previous
        writes = []
        snapshots: list[tuple[_Window, dict[str, int]]] = []
        for window in (previous, current):
            if window is not None and window.changed:
                snapshot = dict(window.mine)
                window.changed = False
                snapshots.append((window, snapshot))
                share = {
                    "policy": budget.name,
                    "window": window.index,
                    "writer": self.writer,
                    "counts": snapshot,
                }
                key = {"_id": f"{budget.name}:{window.index}:{self.writer}"}
                writes.append(ReplaceOne(key, share, upsert=True))
        if writes:
            try:
                await collection.bulk_write(writes, ordered=True)
            except PyMongoError:
                for window, _ in snapshots:
                    window.changed = True
                raise
        if previous is not None and not previous.read_final:
            previous.others = await self._others(budget, previous.index)
            previous.read_final = True
            # Shares of windows no sliding window reaches any more; FerretDB has no TTL.
            await collection.delete_many({"policy": budget.name, "window": {"$lt": previous.index}})
        if snapshots or waiting or not current.read:
            current.others = await self._others(budget, current.index)
            current.read = True
        # Only now: what was admitted between the write and the read was judged on the
        # shares read before, so it counts as unshared until this round is over.
        for window, snapshot in snapshots:
            window.published = snapshot

    async def _others(self, budget: Budget, window: int) -> dict[str, int]:
        """The other processes' shares of `window`, summed by key."""
        collection = RequestShare.get_pymongo_collection()
        totals: defaultdict[str, int] = defaultdict(int)
        async for share in collection.find(
            {"policy": budget.name, "window": window}, {"writer": 1, "counts": 1}
        ):
            if share.get("writer") == self.writer:
                continue
            for key, n in share.get("counts", {}).items():
                totals[key] += int(n)
        return dict(totals)
