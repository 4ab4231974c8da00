"""The event embedded in an occurrence: which of its fields are kept, and whether the
result is a valid event (spec A2.2). No I/O.

Validation is not a JSON-schema engine: it is the plain checks below, which reproduce
the observable behaviour of the reference's two schemas.

Current schema (tried first):
  * `timestamp` is required: a number (epoch seconds) or an ISO-8601 date-time string;
  * `platform` is required and a string;
  * `event_id`, if present, a UUID string; `level`, if present, one of debug, info,
    warning, error, fatal; `project_id`, if present, an integer; `received`, if present, a
    number or date-time string;
  * `tags` may be absent or null; otherwise an object whose values are strings or null,
    or a list of [key, value] string pairs (so a NaN or numeric tag value is invalid);
  * contexts, debug_meta, extra, modules, request, sdk, user: an object or null;
    dist, environment, release, server_name, transaction, trace_id: a string or null;
  * breadcrumbs: null, a list, or an object whose `values` is a list or null;
  * stacktrace: null or an object whose `frames` is null or a list of objects (frames may
    carry any extra keys, such as `data`);
  * debug_meta: `images`, if present, is null or a list of objects or nulls, so `{}`,
    `{"images": []}`, `{"images": null}` and `{"images": [{}]}` are all valid;
  * other top-level keys are allowed.

Legacy schema (tried when the current one fails):
  * event_id, level, platform (strings), project_id (integer), tags (an object, with
    any values) and timestamp (an ISO-8601 date-time string) are required;
  * no top-level key outside `EVENT_FIELDS_ALWAYS` + `EVENT_FIELDS_WHEN_PRESENT`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from vigil.issues.enums import LOG_LEVELS
from vigil.issues.errors import EventPayloadValidationError
from vigil.uuid_text import parse_uuid_hex

EVENT_FIELDS_ALWAYS: tuple[str, ...] = (
    "event_id",
    "level",
    "project_id",
    "platform",
    "received",
    "tags",
    "timestamp",
)
"""Keys the event data always has (null when the producer's event lacks them)."""

EVENT_FIELDS_WHEN_PRESENT: tuple[str, ...] = (
    "breadcrumbs",
    "contexts",
    "debug_meta",
    "dist",
    "environment",
    "extra",
    "modules",
    "release",
    "request",
    "sdk",
    "server_name",
    "stacktrace",
    "trace_id",
    "transaction",
    "user",
)
"""Keys copied from the producer's event only when it has them; all others are dropped."""

GENERIC_EVENT_TYPE = "generic"
"""The event type of events saved from occurrences."""

_OBJECT_FIELDS = ("contexts", "debug_meta", "extra", "modules", "request", "sdk", "user")
_STRING_FIELDS = ("dist", "environment", "release", "server_name", "transaction", "trace_id")


def build_event_data(
    event: Mapping[str, Any],
    *,
    event_id: str,
    level: str,
    project_id: int,
    now: datetime,
) -> dict[str, Any]:
    """The event data to validate and save, from the producer's `event`: the always
    fields (with `event_id` already normalised by the caller, the occurrence's `level`
    and `project_id`, and `received` defaulting to `now` in ISO form), then the
    when-present fields that the event has. Nothing else from `event` is kept."""
    data: dict[str, Any] = {
        "event_id": event_id,
        "level": level,
        "project_id": project_id,
        "platform": event.get("platform"),
        "received": event.get("received") or now.isoformat(),
        "tags": event.get("tags"),
        "timestamp": event.get("timestamp"),
    }
    for key in EVENT_FIELDS_WHEN_PRESENT:
        if key in event:
            data[key] = event[key]
    return data


def finish_event_data(data: dict[str, Any], issue_title: str) -> dict[str, Any]:
    """The validated event data with what the consumer adds after validation: its
    metadata title (the issue title) and the event type "generic". Returns a new dict."""
    return {**data, "metadata": {"title": issue_title}, "type": GENERIC_EVENT_TYPE}


class EventSchema(StrEnum):
    """Which schema accepted an event."""

    CURRENT = "current"
    LEGACY = "legacy"


@dataclass(frozen=True)
class EventValidation:
    """The outcome of a successful validation. When `schema` is LEGACY the caller must
    emit `occurrence_ingest.event_payload_invalid` and log "Error validating event
    payload, falling back to legacy validation" with `current_errors`."""

    schema: EventSchema
    current_errors: tuple[str, ...] = ()


def validate_event_data(data: Mapping[str, Any]) -> EventValidation:
    """Check event data against the current schema, then the legacy one (see the module
    docstring for what each checks). Raises EventPayloadValidationError when both fail;
    the caller must then emit `occurrence_ingest.legacy_event_payload_invalid`."""
    current = current_schema_errors(data)
    if not current:
        return EventValidation(EventSchema.CURRENT)
    legacy = legacy_schema_errors(data)
    if legacy:
        raise EventPayloadValidationError("; ".join(legacy), tuple(current))
    return EventValidation(EventSchema.LEGACY, tuple(current))


def current_schema_errors(data: Mapping[str, Any]) -> list[str]:
    """What the current event schema finds wrong with `data` (empty when valid)."""
    errors: list[str] = []
    if not _is_timestamp(data.get("timestamp")):
        errors.append("timestamp: required, a number or a date-time string")
    if not isinstance(data.get("platform"), str):
        errors.append("platform: required, a string")
    if "event_id" in data and parse_uuid_hex(data["event_id"]) is None:
        errors.append("event_id: not a UUID")
    if data.get("level") is not None and data["level"] not in LOG_LEVELS:
        errors.append("level: not a log level")
    if data.get("project_id") is not None and not _is_int(data["project_id"]):
        errors.append("project_id: not an integer")
    if data.get("received") is not None and not _is_timestamp(data["received"]):
        errors.append("received: not a number or date-time string")
    if not _tags_ok(data.get("tags")):
        errors.append("tags: not an object of strings or a list of string pairs")
    for key in _OBJECT_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            errors.append(f"{key}: not an object")
    for key in _STRING_FIELDS:
        if data.get(key) is not None and not isinstance(data[key], str):
            errors.append(f"{key}: not a string")
    if not _breadcrumbs_ok(data.get("breadcrumbs")):
        errors.append("breadcrumbs: not a list or an object with a list of values")
    if not _stacktrace_ok(data.get("stacktrace")):
        errors.append("stacktrace: not an object with a list of frames")
    if not _debug_meta_images_ok(data.get("debug_meta")):
        errors.append("debug_meta.images: not a list of objects")
    return errors


_LEGACY_ALLOWED = frozenset(EVENT_FIELDS_ALWAYS) | frozenset(EVENT_FIELDS_WHEN_PRESENT)


def legacy_schema_errors(data: Mapping[str, Any]) -> list[str]:
    """What the legacy event schema finds wrong with `data` (empty when valid)."""
    errors: list[str] = []
    for key in ("event_id", "level", "platform"):
        if not isinstance(data.get(key), str):
            errors.append(f"{key}: required, a string")
    if not _is_int(data.get("project_id")):
        errors.append("project_id: required, an integer")
    if not isinstance(data.get("tags"), dict):
        errors.append("tags: required, an object")
    timestamp = data.get("timestamp")
    if not (isinstance(timestamp, str) and _is_iso_datetime(timestamp)):
        errors.append("timestamp: required, a date-time string")
    unknown = sorted(set(data) - _LEGACY_ALLOWED)
    if unknown:
        errors.append(f"unexpected properties: {', '.join(unknown)}")
    return errors


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_timestamp(value: object) -> bool:
    if _is_number(value):
        return math.isfinite(value)  # type: ignore[arg-type]
    return isinstance(value, str) and _is_iso_datetime(value)


def _tags_ok(tags: object) -> bool:
    if tags is None:
        return True
    if isinstance(tags, dict):
        return all(
            isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in tags.items()
        )
    if isinstance(tags, list):
        return all(
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and (pair[1] is None or isinstance(pair[1], str))
            for pair in tags
        )
    return False


def _breadcrumbs_ok(value: object) -> bool:
    if value is None or isinstance(value, list):
        return True
    if isinstance(value, dict):
        values = value.get("values")
        return values is None or isinstance(values, list)
    return False


def _stacktrace_ok(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, dict):
        return False
    frames = value.get("frames")
    return frames is None or (
        isinstance(frames, list) and all(isinstance(f, dict) or f is None for f in frames)
    )


def _debug_meta_images_ok(value: object) -> bool:
    if not isinstance(value, dict):
        return True  # null is fine; a non-object is reported as such above
    images = value.get("images")
    return images is None or (
        isinstance(images, list) and all(isinstance(i, dict) or i is None for i in images)
    )
