"""When a monitor is expected to check in: the next and previous runs of its schedule,
the latest moment a run may start (margin), and when an in-progress run times out.
No I/O (time zones come from the system's tz database).

Every function takes and returns timezone-aware datetimes and returns UTC ones truncated
to the minute, the resolution of the crons clock. The arithmetic is done in the monitor's
time zone (`timezone` in its config, UTC when absent):

* crontab schedules follow cronsim, which behaves like Debian cron across DST: a job at
  a fixed local time runs once on both change days (at 03:00 when 02:30 does not exist,
  at the first 01:30 when it happens twice); a job with a "*" minute or hour runs on
  real elapsed time (the repeated hour is run twice, the skipped one not at all);
* interval schedules count calendar steps (RFC 5545 style) from the reference:
  days, weeks, months and years keep the local wall-clock time (a daily job at noon
  stays at noon across DST; a local time that does not exist moves forward by the gap;
  a repeated one means its first occurrence); a monthly or yearly step whose day does
  not exist in the target month is skipped (Jan 31 + 1 month ⇒ Mar 31). Minutes and
  hours are elapsed time, so "every 10 minutes" stays 10 minutes apart over DST.
"""

from __future__ import annotations

import calendar
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from cronsim import CronSim, CronSimError

from vigil.monitors.enums import IntervalUnit, ScheduleType
from vigil.monitors.monitor_config import (
    MAX_TIMEOUT,
    available_timezones,
    margin,
    max_runtime,
    read_interval_unit,
)


class InvalidSchedule(ValueError):
    """A stored config whose schedule or time zone cannot be computed with (e.g. an
    interval of [-2, "minute"], an unknown zone, a crontab that never matches)."""


@dataclass(frozen=True)
class Crontab:
    """A 5-field crontab expression, as normalised by config validation."""

    expression: str


@dataclass(frozen=True)
class Interval:
    """Every `count` `unit`s, counted from a reference or a start."""

    count: int
    unit: IntervalUnit


Schedule = Crontab | Interval

_ELAPSED_UNITS = {IntervalUnit.MINUTE: timedelta(minutes=1), IntervalUnit.HOUR: timedelta(hours=1)}
_DAYS_PER_UNIT = {IntervalUnit.DAY: 1, IntervalUnit.WEEK: 7}
_MONTHS_PER_UNIT = {IntervalUnit.MONTH: 1, IntervalUnit.YEAR: 12}
# A month step can land on a missing day (the 31st, Feb 29) a few times in a row; more
# than this many misses in a row means the schedule has run off the calendar.
_MAX_SKIPPED_STEPS = 64


def schedule_of(config: Mapping[str, Any]) -> Schedule:
    """The schedule a stored config describes; InvalidSchedule if it describes none.
    `schedule_type` may be the stored int or its name."""
    schedule_type = config.get("schedule_type")
    schedule = config.get("schedule")
    if schedule_type in (ScheduleType.CRONTAB, "crontab") and isinstance(schedule, str):
        return Crontab(schedule)
    is_interval = schedule_type in (ScheduleType.INTERVAL, "interval")
    if is_interval and isinstance(schedule, list | tuple) and len(schedule) == 2:
        count, unit_name = schedule
        unit = read_interval_unit(unit_name)
        if isinstance(count, int) and not isinstance(count, bool) and count > 0 and unit:
            return Interval(count, unit)
    raise InvalidSchedule(f"no schedule in config: {schedule_type!r} {schedule!r}")


def timezone_of(config: Mapping[str, Any]) -> tzinfo:
    """The monitor's time zone: its config's `timezone`, UTC when absent or empty;
    InvalidSchedule for a name that is not a known zone."""
    name = config.get("timezone")
    if not name:
        return UTC
    if not isinstance(name, str) or name not in available_timezones():
        raise InvalidSchedule(f"unknown time zone {name!r}")
    return zoneinfo.ZoneInfo(name)


