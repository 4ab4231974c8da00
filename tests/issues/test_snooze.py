"""An ignore until a condition is met (`vigil.issues.snooze`): reading the condition
from the API's statusDetails, when it is met, and how the API shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vigil.api.issues import snooze_status_details as status_details
from vigil.issues.snooze import (
    InvalidSnooze,
    Snooze,
    condition_met,
    has_condition,
    snooze_from_details,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_a_duration_is_minutes_from_now_and_wins_over_a_moment() -> None:
    snooze = snooze_from_details(
        {"ignoreDuration": 30, "ignoreUntil": "2030-01-01T00:00:00Z"}, now=NOW, times_seen=4
    )
    assert snooze == Snooze(until=NOW + timedelta(minutes=30), times_seen=4)


def test_a_moment_is_read_in_utc() -> None:
    snooze = snooze_from_details(
        {"ignoreUntil": "2026-03-01T14:00:00+02:00"}, now=NOW, times_seen=0
    )
    assert snooze.until == NOW
    naive = snooze_from_details({"ignoreUntil": "2026-03-01T12:00:00"}, now=NOW, times_seen=0)
    assert naive.until == NOW


def test_counts_and_windows_are_kept() -> None:
    details = {"ignoreCount": 10, "ignoreWindow": 60, "ignoreUserCount": 3, "ignoreUserWindow": 5}
    snooze = snooze_from_details(details, now=NOW, times_seen=7)
    assert snooze == Snooze(count=10, window=60, user_count=3, user_window=5, times_seen=7)
    assert status_details(snooze) == {
        "ignoreCount": 10,
        "ignoreUntil": None,
        "ignoreUserCount": 3,
        "ignoreUserWindow": 5,
        "ignoreWindow": 60,
        "actor": None,
    }


@pytest.mark.parametrize(
    ("details", "field"),
    [
        ({"ignoreCount": "10"}, "ignoreCount"),
        ({"ignoreCount": 0}, "ignoreCount"),
        ({"ignoreCount": True}, "ignoreCount"),
        ({"ignoreWindow": 10081, "ignoreCount": 1}, "ignoreWindow"),
        ({"ignoreDuration": -5}, "ignoreDuration"),
        ({"ignoreDuration": 10**12}, "ignoreDuration"),
        ({"ignoreUntil": "tomorrow"}, "ignoreUntil"),
        ({"ignoreUntil": 1700000000}, "ignoreUntil"),
        # in UTC these fall off the calendar
        ({"ignoreUntil": "9999-12-31T23:59:59-01:00"}, "ignoreUntil"),
        ({"ignoreUntil": "0001-01-01T00:00:00+01:00"}, "ignoreUntil"),
        ({"ignoreUserWindow": 99999, "ignoreUserCount": 1}, "ignoreUserWindow"),
    ],
)
def test_values_that_are_no_condition_are_refused(details: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSnooze) as raised:
        snooze_from_details(details, now=NOW, times_seen=0)
    assert raised.value.field == field


def test_has_condition() -> None:
    assert has_condition({"ignoreCount": 1})
    assert not has_condition({"ignoreCount": None, "ignoreUntilEscalating": True})
    assert not has_condition({})


def test_time_ends_it_at_the_moment() -> None:
    snooze = Snooze(until=NOW)
    assert not condition_met(snooze, now=NOW - timedelta(seconds=1), times_seen=0, in_window=0)
    assert condition_met(snooze, now=NOW, times_seen=0, in_window=0)


def test_a_count_counts_from_the_times_seen_when_ignored() -> None:
    snooze = Snooze(count=3, times_seen=10)
    assert not condition_met(snooze, now=NOW, times_seen=12, in_window=0)
    assert condition_met(snooze, now=NOW, times_seen=13, in_window=0)


def test_a_count_within_a_window_counts_the_window_only() -> None:
    snooze = Snooze(count=3, window=60, times_seen=0)
    assert not condition_met(snooze, now=NOW, times_seen=100, in_window=2)
    assert condition_met(snooze, now=NOW, times_seen=3, in_window=3)


def test_users_are_never_counted() -> None:
    assert not condition_met(Snooze(user_count=1), now=NOW, times_seen=10**6, in_window=10**6)
