"""Schedules (B3): next and previous runs, DST, intervals with calendar arithmetic,
expected times with margins, timeouts. Tables of cases, and property tests for the
rules that have a shape."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.monitors.enums import IntervalUnit
from vigil.monitors.schedule import (
    Crontab,
    Interval,
    InvalidSchedule,
    heartbeat_timeout_at,
    next_expected,
    next_expected_latest,
    next_schedule,
    prev_schedule,
    schedule_of,
    timeout_at,
    timezone_of,
    truncate_to_minute,
)

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # half-hour DST shifts


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def crontab(expression: str, zone: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"schedule_type": 1, "schedule": expression}
    if zone:
        config["timezone"] = zone
    return config


def interval(count: int, unit: str, zone: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"schedule_type": 2, "schedule": [count, unit]}
    if zone:
        config["timezone"] = zone
    return config


def local(moment: datetime, zone: ZoneInfo) -> tuple[int, int, int, int, int, str | None]:
    """A moment as the wall clock and zone abbreviation of `zone` show it."""
    seen = moment.astimezone(zone)
    return (seen.year, seen.month, seen.day, seen.hour, seen.minute, seen.tzname())


# --- crontab, the spec's examples -------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "expression", "expected"),
    [
        (utc(2024, 1, 1, 5, 30), "0 * * * *", utc(2024, 1, 1, 6, 0)),
        (utc(2024, 1, 1, 5, 29), "30 * * * *", utc(2024, 1, 1, 5, 30)),
        (utc(2024, 1, 1, 5, 30), "30 * * * *", utc(2024, 1, 1, 6, 30)),
        # strictly after the reference's minute, whatever its seconds
        (utc(2024, 1, 1, 5, 29, 59), "30 * * * *", utc(2024, 1, 1, 5, 30)),
        (utc(2024, 1, 1, 5, 30, 1), "30 * * * *", utc(2024, 1, 1, 6, 30)),
        (utc(2024, 1, 1, 5, 30, 0), "* * * * *", utc(2024, 1, 1, 5, 31)),
        (utc(2024, 1, 1, 5, 30, 59, 999999), "* * * * *", utc(2024, 1, 1, 5, 31)),
        (utc(2024, 1, 1, 0, 0), "0 0 * * *", utc(2024, 1, 2, 0, 0)),
        (utc(2024, 12, 31, 23, 59), "0 0 1 1 *", utc(2025, 1, 1, 0, 0)),
        (utc(2024, 1, 1), "0 0 29 2 *", utc(2024, 2, 29)),
        (utc(2024, 3, 1), "0 0 29 2 *", utc(2028, 2, 29)),
        (utc(2024, 1, 1), "0 0 L * *", utc(2024, 1, 31)),
        (utc(2024, 1, 1), "*/15 * * * *", utc(2024, 1, 1, 0, 15)),
        (utc(2024, 1, 5, 12), "0 9 * * 1-5", utc(2024, 1, 8, 9)),  # Friday noon ⇒ Monday
    ],
)
def test_crontab_next(reference: datetime, expression: str, expected: datetime) -> None:
    assert next_schedule(reference, crontab(expression)) == expected


@pytest.mark.parametrize(
    ("reference", "expression", "expected"),
    [
        (utc(2024, 1, 1, 5, 35), "0 * * * *", utc(2024, 1, 1, 5, 0)),
        (utc(2024, 1, 1, 5, 30), "30 * * * *", utc(2024, 1, 1, 4, 30)),
        (utc(2024, 1, 1, 5, 31), "30 * * * *", utc(2024, 1, 1, 5, 30)),
        # strictly before the reference instant: 05:30:00 is before 05:30:30
        (utc(2024, 1, 1, 5, 30, 30), "30 * * * *", utc(2024, 1, 1, 5, 30)),
        (utc(2024, 1, 1, 5, 30), "* * * * *", utc(2024, 1, 1, 5, 29)),
        (utc(2024, 1, 1, 0, 0), "0 0 * * *", utc(2023, 12, 31, 0, 0)),
        (utc(2024, 3, 1), "0 0 29 2 *", utc(2024, 2, 29)),
        (utc(2024, 2, 29), "0 0 29 2 *", utc(2020, 2, 29)),
    ],
)
def test_crontab_prev(reference: datetime, expression: str, expected: datetime) -> None:
    assert prev_schedule(reference, crontab(expression)) == expected


def test_crontab_prev_ignores_start() -> None:
    reference = utc(2024, 1, 1, 5, 35)
    assert prev_schedule(reference, crontab("0 * * * *"), utc(2020, 1, 1)) == utc(2024, 1, 1, 5)


def test_results_are_utc_whatever_the_reference_zone() -> None:
    reference = datetime(2024, 1, 1, 6, 30, tzinfo=BERLIN)  # 05:30 UTC
    result = next_schedule(reference, crontab("0 * * * *"))
    assert result == utc(2024, 1, 1, 6, 0)
    assert result.tzinfo is UTC


# --- crontab in a time zone, and DST ------------------------------------------------


def test_a_zone_moves_the_runs() -> None:
    config = crontab("0 3 * * *", "Europe/Berlin")
    assert next_schedule(utc(2024, 1, 1), config) == utc(2024, 1, 1, 2)  # CET
    assert next_schedule(utc(2024, 7, 1), config) == utc(2024, 7, 1, 1)  # CEST
    assert prev_schedule(utc(2024, 7, 1, 12), config) == utc(2024, 7, 1, 1)


@pytest.mark.parametrize(
    ("reference", "expression", "expected"),
    [
        # the spec's examples (America/New_York)
        (datetime(2024, 11, 3, 1, 59, tzinfo=NY), "* * * * *", (2024, 11, 3, 1, 0, "EST")),
        (datetime(2024, 3, 10, 1, 59, tzinfo=NY), "* * * * *", (2024, 3, 10, 3, 0, "EDT")),
        (datetime(2024, 11, 2, 12, 0, tzinfo=NY), "0 12 * * *", (2024, 11, 3, 12, 0, "EST")),
        (datetime(2024, 3, 9, 12, 0, tzinfo=NY), "0 12 * * *", (2024, 3, 10, 12, 0, "EDT")),
        # a fixed time inside the spring gap runs when the gap ends
        (datetime(2024, 3, 9, 12, 0, tzinfo=NY), "30 2 * * *", (2024, 3, 10, 3, 0, "EDT")),
        (datetime(2024, 3, 10, 3, 0, tzinfo=NY), "30 2 * * *", (2024, 3, 11, 2, 30, "EDT")),
        # a fixed time inside the repeated hour runs at its first occurrence
        (datetime(2024, 11, 2, 12, 0, tzinfo=NY), "30 1 * * *", (2024, 11, 3, 1, 30, "EDT")),
        # ...and not again in the second one
        (datetime(2024, 11, 3, 1, 30, tzinfo=NY), "30 1 * * *", (2024, 11, 4, 1, 30, "EST")),
        (
            datetime(2024, 11, 3, 1, 10, fold=1, tzinfo=NY),
            "30 1 * * *",
            (2024, 11, 4, 1, 30, "EST"),
        ),
        # an hourly job (hour "*") runs on elapsed time: both 01:00s
        (datetime(2024, 11, 3, 0, 30, tzinfo=NY), "0 * * * *", (2024, 11, 3, 1, 0, "EDT")),
        (datetime(2024, 11, 3, 1, 30, tzinfo=NY), "0 * * * *", (2024, 11, 3, 1, 0, "EST")),
        (datetime(2024, 3, 10, 1, 30, tzinfo=NY), "0 * * * *", (2024, 3, 10, 3, 0, "EDT")),
    ],
)
def test_crontab_next_over_dst_in_new_york(
    reference: datetime, expression: str, expected: tuple[int, int, int, int, int, str]
) -> None:
    assert local(next_schedule(reference, crontab(expression, "America/New_York")), NY) == expected


@pytest.mark.parametrize(
    ("reference", "expression", "expected"),
    [
        (datetime(2024, 11, 3, 1, 0, fold=1, tzinfo=NY), "* * * * *", (2024, 11, 3, 1, 59, "EDT")),
        (datetime(2024, 3, 10, 3, 0, tzinfo=NY), "* * * * *", (2024, 3, 10, 1, 59, "EST")),
        (datetime(2024, 11, 3, 13, 0, tzinfo=NY), "0 12 * * *", (2024, 11, 3, 12, 0, "EST")),
        (datetime(2024, 3, 10, 13, 0, tzinfo=NY), "0 12 * * *", (2024, 3, 10, 12, 0, "EDT")),
        # the run that happened in the first 01:xx is still the previous one in the second
        (
            datetime(2024, 11, 3, 1, 10, fold=1, tzinfo=NY),
            "30 1 * * *",
            (2024, 11, 3, 1, 30, "EDT"),
        ),
        (
            datetime(2024, 11, 3, 1, 45, fold=0, tzinfo=NY),
            "30 1 * * *",
            (2024, 11, 3, 1, 30, "EDT"),
        ),
        # the gap's run happened at 03:00, which is not before 03:00
        (datetime(2024, 3, 10, 3, 0, tzinfo=NY), "30 2 * * *", (2024, 3, 9, 2, 30, "EST")),
        (datetime(2024, 3, 10, 3, 1, tzinfo=NY), "30 2 * * *", (2024, 3, 10, 3, 0, "EDT")),
    ],
)
def test_crontab_prev_over_dst_in_new_york(
    reference: datetime, expression: str, expected: tuple[int, int, int, int, int, str]
) -> None:
    assert local(prev_schedule(reference, crontab(expression, "America/New_York")), NY) == expected


def runs_between(config: dict[str, Any], start: datetime, end: datetime) -> list[datetime]:
    runs, moment = [], start
    while (moment := next_schedule(moment, config)) < end:
        runs.append(moment)
    return runs


@pytest.mark.parametrize(
    ("zone", "expression", "day"),
    [
        ("America/New_York", "30 1 * * *", (2024, 11, 3)),  # 01:xx twice
        ("Europe/Berlin", "30 2 * * *", (2024, 10, 27)),  # 02:xx twice
        ("Australia/Sydney", "30 2 * * *", (2024, 4, 7)),  # 02:xx twice, southern autumn
        ("Australia/Lord_Howe", "45 1 * * *", (2024, 4, 7)),  # 01:30-02:00 twice
        ("America/New_York", "30 2 * * *", (2024, 3, 10)),  # 02:xx missing
        ("Europe/Berlin", "30 2 * * *", (2024, 3, 31)),  # 02:xx missing
        ("Australia/Sydney", "30 2 * * *", (2024, 10, 6)),  # 02:xx missing, southern spring
        ("Australia/Lord_Howe", "45 2 * * *", (2024, 10, 6)),  # 02:00-02:30 missing
    ],
)
def test_a_daily_job_runs_exactly_once_on_dst_days(
    zone: str, expression: str, day: tuple[int, int, int]
) -> None:
    tz = ZoneInfo(zone)
    start = datetime(day[0], day[1], day[2], tzinfo=tz) - timedelta(days=1)
    runs = runs_between(crontab(expression, zone), start, start + timedelta(days=3))
    assert [run.astimezone(tz).date() for run in runs] == [
        (start + timedelta(days=n)).date() for n in range(3)
    ]


def test_an_every_minute_job_runs_through_both_repeated_hours() -> None:
    config = crontab("* * * * *", "America/New_York")
    runs = runs_between(config, utc(2024, 11, 3, 4, 59), utc(2024, 11, 3, 7, 0))
    assert len(runs) == 120  # 01:00-01:59 EDT and again EST
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(runs))


def test_an_every_minute_job_skips_the_missing_hour() -> None:
    config = crontab("* * * * *", "America/New_York")
    before = datetime(2024, 3, 10, 1, 59, tzinfo=NY)
    assert next_schedule(before, config) - before == timedelta(minutes=1)


# --- intervals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "config", "expected"),
    [
        (utc(2024, 1, 1, 5, 30), interval(2, "hour"), utc(2024, 1, 1, 7, 30)),
        (utc(2024, 1, 1, 5, 42), interval(2, "hour"), utc(2024, 1, 1, 7, 42)),
        # seconds take part in the arithmetic, then the result is truncated
        (utc(2024, 1, 1, 5, 30, 59, 999), interval(1, "minute"), utc(2024, 1, 1, 5, 31)),
        (utc(2024, 1, 1, 23, 55), interval(10, "minute"), utc(2024, 1, 2, 0, 5)),
        (utc(2024, 1, 1, 5, 30), interval(1, "day"), utc(2024, 1, 2, 5, 30)),
        (utc(2024, 2, 28, 5, 30), interval(1, "day"), utc(2024, 2, 29, 5, 30)),
        (utc(2024, 1, 1, 5, 30), interval(2, "week"), utc(2024, 1, 15, 5, 30)),
        (utc(2024, 1, 15), interval(1, "month"), utc(2024, 2, 15)),
        (utc(2024, 1, 31), interval(1, "month"), utc(2024, 3, 31)),  # no Feb 31
        (utc(2024, 3, 31), interval(1, "month"), utc(2024, 5, 31)),  # no Apr 31
        (utc(2023, 12, 31), interval(2, "month"), utc(2024, 8, 31)),  # Feb, Apr, Jun skipped
        (utc(2024, 1, 30), interval(1, "month"), utc(2024, 3, 30)),
        (utc(2023, 1, 29), interval(1, "month"), utc(2023, 3, 29)),  # 2023 has no Feb 29
        (utc(2024, 1, 29), interval(1, "month"), utc(2024, 2, 29)),
        (utc(2024, 11, 30), interval(3, "month"), utc(2025, 5, 30)),  # Feb 30 skipped
        (utc(2024, 12, 15), interval(1, "month"), utc(2025, 1, 15)),
        (utc(2024, 5, 1), interval(1, "year"), utc(2025, 5, 1)),
        (utc(2024, 2, 29), interval(1, "year"), utc(2028, 2, 29)),
        (utc(2096, 2, 29), interval(1, "year"), utc(2104, 2, 29)),  # 2100 is no leap year
        (utc(2024, 1, 1), interval(1000, "year"), utc(3024, 1, 1)),
    ],
)
def test_interval_next(reference: datetime, config: dict[str, Any], expected: datetime) -> None:
    assert next_schedule(reference, config) == expected


@pytest.mark.parametrize(
    ("reference", "config", "expected"),
    [
        # days and longer keep the wall-clock time across DST
        (datetime(2024, 11, 2, 12, tzinfo=NY), interval(1, "day"), (2024, 11, 3, 12, 0, "EST")),
        (datetime(2024, 3, 9, 12, tzinfo=NY), interval(1, "day"), (2024, 3, 10, 12, 0, "EDT")),
        (datetime(2024, 3, 3, 12, tzinfo=NY), interval(1, "week"), (2024, 3, 10, 12, 0, "EDT")),
        (datetime(2024, 10, 15, 12, tzinfo=NY), interval(1, "month"), (2024, 11, 15, 12, 0, "EST")),
        # a wall-clock time in the spring gap moves forward by the gap
        (datetime(2024, 3, 9, 2, 30, tzinfo=NY), interval(1, "day"), (2024, 3, 10, 3, 30, "EDT")),
        # a repeated wall-clock time means its first occurrence
        (datetime(2024, 11, 2, 1, 30, tzinfo=NY), interval(1, "day"), (2024, 11, 3, 1, 30, "EDT")),
        # minutes and hours are elapsed time
        (datetime(2024, 11, 3, 1, 30, tzinfo=NY), interval(1, "hour"), (2024, 11, 3, 1, 30, "EST")),
        (datetime(2024, 3, 10, 1, 30, tzinfo=NY), interval(1, "hour"), (2024, 3, 10, 3, 30, "EDT")),
        (
            datetime(2024, 11, 3, 1, 55, tzinfo=NY),
            interval(10, "minute"),
            (2024, 11, 3, 1, 5, "EST"),
        ),
    ],
)
def test_interval_next_over_dst(
    reference: datetime, config: dict[str, Any], expected: tuple[int, int, int, int, int, str]
) -> None:
    config["timezone"] = "America/New_York"
    assert local(next_schedule(reference, config), NY) == expected


@pytest.mark.parametrize(
    ("start", "reference", "config", "expected"),
    [
        # the spec's examples
        (
            utc(2024, 1, 1, 1, 30),
            utc(2024, 1, 1, 5, 30),
            interval(2, "hour"),
            utc(2024, 1, 1, 3, 30),
        ),
        (
            utc(2024, 1, 1, 1, 30),
            utc(2024, 1, 1, 5, 35),
            interval(2, "hour"),
            utc(2024, 1, 1, 5, 30),
        ),
        (
            utc(2024, 1, 1, 1, 30),
            utc(2024, 1, 1, 1, 31),
            interval(2, "hour"),
            utc(2024, 1, 1, 1, 30),
        ),
        # before the start: the lattice extends backwards
        (
            utc(2024, 1, 1, 1, 30),
            utc(2024, 1, 1, 1, 30),
            interval(2, "hour"),
            utc(2023, 12, 31, 23, 30),
        ),
        (
            utc(2024, 1, 1, 1, 30),
            utc(2023, 12, 31, 20, 0),
            interval(2, "hour"),
            utc(2023, 12, 31, 19, 30),
        ),
        # seconds of the start count, then the result is truncated
        (
            utc(2024, 1, 1, 0, 0, 42),
            utc(2024, 1, 1, 0, 10, 30),
            interval(5, "minute"),
            utc(2024, 1, 1, 0, 5),
        ),
        (
            utc(2024, 1, 1, 0, 0, 42),
            utc(2024, 1, 1, 0, 10, 50),
            interval(5, "minute"),
            utc(2024, 1, 1, 0, 10),
        ),
        (utc(2024, 1, 1, 12), utc(2024, 1, 10, 13), interval(1, "day"), utc(2024, 1, 10, 12)),
        (utc(2024, 1, 1, 12), utc(2024, 1, 10, 12), interval(1, "day"), utc(2024, 1, 9, 12)),
        (utc(2024, 1, 1), utc(2024, 2, 1), interval(1, "week"), utc(2024, 1, 29)),
        (utc(2024, 1, 31), utc(2024, 5, 1), interval(1, "month"), utc(2024, 3, 31)),  # no Apr 31
        (utc(2024, 1, 31), utc(2024, 3, 31), interval(1, "month"), utc(2024, 1, 31)),
        (utc(2024, 1, 31), utc(2024, 3, 31, 0, 1), interval(1, "month"), utc(2024, 3, 31)),
        (utc(2024, 1, 31), utc(2023, 12, 1), interval(1, "month"), utc(2023, 10, 31)),  # no Nov 31
        (utc(2024, 2, 29), utc(2031, 1, 1), interval(1, "year"), utc(2028, 2, 29)),
        (utc(2020, 6, 1), utc(2024, 6, 1), interval(2, "year"), utc(2022, 6, 1)),
    ],
)
def test_interval_prev(
    start: datetime, reference: datetime, config: dict[str, Any], expected: datetime
) -> None:
    assert prev_schedule(reference, config, start) == expected


def test_interval_prev_over_dst_keeps_the_wall_clock() -> None:
    config = interval(1, "day", "America/New_York")
    start = datetime(2024, 11, 1, 12, tzinfo=NY)
    reference = datetime(2024, 11, 4, 11, tzinfo=NY)
    assert local(prev_schedule(reference, config, start), NY) == (2024, 11, 3, 12, 0, "EST")


def test_an_interval_has_no_previous_run_without_a_start() -> None:
    with pytest.raises(ValueError, match="start"):
        prev_schedule(utc(2024, 1, 1), interval(1, "hour"))


# --- what the schedule functions refuse -----------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"schedule_type": 1},
        {"schedule_type": 3, "schedule": "* * * * *"},
        {"schedule_type": 1, "schedule": [1, "minute"]},
        {"schedule_type": 2, "schedule": "* * * * *"},
        {"schedule_type": 2, "schedule": [-2, "minute"]},  # the spec's example
        {"schedule_type": 2, "schedule": [0, "minute"]},
        {"schedule_type": 2, "schedule": ["1", "minute"]},
        {"schedule_type": 2, "schedule": [True, "minute"]},
        {"schedule_type": 2, "schedule": [1, "second"]},
        {"schedule_type": 2, "schedule": [1]},
        {"schedule_type": 1, "schedule": "0 0 31 2 *"},
        {"schedule_type": 1, "schedule": "not a crontab"},
        {"schedule_type": 1, "schedule": "* * * * *", "timezone": "Mars/Base"},
        {"schedule_type": 1, "schedule": "* * * * *", "timezone": 5},
    ],
)
def test_an_unusable_stored_config_raises_invalid_schedule(config: dict[str, Any]) -> None:
    with pytest.raises(InvalidSchedule):
        next_schedule(utc(2024, 1, 1), config)
    with pytest.raises(InvalidSchedule):
        prev_schedule(utc(2024, 1, 1), config, utc(2023, 1, 1))


def test_an_interval_that_runs_off_the_calendar_raises_invalid_schedule() -> None:
    with pytest.raises(InvalidSchedule):
        next_schedule(utc(9999, 6, 1), interval(1, "year"))
    with pytest.raises(InvalidSchedule):
        next_schedule(utc(9999, 12, 31, 23, 0), interval(2, "hour"))
    with pytest.raises(InvalidSchedule):
        prev_schedule(utc(1, 1, 1), interval(1, "year"), utc(1, 1, 1))


@pytest.mark.parametrize(
    "function",
    [
        lambda moment: next_schedule(moment, crontab("* * * * *")),
        lambda moment: prev_schedule(moment, crontab("* * * * *")),
        lambda moment: prev_schedule(utc(2024, 1, 1), interval(1, "hour"), moment),
        lambda moment: timeout_at(moment, {}),
        lambda moment: heartbeat_timeout_at(moment, utc(2024, 1, 1), {}),
    ],
)
def test_naive_datetimes_are_refused(function: Any) -> None:
    with pytest.raises(ValueError, match="not timezone-aware"):
        function(datetime(2024, 1, 1, 12))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"schedule_type": 1, "schedule": "0 * * * *"}, Crontab("0 * * * *")),
        ({"schedule_type": "crontab", "schedule": "0 * * * *"}, Crontab("0 * * * *")),
        ({"schedule_type": 2, "schedule": [5, "minute"]}, Interval(5, IntervalUnit.MINUTE)),
        ({"schedule_type": "interval", "schedule": (1, "month")}, Interval(1, IntervalUnit.MONTH)),
    ],
)
def test_schedule_of(config: dict[str, Any], expected: object) -> None:
    assert schedule_of(config) == expected


@pytest.mark.parametrize(("name", "expected"), [(None, UTC), ("", UTC), ("Europe/Berlin", BERLIN)])
def test_timezone_of(name: str | None, expected: object) -> None:
    assert timezone_of({"timezone": name}) == expected


# --- expected times and timeouts -------------------------------------------------


def test_next_expected_and_latest_add_the_margin() -> None:
    config = crontab("0 * * * *")
    last = utc(2024, 1, 1, 5, 30, 12)
    assert next_expected(last, config) == utc(2024, 1, 1, 6)
    assert next_expected_latest(last, config) == utc(2024, 1, 1, 6, 1)  # default 1 minute
    assert next_expected_latest(last, {**config, "checkin_margin": 5}) == utc(2024, 1, 1, 6, 5)
    assert next_expected_latest(last, {**config, "checkin_margin": 0}) == utc(2024, 1, 1, 6, 1)


def test_next_expected_of_an_interval_counts_from_the_last_check_in() -> None:
    config = interval(10, "minute")
    assert next_expected(utc(2024, 1, 1, 5, 31, 40), config) == utc(2024, 1, 1, 5, 41)
    assert next_expected_latest(utc(2024, 1, 1, 5, 31, 40), config) == utc(2024, 1, 1, 5, 42)


@pytest.mark.parametrize(
    ("date_added", "config", "expected"),
    [
        (utc(2024, 1, 1, 5, 30, 45), {}, utc(2024, 1, 1, 6, 0)),  # default 30 minutes
        (utc(2024, 1, 1, 5, 30), {"max_runtime": None}, utc(2024, 1, 1, 6, 0)),
        (utc(2024, 1, 1, 5, 30), {"max_runtime": 1}, utc(2024, 1, 1, 5, 31)),
        (utc(2024, 1, 1, 5, 30), {"max_runtime": 120}, utc(2024, 1, 1, 7, 30)),
        (utc(2024, 1, 1), {"max_runtime": 40_320}, utc(2024, 1, 29)),
        (utc(2024, 1, 1), {"max_runtime": 10**9}, utc(2024, 1, 29)),  # capped at 28 days
        (datetime(2024, 1, 1, 6, 30, 45, tzinfo=BERLIN), {}, utc(2024, 1, 1, 6, 0)),
    ],
)
def test_timeout_at(date_added: datetime, config: dict[str, Any], expected: datetime) -> None:
    assert timeout_at(date_added, config) == expected


def test_a_heartbeat_moves_the_timeout_but_not_past_28_days() -> None:
    began = utc(2024, 1, 1, 5, 30, 20)
    config = {"max_runtime": 60}
    assert heartbeat_timeout_at(utc(2024, 1, 1, 6, 10, 50), began, config) == utc(2024, 1, 1, 7, 10)
    assert heartbeat_timeout_at(utc(2024, 1, 28, 23, 0), began, config) == utc(2024, 1, 29, 0, 0)
    assert heartbeat_timeout_at(utc(2024, 3, 1), began, config) == utc(2024, 1, 29, 5, 30)


def test_truncate_to_minute() -> None:
    assert truncate_to_minute(datetime(2024, 1, 1, 6, 30, 59, 999999, tzinfo=BERLIN)) == utc(
        2024, 1, 1, 5, 30
    )


# --- properties ---------------------------------------------------------------------

ZONES = [
    None,
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/Santiago",
]
CRONTABS = [
    "* * * * *",
    "*/7 * * * *",
    "0 * * * *",
    "30 1 * * *",
    "30 2 * * *",
    "45 1,2,3 * * *",
    "0 0 * * *",
    "0 12 * * 1-5",
    "0 0 1 * *",
    "0 0 31 * *",
    "0 0 29 2 *",
    "15 2 * * 0",
    "0 0 L * *",
    "*/20 1-3 * * *",
]
moments = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
# Around DST changes, where the rules are hardest.
dst_moments = st.sampled_from(
    [
        utc(2024, 11, 3, 6),  # New York autumn
        utc(2024, 3, 10, 7),  # New York spring
        utc(2024, 10, 27, 1),  # Berlin autumn
        utc(2024, 3, 31, 1),  # Berlin spring
        utc(2024, 4, 6, 16),  # Sydney autumn
        utc(2024, 10, 5, 16),  # Sydney spring
        utc(2024, 4, 6, 15),  # Lord Howe autumn
        utc(2024, 10, 5, 15, 30),  # Lord Howe spring
    ]
).flatmap(
    lambda centre: st.integers(-180, 180).map(lambda m: centre + timedelta(minutes=m, seconds=7))
)
crontab_configs = st.builds(crontab, st.sampled_from(CRONTABS), st.sampled_from(ZONES))
interval_configs = st.builds(
    interval, st.integers(1, 30), st.sampled_from(list(IntervalUnit)), st.sampled_from(ZONES)
)


def on_a_minute(moment: datetime) -> bool:
    return moment.tzinfo is UTC and moment.second == 0 and moment.microsecond == 0


@settings(max_examples=300)
@given(moments | dst_moments, crontab_configs)
def test_crontab_runs_bracket_the_reference(reference: datetime, config: dict[str, Any]) -> None:
    after = next_schedule(reference, config)
    before = prev_schedule(reference, config)
    assert on_a_minute(after) and on_a_minute(before)
    assert before < reference < after
    assert next_schedule(before, config) >= reference
    assert prev_schedule(after, config) <= reference
    # nothing runs between the previous run and the reference
    assert next_schedule(before, config) == after or next_schedule(before, config) == (
        truncate_to_minute(reference)
    )


@settings(max_examples=300)
@given(moments | dst_moments, interval_configs)
def test_interval_next_is_one_step_ahead(reference: datetime, config: dict[str, Any]) -> None:
    after = next_schedule(reference, config)
    assert on_a_minute(after)
    assert after > reference
    count, unit = config["schedule"]
    # a step, at most a DST hour shorter; month steps may skip a few missing days
    longest = {"minute": 1, "hour": 60, "day": 1440, "week": 10080, "month": 44640 * 4}
    shortest = {"minute": 1, "hour": 60, "day": 1380, "week": 10020, "month": 40260, "year": 525540}
    gap = after - truncate_to_minute(reference)
    assert gap >= timedelta(minutes=count * shortest[unit])
    if unit in longest:
        assert gap <= timedelta(minutes=count * longest[unit] + 60)


@settings(max_examples=300)
@given(moments | dst_moments, moments | dst_moments, interval_configs)
def test_interval_prev_is_the_last_step_before(
    start: datetime, reference: datetime, config: dict[str, Any]
) -> None:
    before = prev_schedule(reference, config, start)
    assert on_a_minute(before)
    assert before < reference
    assert next_schedule(before, config) >= truncate_to_minute(reference)
