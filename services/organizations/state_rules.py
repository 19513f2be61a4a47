"""US state rules for marketing texts that are stricter than an organization's window.

Kept as data: each row names its source (docs/sending.md#state-calling-hours lists them). The
state comes from the number (`phonenumbers`' geocoder: a state, or "City, ST"). A message goes
only when both the organization's window and the state's hours are open, in the recipient's
local time; a state's daily cap lowers the organization's frequency cap for its numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

import holidays
import phonenumbers
from phonenumbers import geocoder

Hours = tuple[int, int]
"""From, to: minutes after local midnight (end exclusive)."""

EIGHT_TO_EIGHT: Hours = (8 * 60, 20 * 60)


@dataclass(frozen=True)
class StateRule:
    state: str
    hours: Hours
    sunday: Hours | None = field(default=EIGHT_TO_EIGHT)
    """Sunday's hours (None: no messages on Sundays)."""
    closed_on_holidays: bool = False
    daily_cap: int | None = None
    """Messages per rolling 24 hours to one number (on one subject)."""
    source: str = ""


RULES: dict[str, StateRule] = {
    rule.state: rule
    for rule in (
        StateRule("FL", EIGHT_TO_EIGHT, daily_cap=3, source="Fla. Stat. § 501.059(8)"),
        StateRule("OK", EIGHT_TO_EIGHT, daily_cap=3, source="Okla. Stat. tit. 15, § 775C.4"),
        StateRule("MD", EIGHT_TO_EIGHT, daily_cap=3, source="Md. Code, Com. Law § 14-4503"),
        StateRule("WA", EIGHT_TO_EIGHT, source="RCW 80.36.390"),
        StateRule(
            "TX",
            (9 * 60, 21 * 60),
            sunday=(12 * 60, 21 * 60),
            source="Tex. Bus. & Com. Code § 301.051",
        ),
        StateRule(
            "LA",
            EIGHT_TO_EIGHT,
            sunday=None,
            closed_on_holidays=True,
            source="La. R.S. 45:844.17",
        ),
    )
}

STATE_NAMES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA",
    "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC",
}  # fmt: skip


@lru_cache(maxsize=200_000)
def state_of(phone: str) -> str | None:
    """The US state a number belongs to (two letters), None outside the US or when unknown."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code != 1:
        return None
    where = geocoder.description_for_number(parsed, "en")
    if where in STATE_NAMES:
        return STATE_NAMES[where]
    _, _, code = where.rpartition(", ")
    return code if len(code) == 2 and code.isupper() else None


def rule_for(phone: str) -> StateRule | None:
    state = state_of(phone)
    return RULES.get(state) if state else None


@lru_cache(maxsize=64)
def _holidays(state: str, year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("US", subdiv=state, years=year)


def hours_on(rule: StateRule, day: date) -> Hours | None:
    """The state's hours on that local day (None: no messages that day)."""
    if rule.closed_on_holidays and day in _holidays(rule.state, day.year):
        return None
    if day.weekday() == 6:
        return rule.sunday
    return rule.hours
