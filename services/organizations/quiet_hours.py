"""Quiet hours: messages go out only inside the organization's sending window, in the
recipient's local time.

The zone comes from the phone number (`phonenumbers.timezone`): a fixed line or a US area code
names one zone. A number whose range spans zones (an Australian or Russian mobile) names
several; the organization's zone decides for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@lru_cache(maxsize=200_000)
def zone_of_number(phone: str) -> str | None:
    """The one zone a number is in, or None when the number spans several (or is unknown)."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    zones = phone_zones.time_zones_for_number(parsed)
    if len(zones) != 1 or zones[0] == "Etc/Unknown":
        return None
    return str(zones[0])


@dataclass(frozen=True)
class SendWindow:
    """`start` to `end` local time, in minutes after midnight (end exclusive; crossing midnight
    when `end < start`; `0`-`1440` is all day)."""

    start: int
    end: int
    default_zone: str

    def zone_for(self, phone: str) -> ZoneInfo:
        return zone(zone_of_number(phone) or self.default_zone)

    def is_open(self, phone: str, now: datetime) -> bool:
        local = now.astimezone(self.zone_for(phone))
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def next_opening(self, phone: str, now: datetime) -> datetime:
        """When the window next opens for this number (UTC); `now` if it is open."""
        if self.is_open(phone, now):
            return now
        tz = self.zone_for(phone)
        local = now.astimezone(tz)
        opens_at = time(self.start // 60, self.start % 60)
        for offset in (0, 1, 2):
            opening = datetime.combine(local.date() + timedelta(days=offset), opens_at, tzinfo=tz)
            if opening > local:
                return opening.astimezone(UTC)
        raise AssertionError("a window opens within two days")
