"""Processing errors (B10): why a check-in was not applied, in a form the user can read
through the API. Pure types; `processing_error_store` keeps them.

Each error has a type (the reference's integer ids, which the API shows) and, for some
types, extra fields named exactly as the reference names them (camelCase included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from vigil.monitors.models import Monitor


class ProcessingErrorType(IntEnum):
    """The reference's processing error types; the values are what the API shows."""

    CHECKIN_ENVIRONMENT_MISMATCH = 0
    CHECKIN_FINISHED = 1
    CHECKIN_GUID_PROJECT_MISMATCH = 2
    CHECKIN_INVALID_DURATION = 3
    CHECKIN_INVALID_GUID = 4
    CHECKIN_VALIDATION_FAILED = 5
    MONITOR_DISABLED = 6
    MONITOR_DISABLED_NO_QUOTA = 7
    MONITOR_INVALID_CONFIG = 8
    MONITOR_INVALID_ENVIRONMENT = 9
    MONITOR_LIMIT_EXCEEDED = 10
    MONITOR_NOT_FOUND = 11
    MONITOR_OVER_QUOTA = 12
    MONITOR_ENVIRONMENT_LIMIT_EXCEEDED = 13
    MONITOR_ENVIRONMENT_RATELIMITED = 14
    ORGANIZATION_KILLSWITCH_ENABLED = 15


# The extra fields each type carries (and must carry); types not listed carry none.
EXTRA_FIELDS: Mapping[ProcessingErrorType, frozenset[str]] = {
    ProcessingErrorType.CHECKIN_ENVIRONMENT_MISMATCH: frozenset({"existingEnvironment"}),
    ProcessingErrorType.CHECKIN_GUID_PROJECT_MISMATCH: frozenset({"guid"}),
    ProcessingErrorType.CHECKIN_INVALID_DURATION: frozenset({"duration"}),
    ProcessingErrorType.CHECKIN_VALIDATION_FAILED: frozenset({"errors"}),
    ProcessingErrorType.MONITOR_INVALID_CONFIG: frozenset({"errors"}),
    ProcessingErrorType.MONITOR_INVALID_ENVIRONMENT: frozenset({"reason"}),
    ProcessingErrorType.MONITOR_LIMIT_EXCEEDED: frozenset({"reason"}),
    ProcessingErrorType.MONITOR_ENVIRONMENT_LIMIT_EXCEEDED: frozenset({"reason"}),
}


def extra_fields(error_type: ProcessingErrorType) -> frozenset[str]:
    """The names of the extra fields an error of `error_type` carries."""
    return EXTRA_FIELDS.get(error_type, frozenset())


@dataclass(frozen=True)
class ProcessingError:
    """One error: its type and exactly that type's extra fields (ValueError otherwise)."""

    type: ProcessingErrorType
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        expected = extra_fields(self.type)
        if set(self.data) != expected:
            raise ValueError(
                f"{self.type.name} carries {sorted(expected)}, got {sorted(self.data)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The stored and API form: {"type": id, **extra fields}."""
        return {"type": int(self.type), **self.data}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> ProcessingError:
        """The inverse of `to_dict`; ValueError for an unknown type or wrong fields."""
        data = {k: v for k, v in value.items() if k != "type"}
        return cls(ProcessingErrorType(value["type"]), data)


class ProcessingErrorsException(Exception):
    """A check-in cannot be applied, for these reasons. `monitor` is the monitor it was
    for, when one was found (it decides where the errors are shown)."""

    def __init__(self, errors: Sequence[ProcessingError], monitor: Monitor | None = None) -> None:
        if not errors:
            raise ValueError("a ProcessingErrorsException needs at least one error")
        self.errors = tuple(errors)
        self.monitor = monitor
        super().__init__(", ".join(e.type.name for e in self.errors))


@dataclass(frozen=True)
class CheckinItem:
    """The message a processing error is about: its log timestamp and partition, the
    message map as received, and the decoded check-in payload."""

    ts: datetime
    partition: int
    message: Mapping[str, Any]
    payload: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The stored and API form. Bytes in the message (msgpack carries the payload as
        bytes) become text, so the record is plain JSON."""
        return {
            "ts": self.ts.isoformat(),
            "partition": self.partition,
            "message": _jsonable(self.message),
            "payload": _jsonable(self.payload),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> CheckinItem:
        return cls(
            datetime.fromisoformat(value["ts"]),
            int(value["partition"]),
            value["message"],
            value["payload"],
        )


@dataclass(frozen=True)
class ProcessingErrorRecord:
    """A stored processing error: id (uuid4 hex), the check-in item and its errors."""

    id: str
    checkin: CheckinItem
    errors: tuple[ProcessingError, ...]

    def to_dict(self) -> dict[str, Any]:
        """The API form: {"id", "checkin": {...}, "errors": [{"type", ...}]}."""
        return {
            "id": self.id,
            "checkin": self.checkin.to_dict(),
            "errors": [e.to_dict() for e in self.errors],
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
