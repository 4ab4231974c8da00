"""What the edge makes of a check-in (B4.1), from an envelope item or from the crons HTTP
endpoint's query parameters, and the check-in's routing key. No I/O.

The edge re-serialises every check-in in one normalised form, as Relay does, so the
consumer only ever sees these keys:

- `check_in_id`: 32 lowercase hex digits; any UUID form is accepted, an absent, null or
  empty id is the nil UUID ("close the latest in_progress check-in");
- `monitor_slug`: cut to 50 characters; empty (or only whitespace) after the cut is
  refused, and so is a NUL character (see below);
- `status`: `in_progress`, `ok` or `error` (case and surrounding spaces ignored); any
  other value, `missed` included, is `unknown` (misses are computed by the server);
  absent or null is refused;
- `environment` (when given): a string of at most 64 characters without NUL, else
  refused;
- `duration` (when given): finite float seconds; a number or a numeric string, else
  refused;
- `monitor_config` (when given): only the keys a check-in may carry, with the schedule
  in object form (see `normalise_monitor_config`);
- `contexts` (when given): only `trace.trace_id`.

The edge refuses only what Relay refuses and a client can fix, plus a NUL character in
the slug or environment: PostgreSQL text cannot hold one, so the consumer could neither
look the monitor up nor record why it failed; the values of a monitor's
config are validated by the consumer, which records a processing error the user sees
and still records the check-in (Relay would drop the whole check-in instead).
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from vigil.monitors.slugs import MAX_SLUG_LENGTH, valid_monitor_slug
from vigil.monitors.slugs import routing_key as routing_key  # re-exported: one place
from vigil.uuid_text import uuid_hex

# Relay refuses environments longer than this (characters).
MAX_ENVIRONMENT_LENGTH: Final = 64
CLIENT_STATUSES: Final = frozenset({"in_progress", "ok", "error"})
UNKNOWN_STATUS: Final = "unknown"
NIL_CHECK_IN_ID: Final = uuid.UUID(int=0).hex

# The keys of a check-in's monitor_config the edge passes on (any other is dropped).
CONFIG_KEYS: Final = (
    "schedule",
    "checkin_margin",
    "max_runtime",
    "timezone",
    "failure_issue_threshold",
    "recovery_threshold",
    "owner",
)
CRONTAB: Final = "crontab"
INTERVAL: Final = "interval"

# Numbers as text (query parameters, lenient JSON); anything longer is not a number.
_MAX_NUMBER_CHARS: Final = 64
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d{1,18}")
# Longer than any UUID form (urn:uuid:..., braces): not worth parsing.
_MAX_ID_CHARS: Final = 64


class InvalidReason(StrEnum):
    """Why a check-in was refused at the edge (a metric label: a fixed set)."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_SLUG = "missing_slug"
    EMPTY_SLUG = "empty_slug"
    INVALID_SLUG = "invalid_slug"
    MISSING_STATUS = "missing_status"
    INVALID_CHECK_IN_ID = "invalid_check_in_id"
    INVALID_ENVIRONMENT = "invalid_environment"
    INVALID_DURATION = "invalid_duration"
    TOO_DEEP = "too_deep"


class InvalidCheckIn(ValueError):
    """A check-in the edge refuses; `reason` is its metric label and `str(err)` says
    what is wrong, for the client."""

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class EdgeCheckIn:
    """A normalised check-in: its `payload` (the JSON the consumer reads), and what
    routing needs: the slug (cut to 50 characters) and the environment (None when
    absent)."""

    payload: bytes
    slug: str
    environment: str | None

    def routing_key(self, project_id: int) -> bytes:
        return routing_key(project_id, self.slug, self.environment)


def read_check_in(payload: bytes) -> EdgeCheckIn:
    """The normalised check-in of an envelope item's payload; InvalidCheckIn if it is
    not a JSON object or cannot be a check-in."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidCheckIn(InvalidReason.NOT_JSON, f"check-in is not JSON: {exc}") from None
    return normalise_check_in(value)


def check_in_from_body(body: bytes, slug: str) -> EdgeCheckIn:
    """The crons HTTP endpoint's JSON form: `body` is a check-in whose monitor slug is
    `slug` (the path's), whatever the body says."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidCheckIn(
            InvalidReason.NOT_JSON, f"request body is not valid JSON: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidCheckIn(
            InvalidReason.NOT_AN_OBJECT, "request body must be a JSON object (a check-in)"
        )
    return normalise_check_in({**value, "monitor_slug": slug})


def check_in_from_query(slug: str, params: Mapping[str, str]) -> EdgeCheckIn:
    """The crons HTTP endpoint's query form: `status` (required), `check_in_id`,
    `environment` and `duration` from `params`; no monitor_config, no contexts. An empty
    parameter counts as absent."""
    value: dict[str, Any] = {"monitor_slug": slug}
    for name in ("status", "check_in_id", "environment", "duration"):
        given = params.get(name)
        if given:
            value[name] = given
    return normalise_check_in(value)


def normalise_check_in(value: object) -> EdgeCheckIn:
    """The normalised form of a decoded check-in (see the module docstring);
    InvalidCheckIn for what the edge refuses."""
    if not isinstance(value, dict):
        raise InvalidCheckIn(InvalidReason.NOT_AN_OBJECT, "check-in must be a JSON object")
    slug = _slug(value.get("monitor_slug"))
    normalised: dict[str, Any] = {
        "check_in_id": _check_in_id(value.get("check_in_id")),
        "monitor_slug": slug,
        "status": _status(value.get("status")),
    }
    environment = _environment(value.get("environment"))
    if environment is not None:
        normalised["environment"] = environment
    duration = _duration(value.get("duration"))
    if duration is not None:
        normalised["duration"] = duration
    config = value.get("monitor_config")
    if config is not None:
        normalised["monitor_config"] = normalise_monitor_config(config)
    contexts = _contexts(value.get("contexts"))
    if contexts is not None:
        normalised["contexts"] = contexts
    try:
        payload = orjson.dumps(normalised)
    except orjson.JSONEncodeError:
        # What passes through unshaped (monitor_config values, a non-string trace id)
        # can nest deeper than the encoder goes; nothing a check-in holds nests so.
        raise InvalidCheckIn(
            InvalidReason.TOO_DEEP, "check-in monitor_config or contexts nests too deeply"
        ) from None
    return EdgeCheckIn(payload, slug, environment or None)


