"""Instants as callers write them: ISO 8601 with a zone, stored in UTC to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.errors import FieldError, Path

MIN_YEAR, MAX_YEAR = 1970, 9000


def truncate_ms(value: datetime) -> datetime:
    """Drops sub-millisecond digits: MongoDB stores milliseconds, so replays compare equal."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def parse_instant(raw: str | None, path: Path, errors: list[FieldError]) -> datetime | None:
    """Parses `raw` to an aware UTC datetime; a problem goes to `errors` and gives None."""
    if raw is None or not raw.strip():
        return None
    example = "e.g. 2026-05-20T15:00:00.000Z"
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        errors.append(
            FieldError(path, "INVALID_DATE", f"'{raw}' is not an ISO 8601 date-time, {example}")
        )
        return None
    if value.tzinfo is None:
        errors.append(
            FieldError(
                path, "INVALID_DATE", "Include a time zone, e.g. 2026-05-20T15:00:00Z or +02:00"
            )
        )
        return None
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        errors.append(
            FieldError(path, "INVALID_DATE", f"Use a year between {MIN_YEAR} and {MAX_YEAR}")
        )
        return None
    return truncate_ms(value.astimezone(UTC))


def parse_send_time(
    raw: str | None, path: Path, grace_seconds: int, errors: list[FieldError]
) -> datetime | None:
    """Parses a time to send at: an instant as above, no earlier than `grace_seconds` ago.

    Creation, scheduling and editing a campaign all take their `scheduleDate` through here.
    """
    when = parse_instant(raw, path, errors)
    if when is not None and when < datetime.now(UTC) - timedelta(seconds=grace_seconds):
        errors.append(
            FieldError(path, "DATE_IN_PAST", "scheduleDate is in the past; pick a time from now on")
        )
        return None
    return when
