"""A monitor's config: validation and normalisation of what a check-in or the API sends,
and the values derived from a stored config. No I/O (the list of time zones is the
system's tz database, read once).

`validate_monitor_config` answers either a `ValidConfig` (the normalised dict to store,
and the `owner` popped out of it) or an `InvalidConfig` whose `errors` are shaped like the
reference API's field errors, `{field: [message, ...]}`. As in the reference, per-field
checks run first and all their errors are reported together; the schedule's own rules
run only once every field is individually valid, and stop at the first problem.

It is lenient where real clients are sloppy (an interval count sent as "1" or 2.0, a
unit in capitals or plural, a null `schedule_type` next to a schedule object) and exact
where the reference is exact (the messages, including its doubled "for for").
"""

from __future__ import annotations

import functools
import math
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NotRequired, TypedDict

from cronsim import CronSim, CronSimError

from vigil.monitors.enums import IntervalUnit, ScheduleType

# Minutes. The hard cap of max_runtime and of every timeout (28 days).
MAX_TIMEOUT: Final = 40_320
# Minutes. The reference's baseline has no cap on checkin_margin; vigil uses its later
# cap (the same 28 days) so a margin always fits in date arithmetic and in JSON.
MAX_MARGIN: Final = 40_320
DEFAULT_MAX_RUNTIME: Final = 30
DEFAULT_CHECKIN_MARGIN: Final = 1
MAX_THRESHOLD: Final = 720

# Minutes an interval may span at most (about 1000 years), so that the next run of any
# valid interval is a representable date. Units are measured at their longest.
MAX_INTERVAL_MINUTES: Final = 1000 * 366 * 24 * 60
_LONGEST_UNIT_MINUTES: Final = {
    IntervalUnit.YEAR: 366 * 24 * 60,
    IntervalUnit.MONTH: 31 * 24 * 60,
    IntervalUnit.WEEK: 7 * 24 * 60,
    IntervalUnit.DAY: 24 * 60,
    IntervalUnit.HOUR: 60,
    IntervalUnit.MINUTE: 1,
}

CRONTAB_ALIASES: Final = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# The reference's messages, word for word.
MISSING_SCHEDULE_TYPE: Final = "Missing or invalid schedule type"
INVALID_INTERVAL: Final = "Invalid schedule for for 'interval' type"
INVALID_INTERVAL_COUNT: Final = "Invalid schedule for schedule unit count"
INTERVAL_NOT_POSITIVE: Final = "Interval must be greater than zero"
INVALID_INTERVAL_UNIT: Final = "Invalid schedule for schedule unit name"
INVALID_CRONTAB: Final = "Invalid schedule for 'crontab' type"
CRONTAB_NOT_PARSEABLE: Final = "Schedule was not parseable"
CRONTAB_TOO_MANY_FIELDS: Final = "Only 5 field crontab syntax is supported"
SCHEDULE_INVALID: Final = "Schedule is invalid"
REQUIRED: Final = "This field is required."
NOT_NULL: Final = "This field may not be null."
NOT_AN_INTEGER: Final = "A valid integer is required."
STRING_TOO_LARGE: Final = "String value too large."

# Integer fields refuse strings longer than this before trying to read them.
_MAX_INTEGER_STRING: Final = 1000
_INTEGER_STRING = re.compile(r"[+-]?\d+(?:\.0*)?")
_WHITESPACE = re.compile(r"\s+")
# Crontab existence is checked around a fixed moment so validation is a pure function;
# cronsim looks 50 years either way, more than any real schedule's period.
_CRONTAB_PROBE: Final = datetime(2024, 1, 1, tzinfo=UTC)

FieldErrors = dict[str, list[str]]
IntervalSchedule = list[int | str]  # [count, unit], e.g. [10, "minute"]


class MonitorConfig(TypedDict):
    """A validated config as stored: `schedule_type` is the ScheduleType int, `schedule`
    a normalised crontab string or [count, unit]; the optional numbers are null when not
    given; `timezone` is present only when given non-empty."""

    schedule_type: int
    schedule: str | IntervalSchedule
    checkin_margin: int | None
    max_runtime: int | None
    failure_issue_threshold: int | None
    recovery_threshold: int | None
    timezone: NotRequired[str]


@dataclass(frozen=True)
class ValidConfig:
    """A config that passed: what to store, and the owner ("user:…"/"team:…" as sent,
    unresolved; None when absent or not a string) that is never stored in it."""

    config: MonitorConfig
    owner: str | None


@dataclass(frozen=True)
class InvalidConfig:
    """A config that failed: field errors in the API's shape, and the owner as above."""

    errors: FieldErrors
    owner: str | None


@functools.cache
def available_timezones() -> frozenset[str]:
    """The IANA zone names a monitor may use: the tz database's, without the host's own
    "localtime" alias (which means a different zone on every machine)."""
    return frozenset(zoneinfo.available_timezones() - {"localtime"})


