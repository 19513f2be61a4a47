"""How many API requests an organization may make: a budget per window, counted in memory.

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
    """Counts each organization's requests in this process against its share of the budget."""

    def __init__(self, limit: str, processes: int = 1) -> None:
        whole = parse(limit)
        share = max(1, math.ceil(whole.amount / processes))
        self.item: RateLimitItem = type(whole)(share, whole.multiples)
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def hit(self, organization_id: str, cost: int = 1) -> Verdict:
        """Counts one request of the organization; refused when its budget is spent."""
        allowed = self._limiter.hit(self.item, organization_id, cost=cost)
        stats = self._limiter.get_window_stats(self.item, organization_id)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        return Verdict(allowed, self.item.amount, stats.remaining, reset, self.item.get_expiry())