def truncate_to_minute(moment: datetime) -> datetime:
    """`moment` in UTC with its seconds and microseconds dropped."""
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def next_schedule(reference: datetime, config: Mapping[str, Any]) -> datetime:
    """The first run of the config's schedule strictly after `reference` (aware),
    in UTC, truncated to the minute.

    Crontab: the first matching minute after the reference's minute. Interval: the
    reference plus one step (seconds kept for the arithmetic, then truncated), skipping
    steps that land on a day the month does not have.
    """
    reference = _as_utc(reference)
    schedule, zone = schedule_of(config), timezone_of(config)
    if isinstance(schedule, Crontab):
        return _crontab_next(schedule.expression, reference, zone)
    at = _interval_points(schedule, reference, zone)
    for step in range(1, _MAX_SKIPPED_STEPS):
        point = at(step)
        if point is not None:
            return truncate_to_minute(point)
    raise InvalidSchedule(f"{schedule} has no run after {reference}")


def prev_schedule(
    reference: datetime, config: Mapping[str, Any], start: datetime | None = None
) -> datetime:
    """The last run of the config's schedule strictly before `reference` (aware),
    in UTC, truncated to the minute.

    Crontab: the last matching minute before the reference (`start` is ignored); it is
    the run whose `next_schedule` is at or after the reference, also across DST.
    Interval: the last point `start` + k steps (k may be negative) strictly before the
    reference; an interval has no previous run without a `start` (ValueError).
    """
    reference = _as_utc(reference)
    schedule, zone = schedule_of(config), timezone_of(config)
    if isinstance(schedule, Crontab):
        return _crontab_prev(schedule.expression, reference, zone)
    if start is None:
        raise ValueError("the previous run of an interval schedule needs its start")
    start = _as_utc(start)
    at = _interval_points(schedule, start, zone)
    step = _steps_past(schedule, start, reference, zone)
    for _ in range(_MAX_SKIPPED_STEPS):
        point = at(step)
        if point is not None and point < reference:
            return truncate_to_minute(point)
        step -= 1
    raise InvalidSchedule(f"{schedule} has no run before {reference}")


def next_expected(last: datetime, config: Mapping[str, Any]) -> datetime:
    """When the monitor expects its next check-in after one at `last`."""
    return next_schedule(last, config)


def next_expected_latest(last: datetime, config: Mapping[str, Any]) -> datetime:
    """The latest moment that next check-in may arrive before it is missed: the next
    expected time plus the config's margin."""
    return next_expected(last, config) + margin(config)


def timeout_at(date_added: datetime, config: Mapping[str, Any]) -> datetime:
    """When a check-in created in progress at `date_added` times out: its minute plus
    the config's max runtime."""
    _require_aware(date_added)
    return truncate_to_minute(date_added) + max_runtime(config)


def heartbeat_timeout_at(
    heartbeat: datetime, date_added: datetime, config: Mapping[str, Any]
) -> datetime:
    """When an in-progress check-in times out after an in-progress heartbeat at
    `heartbeat`: the heartbeat's minute plus the max runtime, but never later than
    MAX_TIMEOUT (28 days) after the check-in began, however often it beats."""
    _require_aware(heartbeat)
    latest = truncate_to_minute(date_added) + timedelta(minutes=MAX_TIMEOUT)
    return min(timeout_at(heartbeat, config), latest)


# --- crontab ----------------------------------------------------------------------


def _crontab_next(expression: str, reference: datetime, zone: tzinfo) -> datetime:
    # cronsim works on local wall-clock time for fixed-time jobs, so inside a repeated
    # hour it can answer a moment before the reference; such answers are skipped.
    # (Compared in UTC: two datetimes of one zone compare by wall clock, ignoring fold.)
    try:
        for candidate in CronSim(expression, reference.astimezone(zone)):
            if candidate.astimezone(UTC) > reference:
                return truncate_to_minute(candidate)
    except (CronSimError, ValueError) as exc:
        raise InvalidSchedule(f"crontab {expression!r}: {exc}") from None
    raise InvalidSchedule(f"crontab {expression!r} has no run after {reference}")