def validate_monitor_config(raw: object) -> ValidConfig | InvalidConfig:
    """Validate and normalise a monitor config sent by a check-in or the API.

    Never raises for any JSON-like input. Keys other than the config's own (and
    `owner`, which is popped out) are dropped.
    """
    if not isinstance(raw, Mapping):
        kind = "null" if raw is None else type(raw).__name__
        return InvalidConfig(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {kind}."]}, None
        )
    owner = raw.get("owner")
    owner = owner if isinstance(owner, str) else None

    errors: FieldErrors = {}
    schedule_type = _schedule_type_field(raw, errors)
    schedule = _schedule_field(raw, errors)
    checkin_margin = _integer_field(raw, "checkin_margin", 1, MAX_MARGIN, errors)
    max_runtime = _integer_field(raw, "max_runtime", 1, MAX_TIMEOUT, errors)
    timezone = _timezone_field(raw, errors)
    failure_threshold = _integer_field(raw, "failure_issue_threshold", 1, MAX_THRESHOLD, errors)
    recovery_threshold = _integer_field(raw, "recovery_threshold", 1, MAX_THRESHOLD, errors)
    if errors:
        return InvalidConfig(errors, owner)

    checked = _check_schedule(schedule_type, schedule)
    if isinstance(checked, dict):
        return InvalidConfig(checked, owner)
    final_type, final_schedule = checked
    config = MonitorConfig(
        schedule_type=int(final_type),
        schedule=final_schedule,
        checkin_margin=checkin_margin,
        max_runtime=max_runtime,
        failure_issue_threshold=failure_threshold,
        recovery_threshold=recovery_threshold,
    )
    if timezone:
        config["timezone"] = timezone
    return ValidConfig(config, owner)


def margin(config: Mapping[str, Any]) -> timedelta:
    """How long after an expected check-in a run may start before it is missed:
    `checkin_margin` minutes, 1 when absent, null or 0, and at most MAX_MARGIN."""
    return timedelta(
        minutes=_stored_minutes(config, "checkin_margin", DEFAULT_CHECKIN_MARGIN, MAX_MARGIN)
    )


def max_runtime(config: Mapping[str, Any]) -> timedelta:
    """How long a run may stay in progress before it times out: `max_runtime` minutes,
    30 when absent or null, and at most MAX_TIMEOUT (28 days)."""
    return timedelta(
        minutes=_stored_minutes(config, "max_runtime", DEFAULT_MAX_RUNTIME, MAX_TIMEOUT)
    )


def failure_issue_threshold(config: Mapping[str, Any]) -> int:
    """How many failed check-ins in a row open an incident (1 when not set)."""
    return _stored_count(config, "failure_issue_threshold")


def recovery_threshold(config: Mapping[str, Any]) -> int:
    """How many successful check-ins in a row resolve an incident (1 when not set)."""
    return _stored_count(config, "recovery_threshold")


def parse_owner(owner: str) -> tuple[str, str] | None:
    """An owner reference split into ("user" | "team", identifier), e.g. "team:backend" ⇒
    ("team", "backend"); None when it is neither form. Resolving it is the caller's job."""
    kind, sep, ident = owner.partition(":")
    if not sep or kind not in ("user", "team") or not ident.strip():
        return None
    return kind, ident.strip()


# --- per-field checks ----------------------------------------------------------------


def _schedule_type_field(raw: Mapping[str, Any], errors: FieldErrors) -> ScheduleType | None:
    # Absent or null: the schedule object may carry the type; checked later.
    value = raw.get("schedule_type")
    if value is None:
        return None
    schedule_type = _read_schedule_type(value)
    if schedule_type is None:
        errors["schedule_type"] = [f'"{value}" is not a valid choice.']
    return schedule_type


def _read_schedule_type(value: object) -> ScheduleType | None:
    """ "crontab" / "interval" as the API sends them, 1 / 2 as they are stored."""
    if isinstance(value, str):
        return {"crontab": ScheduleType.CRONTAB, "interval": ScheduleType.INTERVAL}.get(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return ScheduleType(value) if value in (ScheduleType.CRONTAB, ScheduleType.INTERVAL) else None


def _schedule_field(raw: Mapping[str, Any], errors: FieldErrors) -> object:
    if "schedule" not in raw:
        errors["schedule"] = [REQUIRED]
        return None
    if raw["schedule"] is None:
        errors["schedule"] = [NOT_NULL]
    return raw["schedule"]


def _integer_field(
    raw: Mapping[str, Any], name: str, minimum: int, maximum: int, errors: FieldErrors
) -> int | None:
    """An optional integer field: null or "" ⇒ None; ints, integral floats and integer
    strings accepted; bounds as the reference words them. checkin_margin 0 ⇒ 1."""
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) > _MAX_INTEGER_STRING:
        errors[name] = [STRING_TOO_LARGE]
        return None
    number = _read_integer(value)
    if number is None:
        errors[name] = [NOT_AN_INTEGER]
        return None
    if name == "checkin_margin" and number == 0:
        # The reference treats a zero margin as the smallest one rather than refusing it.
        return 1
    if number < minimum:
        errors[name] = [f"Ensure this value is greater than or equal to {minimum}."]
        return None
    if number > maximum:
        errors[name] = [f"Ensure this value is less than or equal to {maximum}."]
        return None
    return number


