"""What the edge checks in a `check_in` envelope item, and the check-in's routing key.
No I/O.

The edge only refuses what cannot be a check-in at all: a payload that is not a JSON
object, or one without a usable `monitor_slug`. Everything else (status, ids, schedule,
environment rules) is validated and normalised by the check-in consumer, which can record
a processing error the user sees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

# The routing key is computed in one place, with the other slug rules; re-exported here.
from vigil.monitors.slugs import MAX_SLUG_LENGTH
from vigil.monitors.slugs import routing_key as routing_key

# Relay truncates slugs to this many characters before anything else looks at them.


class InvalidReason(StrEnum):
    """Why a check-in item was dropped at the edge (a metric label: a fixed set)."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_SLUG = "missing_slug"
    EMPTY_SLUG = "empty_slug"


class InvalidCheckIn(ValueError):
    """A `check_in` item that cannot be a check-in; `reason` is its metric label and
    `str(err)` says what is wrong."""

    def __init__(self, reason: InvalidReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CheckInRef:
    """What routing needs from a check-in: its monitor slug (truncated as Relay does)
    and its environment (None when absent or empty)."""

    slug: str
    environment: str | None


def inspect_check_in(payload: bytes) -> CheckInRef:
    """The slug and environment of a check-in item's payload; InvalidCheckIn if the
    payload is not a JSON object with a non-empty string `monitor_slug`."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidCheckIn(InvalidReason.NOT_JSON, f"check-in is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidCheckIn(InvalidReason.NOT_AN_OBJECT, "check-in must be a JSON object")
    slug = value.get("monitor_slug")
    if not isinstance(slug, str):
        raise InvalidCheckIn(InvalidReason.MISSING_SLUG, "check-in has no string monitor_slug")
    slug = slug[:MAX_SLUG_LENGTH]
    if not slug.strip():
        raise InvalidCheckIn(InvalidReason.EMPTY_SLUG, "check-in monitor_slug is empty")
    environment = value.get("environment")
    if not isinstance(environment, str) or not environment:
        environment = None
    return CheckInRef(slug, environment)
