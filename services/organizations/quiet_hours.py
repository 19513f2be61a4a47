"""Quiet hours: messages go out only inside the organization's sending window, in the
recipient's local time.

The zone comes from the phone number (`phonenumbers.timezone`): a fixed line or a US area code
names one zone. A number whose range spans zones (an Australian or Russian mobile) names
several; the organization's zone decides for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_zones

from services.organizations.state_rules import hours_on, rule_for


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
    when `end < start`; `0`-`1440` is all day), narrowed for US numbers by their state's rules
    (`state_rules`) unless `state_rules` is off."""

    start: int
    end: int
    default_zone: str
    state_rules: bool = True

    def zone_for(self, phone: str) -> ZoneInfo:
        return zone(zone_of_number(phone) or self.default_zone)

    def _own(self) -> list[tuple[int, int]]:
        if self.start <= self.end:
            return [(self.start, self.end)]
        return [(0, self.end), (self.start, 1440)]

    def open_on(self, phone: str, day: date) -> list[tuple[int, int]]:
        """The open intervals of that local day for this number: the organization's window,
        within its state's hours for that day (none on a day the state closes)."""
        rule = rule_for(phone) if self.state_rules else None
        if rule is None:
            return self._own()
        hours = hours_on(rule, day)
        if hours is None:
            return []
        return [
            (max(a, hours[0]), min(b, hours[1]))
            for a, b in self._own()
            if max(a, hours[0]) < min(b, hours[1])
        ]

    def is_open(self, phone: str, now: datetime) -> bool:
        local = now.astimezone(self.zone_for(phone))
        minute = local.hour * 60 + local.minute
        return any(a <= minute < b for a, b in self.open_on(phone, local.date()))

    def next_opening(self, phone: str, now: datetime) -> datetime | None:
        """When the window next opens for this number (UTC); `now` if it is open; None if it
        never does (the organization's window and the number's state's hours never overlap)."""
        if self.is_open(phone, now):
            return now
        tz = self.zone_for(phone)
        local = now.astimezone(tz)
        for offset in range(9):  # past a closed Sunday and a holiday weekend
            day = local.date() + timedelta(days=offset)
            for a, _ in sorted(self.open_on(phone, day)):
                opening = datetime.combine(day, time(a // 60, a % 60), tzinfo=tz)
                if opening > local:
                    return opening.astimezone(UTC)
        return None

    def never_opens(self, phone: str) -> str:
        """Why a number's window never opens, for the recipient's error."""
        rule = rule_for(phone) if self.state_rules else None
        state = rule.state if rule else "its state"
        return f"The organization's sending window never overlaps {state}'s hours for texts"

    def held_in(self, phone: str, now: datetime) -> tuple[str, str | None]:
        """What holds this number now, for the campaign's holds: its zone, and its state when
        the state's rules close a window the organization's would keep open."""
        tz = self.zone_for(phone)
        rule = rule_for(phone) if self.state_rules else None
        if rule is not None:
            local = now.astimezone(tz)
            minute = local.hour * 60 + local.minute
            if any(a <= minute < b for a, b in self._own()):
                return tz.key, rule.state
        return tz.key, None