def _read_integer(value: object) -> int | None:
    """An int from an int, an integral finite float, or a string like "5", " 5 ", "5.0";
    None for anything else (booleans included: true is not 1 here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER_STRING.fullmatch(text):
            return int(text.split(".")[0])
    return None


def _timezone_field(raw: Mapping[str, Any], errors: FieldErrors) -> str | None:
    if "timezone" not in raw:
        return None
    value = raw["timezone"]
    if value is None:
        errors["timezone"] = [NOT_NULL]
        return None
    if value == "":
        return None  # accepted and dropped: the monitor runs in UTC
    if not isinstance(value, str) or value not in available_timezones():
        errors["timezone"] = [f'"{value}" is not a valid choice.']
        return None
    return value


# --- the schedule's own rules ----------------------------------------------------------


def _check_schedule(
    schedule_type: ScheduleType | None, schedule: object
) -> tuple[ScheduleType, str | IntervalSchedule] | FieldErrors:
    """The schedule type and normalised schedule, or the first problem as field errors."""
    if isinstance(schedule, Mapping):
        # Object form: its "type" wins over `schedule_type`; an interval's value and
        # unit become the [count, unit] list form.
        if "type" in schedule and schedule["type"] is not None:
            schedule_type = _read_schedule_type(schedule["type"])
        if schedule_type == ScheduleType.INTERVAL:
            schedule = [schedule.get("value"), schedule.get("unit")]
        else:
            schedule = schedule.get("value")
    if schedule_type is None:
        return {"schedule_type": [MISSING_SCHEDULE_TYPE]}
    if schedule_type == ScheduleType.INTERVAL:
        interval = _check_interval(schedule)
        if isinstance(interval, str):
            return {"schedule": [interval]}
        return ScheduleType.INTERVAL, interval
    crontab = normalise_crontab(schedule)
    if crontab.error is not None:
        return {"schedule": [crontab.error]}
    return ScheduleType.CRONTAB, crontab.expression


def _check_interval(schedule: object) -> IntervalSchedule | str:
    """[count, unit] normalised, or the reference's message for what is wrong."""
    if not isinstance(schedule, list | tuple) or len(schedule) != 2:
        return INVALID_INTERVAL
    raw_count, raw_unit = schedule
    count = _read_integer(raw_count)
    if count is None:
        return INVALID_INTERVAL_COUNT
    if count <= 0:
        return INTERVAL_NOT_POSITIVE
    unit = read_interval_unit(raw_unit)
    if unit is None:
        return INVALID_INTERVAL_UNIT
    if count * _LONGEST_UNIT_MINUTES[unit] > MAX_INTERVAL_MINUTES:
        # Its next run would not be a representable date: it has none.
        return SCHEDULE_INVALID
    return [count, unit.value]


def read_interval_unit(value: object) -> IntervalUnit | None:
    """The interval unit named by `value`, exactly as the reference names them ("minute":
    not "Minute" nor "minutes", which it refuses, B2)."""
    if not isinstance(value, str):
        return None
    try:
        return IntervalUnit(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class NormalisedCrontab:
    """A crontab after `normalise_crontab`: the expression, or the reason it is refused."""

    expression: str
    error: str | None


def normalise_crontab(value: object) -> NormalisedCrontab:
    """A crontab string with its whitespace collapsed and aliases (@daily …) expanded,
    checked to be a 5-field expression cronsim parses and that has both a next and a
    previous occurrence; otherwise the reference's message for what is wrong."""
    if not isinstance(value, str):
        return NormalisedCrontab("", INVALID_CRONTAB)
    expression = _WHITESPACE.sub(" ", value).strip()
    if expression.startswith("@"):
        alias = CRONTAB_ALIASES.get(expression)  # as written: "@DAILY" is not one
        if alias is None:
            return NormalisedCrontab(expression, CRONTAB_NOT_PARSEABLE)  # @reboot & co
        expression = alias
    if len(expression.split(" ")) > 5:
        return NormalisedCrontab(expression, CRONTAB_TOO_MANY_FIELDS)
    if not crontab_has_occurrences(expression):
        return NormalisedCrontab(expression, SCHEDULE_INVALID)
    return NormalisedCrontab(expression, None)


def crontab_has_occurrences(expression: str) -> bool:
    """True when cronsim parses `expression` and finds a moment it matches both after
    and before a fixed probe date ("0 0 31 2 *" has none)."""
    try:
        next(CronSim(expression, _CRONTAB_PROBE))
        next(CronSim(expression, _CRONTAB_PROBE, reverse=True))
    except (CronSimError, StopIteration, ValueError):
        return False
    return True


# --- derived values ----------------------------------------------------------------


def _stored_minutes(config: Mapping[str, Any], key: str, default: int, cap: int) -> int:
    # Stored configs were validated, but old rows or hand-edits may hold anything:
    # whatever is not a positive whole number falls back to the default.
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return default
    return min(value, cap)


def _stored_count(config: Mapping[str, Any], key: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return 1
    return min(value, MAX_THRESHOLD)
