"""How many API requests an organization, and each of its users, may make: a budget per window,
counted in memory; a write costs more than a read.

The `limits` library counts (its memory storage, sliding-window counters). Its MongoDB storage
was not used: it counts with `$inc` through Motor, and on the embedded FerretDB concurrent
`$inc`s lost increments in an earlier check (docs/database.md), so a shared counter there would
let floods through. Each API process counts on its own instead and allows its share of the
budget (`Settings.api_processes`); see docs/operations.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a request may go ahead, and what the rate-limit headers say."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    """Seconds until the budget has room again (the window's end when exhausted)."""
    window_seconds: int


class RequestLimiter:
    """Counts requests in this process against each key's share of the budget."""

    def __init__(self, limit: str, processes: int = 1) -> None:
        whole = parse(limit)
        share = max(1, math.ceil(whole.amount / processes))
        self.item: RateLimitItem = type(whole)(share, whole.multiples)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def hit(self, key: str, cost: int = 1) -> Verdict:
        """Counts one request of `key` (costing `cost`); refused when its budget is spent."""
        allowed = self._limiter.hit(self.item, key, cost=cost)
        stats = self._limiter.get_window_stats(self.item, key)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, self.item.amount, stats.remaining, reset, self.item.get_expiry())


class RequestLimits:
    """The organization's budget and, within it, each user's."""

    def __init__(self, organization: str | None, user: str | None, processes: int = 1) -> None:
        self.organization = RequestLimiter(organization, processes) if organization else None
        self.user = RequestLimiter(user, processes) if user else None

    def __bool__(self) -> bool:
        return self.organization is not None or self.user is not None

    def hit(self, organization_id: str, user_id: str, cost: int = 1) -> Verdict:
        """Counts a request against the user's budget, then the organization's; the first
        refusal answers (a user over its own budget spends nothing of the organization's).
        An allowed request reports the budget with less room left."""
        verdicts = []
        if self.user is not None:
            mine = self.user.hit(f"{organization_id}:{user_id}", cost)
            if not mine.allowed:
                return mine
            verdicts.append(mine)
        if self.organization is not None:
            ours = self.organization.hit(organization_id, cost)
            if not ours.allowed:
                return ours
            verdicts.append(ours)
        return min(verdicts, key=lambda v: v.remaining / v.limit)