def _slug(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCheckIn(InvalidReason.MISSING_SLUG, "check-in has no string monitor_slug")
    slug = value[:MAX_SLUG_LENGTH]
    if not slug.strip():
        raise InvalidCheckIn(InvalidReason.EMPTY_SLUG, "check-in monitor_slug is empty")
    if "\x00" in slug:
        raise InvalidCheckIn(
            InvalidReason.INVALID_SLUG, "check-in monitor_slug contains a NUL character"
        )
    if not valid_monitor_slug(slug):
        # Relay's rule: nothing is left to name a monitor once slugified ("🙂", "..").
        raise InvalidCheckIn(
            InvalidReason.EMPTY_SLUG,
            f"check-in monitor_slug {slug!r} has no letter, digit, '-' or '_' to make a slug of",
        )
    return slug


def _check_in_id(value: object) -> str:
    if value is None or value == "":
        return NIL_CHECK_IN_ID
    if isinstance(value, str) and len(value) <= _MAX_ID_CHARS:
        try:
            return uuid_hex(value.strip())
        except ValueError:
            pass
    raise InvalidCheckIn(
        InvalidReason.INVALID_CHECK_IN_ID,
        f"check_in_id must be a UUID, got {_preview(value)}",
    )


def _status(value: object) -> str:
    if value is None:
        raise InvalidCheckIn(
            InvalidReason.MISSING_STATUS, "check-in has no status (in_progress, ok or error)"
        )
    # Exactly as sent, as Relay reads it: "OK" is unknown too, and the consumer refuses
    # it with a processing error the user sees, where Sentry does.
    return value if isinstance(value, str) and value in CLIENT_STATUSES else UNKNOWN_STATUS


def _environment(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidCheckIn(InvalidReason.INVALID_ENVIRONMENT, "environment must be a string")
    if len(value) > MAX_ENVIRONMENT_LENGTH:
        raise InvalidCheckIn(
            InvalidReason.INVALID_ENVIRONMENT,
            f"environment is longer than {MAX_ENVIRONMENT_LENGTH} characters",
        )
    if "\x00" in value:
        raise InvalidCheckIn(
            InvalidReason.INVALID_ENVIRONMENT, "environment contains a NUL character"
        )
    return value


def _duration(value: object) -> float | None:
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = None
    elif isinstance(value, str) and len(value) <= _MAX_NUMBER_CHARS:
        text = value.strip()
        seconds = float(text) if _DECIMAL.fullmatch(text) else None
    if seconds is None or not math.isfinite(seconds):
        raise InvalidCheckIn(
            InvalidReason.INVALID_DURATION,
            f"duration must be a finite number of seconds, got {_preview(value)}",
        )
    return seconds


def _contexts(value: object) -> dict[str, Any] | None:
    trace = value.get("trace") if isinstance(value, dict) else None
    trace_id = trace.get("trace_id") if isinstance(trace, dict) else None
    if trace_id is None:
        return None
    if isinstance(trace_id, str) and len(trace_id) <= _MAX_ID_CHARS:
        # Not a UUID: kept as sent, for the consumer to report.
        with contextlib.suppress(ValueError):
            trace_id = uuid_hex(trace_id.strip())
    return {"trace": {"trace_id": trace_id}}


def normalise_monitor_config(config: object) -> object:
    """A check-in's monitor_config as the consumer gets it: only CONFIG_KEYS kept, and
    the schedule in object form — `{"type": "crontab", "value": str}` or
    `{"type": "interval", "value": int, "unit": str}` (an integer-like string count such
    as "1" made an integer). A schedule in the API's form (a crontab string, or
    [count, unit], with an optional `schedule_type`) is put in object form. Anything the
    edge cannot shape is passed on as sent, for the consumer to report."""
    if not isinstance(config, dict):
        return config
    kept: dict[str, Any] = {key: config[key] for key in CONFIG_KEYS if key in config}
    if "schedule" in kept:
        schedule = _schedule(kept["schedule"], config.get("schedule_type"))
        kept["schedule"] = schedule
        if not isinstance(schedule, dict) and "schedule_type" in config:
            kept["schedule_type"] = config["schedule_type"]
    return kept


def _schedule(schedule: object, schedule_type: object) -> object:
    kind = schedule_type.strip().lower() if isinstance(schedule_type, str) else schedule_type
    if isinstance(schedule, dict):
        shaped = {key: schedule[key] for key in ("type", "value", "unit") if key in schedule}
        is_interval = isinstance(shaped.get("type"), str) and shaped["type"].strip().lower()
        if is_interval == INTERVAL and "value" in shaped:
            shaped["value"] = _count(shaped["value"])
        return shaped
    if isinstance(schedule, str) and kind in (None, CRONTAB):
        return {"type": CRONTAB, "value": schedule}
    if isinstance(schedule, list) and len(schedule) == 2 and kind in (None, INTERVAL):
        return {"type": INTERVAL, "value": _count(schedule[0]), "unit": schedule[1]}
    return schedule


def _count(value: object) -> object:
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value.strip())
    return value


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
