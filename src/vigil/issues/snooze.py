"""Ignoring an issue until a condition is met (Sentry's "archive until …", its
GroupSnooze): reading the condition from the issues API's `statusDetails` and deciding
whether it is met. No I/O.

The conditions, as Sentry's: `ignoreDuration` (minutes from now) or `ignoreUntil` (a
moment) ends it in time; `ignoreCount` more occurrences end it, or, with `ignoreWindow`
(minutes), that many occurrences within the window; `ignoreUserCount` /
`ignoreUserWindow` are kept and shown, and never met, since vigil counts no users.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

# Sentry's cap on both windows: a week, in minutes.
MAX_WINDOW_MINUTES: Final = 7 * 24 * 60
# Far enough for any real snooze, near enough for date arithmetic to stay in range.
MAX_DURATION_MINUTES: Final = 100 * 366 * 24 * 60
MAX_COUNT: Final = 2_147_483_647

DETAIL_KEYS: Final = (
    "ignoreCount",
    "ignoreWindow",
    "ignoreDuration",
    "ignoreUntil",
    "ignoreUserCount",
    "ignoreUserWindow",
)


class InvalidSnooze(ValueError):
    """A `statusDetails` value that is no condition; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Snooze:
    """The condition an ignored issue waits for; `times_seen` is the issue's when it was
    ignored."""

    until: datetime | None = None
    count: int | None = None
    window: int | None = None  # minutes
    user_count: int | None = None
    user_window: int | None = None  # minutes
    times_seen: int = 0


def has_condition(details: Mapping[str, Any]) -> bool:
    """Whether `statusDetails` asks for an ignore until a condition is met."""
    return any(details.get(key) is not None for key in DETAIL_KEYS)


def snooze_from_details(details: Mapping[str, Any], *, now: datetime, times_seen: int) -> Snooze:
    """The condition `statusDetails` describes, for an issue seen `times_seen` times;
    InvalidSnooze naming the first value that is not one. `ignoreDuration` wins over
    `ignoreUntil`, as in Sentry."""
    duration = _minutes(details, "ignoreDuration", MAX_DURATION_MINUTES)
    until = now + timedelta(minutes=duration) if duration is not None else _moment(details)
    return Snooze(
        until=until,
        count=_minutes(details, "ignoreCount", MAX_COUNT),
        window=_minutes(details, "ignoreWindow", MAX_WINDOW_MINUTES),
        user_count=_minutes(details, "ignoreUserCount", MAX_COUNT),
        user_window=_minutes(details, "ignoreUserWindow", MAX_WINDOW_MINUTES),
        times_seen=times_seen,
    )


def _minutes(details: Mapping[str, Any], key: str, most: int) -> int | None:
    value = details.get(key)
    if value is None:
        return None
    is_int = isinstance(value, int) and not isinstance(value, bool)
    # A JSON integer past 64 bits arrives as a float: out of range, not "not whole".
    too_big = isinstance(value, float) and value.is_integer() and abs(value) > most
    if not is_int and not too_big:
        raise InvalidSnooze(key, f"{key} must be a whole number, not {value!r}")
    if too_big or not 1 <= value <= most:
        raise InvalidSnooze(key, f"{key} must be between 1 and {most}")
    return int(value)


def _moment(details: Mapping[str, Any]) -> datetime | None:
    value = details.get("ignoreUntil")
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # (in UTC, a moment at the calendar's very edge may fall off it: OverflowError)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidSnooze(
            "ignoreUntil", f"ignoreUntil must be an ISO-8601 date-time, not {value!r}"
        ) from None


def time_is_up(snooze: Snooze, now: datetime) -> bool:
    """Whether the snooze's time (if it has one) has come."""
    return snooze.until is not None and snooze.until <= now


def condition_met(snooze: Snooze, *, now: datetime, times_seen: int, in_window: int) -> bool:
    """Whether an issue seen `times_seen` times in all, and `in_window` times within the
    snooze's window (when it has one), is due to be unignored."""
    if time_is_up(snooze, now):
        return True
    if snooze.count is not None:
        if snooze.window is not None:
            return in_window >= snooze.count
        return times_seen >= snooze.times_seen + snooze.count
    return False
