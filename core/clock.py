"""Times of day and zone names as settings and organizations write them; pure, no I/O.

They live in `core` because the deployment's settings and each organization's settings are
held to the same rules.
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import available_timezones

CLOCK = re.compile(r"^(?:[01]\d|2[0-3]):[0-5]\d$|^24:00$")
DAY = 24 * 60


def parse_clock(value: str, *, end: bool = False) -> int | None:
    """`HH:MM`, 24-hour, as minutes after midnight; `24:00` (the end of the day, as ISO 8601
    has it) only as an `end`, so `00:00`-`24:00` is a window open all day. None when it is not
    one."""
    if not CLOCK.match(value) or (value == "24:00" and not end):
        return None
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_zone(name: str) -> bool:
    """Whether `name` is an IANA time zone this machine knows (`Europe/Berlin`)."""
    return name in known_zones()