def _crontab_prev(expression: str, reference: datetime, zone: tzinfo) -> datetime:
    try:
        backwards = CronSim(expression, reference.astimezone(zone), reverse=True)
        found = next(c for c in backwards if c.astimezone(UTC) < reference)
    except (CronSimError, ValueError, StopIteration) as exc:
        raise InvalidSchedule(f"crontab {expression!r} has no run before {reference}") from exc
    # Walking backwards in wall-clock time can step over runs that happened earlier in
    # a repeated hour; walk forwards to the last run before the reference, so the
    # previous run is always the one whose next run is at or after the reference.
    previous = truncate_to_minute(found)
    while (following := _crontab_next(expression, previous, zone)) < reference:
        previous = following
    return previous


# --- intervals --------------------------------------------------------------------


def _interval_points(
    interval: Interval, origin: datetime, zone: tzinfo
) -> Callable[[int], datetime | None]:
    """k ↦ the moment `origin` + k steps (aware UTC), or None when that step lands on a
    day its month does not have."""
    if interval.unit in _ELAPSED_UNITS:
        length = interval.count * _ELAPSED_UNITS[interval.unit]
        origin_utc = origin.astimezone(UTC)
        return lambda k: _checked(lambda: origin_utc + k * length)

    wall = origin.astimezone(zone).replace(tzinfo=None, fold=0)
    if interval.unit in _DAYS_PER_UNIT:
        days = interval.count * _DAYS_PER_UNIT[interval.unit]
        return lambda k: _checked(lambda: _from_wall(wall + timedelta(days=k * days), zone))

    months = interval.count * _MONTHS_PER_UNIT[interval.unit]

    def month_point(k: int) -> datetime | None:
        year, month0 = divmod(wall.year * 12 + wall.month - 1 + k * months, 12)
        if not 1 <= year <= 9999:
            raise InvalidSchedule(f"{interval} runs off the calendar")
        if wall.day > calendar.monthrange(year, month0 + 1)[1]:
            return None
        return _from_wall(wall.replace(year=year, month=month0 + 1), zone)

    return month_point


def _steps_past(interval: Interval, start: datetime, reference: datetime, zone: tzinfo) -> int:
    """A number of steps from `start` that lands at or after `reference` (and not far
    after it), where the backwards search for the previous run begins."""
    if interval.unit in _ELAPSED_UNITS:
        length = interval.count * _ELAPSED_UNITS[interval.unit]
        return (reference - start) // length + 1
    start_wall = start.astimezone(zone).replace(tzinfo=None)
    ref_wall = reference.astimezone(zone).replace(tzinfo=None)
    if interval.unit in _DAYS_PER_UNIT:
        length = timedelta(days=interval.count * _DAYS_PER_UNIT[interval.unit])
        # +2: wall-clock and real time differ by at most a DST shift.
        return (ref_wall - start_wall) // length + 2
    months = interval.count * _MONTHS_PER_UNIT[interval.unit]
    month_diff = (ref_wall.year - start_wall.year) * 12 + ref_wall.month - start_wall.month
    return month_diff // months + 2


def _from_wall(wall: datetime, zone: tzinfo) -> datetime:
    # fold=0: a repeated local time means its first occurrence; a missing one (inside a
    # spring-forward gap) is read with the offset before the gap, i.e. moved forward.
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _checked(compute: Callable[[], datetime]) -> datetime:
    try:
        return compute()
    except OverflowError:
        raise InvalidSchedule("interval runs off the calendar") from None


def _as_utc(moment: datetime) -> datetime:
    # In UTC, comparisons mean real time (within one zone they mean wall-clock time).
    _require_aware(moment)
    return moment.astimezone(UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} is not timezone-aware")
