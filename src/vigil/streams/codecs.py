"""One codec per topic: bytes on the wire <-> plain typed values.

`ingest-monitors` is msgpack (as Relay writes it); the other topics are JSON. Decoding
checks the shape the consumers rely on and raises `CodecError` with a reason a person
can act on; the consumer runner sends such messages to the dead-letter topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import msgpack
import orjson

from vigil.streams.topics import Topic


class CodecError(ValueError):
    """A message that cannot be decoded; `str(err)` is the reason."""


# --- ingest-monitors (msgpack) ---------------------------------------------------------


@dataclass(frozen=True)
class ClockPulse:
    """A marker that moves a partition's clock forward without a check-in."""


@dataclass(frozen=True)
class CheckInMessage:
    payload: bytes  # JSON of the normalised check-in
    start_time: float  # seconds; when the check-in was received at the edge
    project_id: int
    sdk: str | None
    retention_days: int

    def payload_json(self) -> dict[str, Any]:
        try:
            value = orjson.loads(self.payload)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"check-in payload is not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise CodecError("check-in payload must be a JSON object")
        return value


MonitorMessage = ClockPulse | CheckInMessage

_U64 = 2**64 - 1


def encode_monitor_message(message: MonitorMessage) -> bytes:
    if isinstance(message, ClockPulse):
        return msgpack.packb({"message_type": "clock_pulse"})  # type: ignore[no-any-return]
    return msgpack.packb(  # type: ignore[no-any-return]
        {
            "message_type": "check_in",
            "payload": message.payload,
            "start_time": message.start_time,
            "project_id": message.project_id,
            "sdk": message.sdk,
            "retention_days": message.retention_days,
        },
        use_bin_type=True,
    )


def decode_monitor_message(data: bytes) -> MonitorMessage:
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError) as exc:
        raise CodecError(f"ingest-monitors message is not msgpack: {exc}") from None
    if not isinstance(value, dict):
        raise CodecError("ingest-monitors message must be a msgpack map")
    kind = value.get("message_type")
    if kind == "clock_pulse":
        return ClockPulse()
    if kind != "check_in":
        raise CodecError(f"unknown ingest-monitors message_type {kind!r}")
    missing = [
        k for k in ("payload", "start_time", "project_id", "retention_days") if k not in value
    ]
    if missing:
        raise CodecError(f"check_in message lacks {', '.join(missing)}")
    payload = value["payload"]
    if isinstance(payload, str):  # tolerate producers that send the JSON as a str
        payload = payload.encode("utf-8")
    if not isinstance(payload, bytes):
        raise CodecError("check_in payload must be bytes (the check-in JSON)")
    start_time = value["start_time"]
    if isinstance(start_time, bool) or not isinstance(start_time, int | float):
        raise CodecError("check_in start_time must be a number of seconds")
    if not math.isfinite(start_time):
        raise CodecError("check_in start_time must be finite")
    project_id = value["project_id"]
    if (
        isinstance(project_id, bool)
        or not isinstance(project_id, int)
        or not 0 <= project_id <= _U64
    ):
        raise CodecError("check_in project_id must be an unsigned integer")
    retention = value["retention_days"]
    if isinstance(retention, bool) or not isinstance(retention, int) or not 0 <= retention <= 65535:
        raise CodecError("check_in retention_days must be an integer 0-65535")
    sdk = value.get("sdk")
    if sdk is not None and not isinstance(sdk, str):
        raise CodecError("check_in sdk must be a string or null")
    return CheckInMessage(payload, float(start_time), project_id, sdk, retention)


# --- JSON topics -----------------------------------------------------------------------


def _json_object(data: bytes, topic: str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"{topic} message is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CodecError(f"{topic} message must be a JSON object")
    return value


def _number(value: Any, field: str, topic: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CodecError(f"{topic}: {field} must be a finite number")
    return float(value)


def _int(value: Any, field: str, topic: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CodecError(f"{topic}: {field} must be an integer")
    return value


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value)


def decode_occurrence_message(data: bytes) -> dict[str, Any]:
    """An occurrence or status change. The shape is checked by the occurrence consumer,
    which records field errors itself; here only what routing needs."""
    value = _json_object(data, Topic.INGEST_OCCURRENCES)
    kind = value.get("payload_type", "occurrence")
    if kind not in ("occurrence", "status_change"):
        # kept: the consumer drops it with a metric, as the reference does
        return value
    if "project_id" in value:
        _int(value["project_id"], "project_id", Topic.INGEST_OCCURRENCES)
    return value


@dataclass(frozen=True)
class ClockTick:
    ts: float


def encode_clock_tick(tick: ClockTick) -> bytes:
    return orjson.dumps({"ts": tick.ts})


def decode_clock_tick(data: bytes) -> ClockTick:
    value = _json_object(data, Topic.MONITORS_CLOCK_TICK)
    if "ts" not in value:
        raise CodecError("monitors-clock-tick: ts is required")
    return ClockTick(_number(value["ts"], "ts", Topic.MONITORS_CLOCK_TICK))


ClockTaskType = Literal["mark_missing", "mark_timeout", "mark_unknown"]


@dataclass(frozen=True)
class ClockTask:
    type: ClockTaskType
    ts: float
    monitor_environment_id: int
    checkin_id: int | None = None


def encode_clock_task(task: ClockTask) -> bytes:
    value: dict[str, Any] = {
        "type": task.type,
        "ts": task.ts,
        "monitor_environment_id": task.monitor_environment_id,
    }
    if task.checkin_id is not None:
        value["checkin_id"] = task.checkin_id
    return orjson.dumps(value)


def decode_clock_task(data: bytes) -> ClockTask:
    topic = Topic.MONITORS_CLOCK_TASKS
    value = _json_object(data, topic)
    kind = value.get("type")
    if kind not in ("mark_missing", "mark_timeout", "mark_unknown"):
        raise CodecError(f"{topic}: unknown task type {kind!r}")
    for key in ("ts", "monitor_environment_id"):
        if key not in value:
            raise CodecError(f"{topic}: {key} is required")
    checkin_id = None
    if kind != "mark_missing":
        if "checkin_id" not in value:
            raise CodecError(f"{topic}: {kind} needs checkin_id")
        checkin_id = _int(value["checkin_id"], "checkin_id", topic)
    return ClockTask(
        kind,
        _number(value["ts"], "ts", topic),
        _int(value["monitor_environment_id"], "monitor_environment_id", topic),
        checkin_id,
    )


@dataclass(frozen=True)
class IncidentOccurrence:
    failed_checkin_id: int
    previous_checkin_ids: list[int]
    received_ts: int
    clock_tick_ts: int
    incident_id: int | None = None


def encode_incident_occurrence(item: IncidentOccurrence) -> bytes:
    value: dict[str, Any] = {
        "failed_checkin_id": item.failed_checkin_id,
        "previous_checkin_ids": item.previous_checkin_ids,
        "received_ts": item.received_ts,
        "clock_tick_ts": item.clock_tick_ts,
    }
    if item.incident_id is not None:
        value["incident_id"] = item.incident_id
    return orjson.dumps(value)


def decode_incident_occurrence(data: bytes) -> IncidentOccurrence:
    topic = Topic.MONITORS_INCIDENT_OCCURRENCES
    value = _json_object(data, topic)
    for key in ("failed_checkin_id", "previous_checkin_ids", "received_ts", "clock_tick_ts"):
        if key not in value:
            raise CodecError(f"{topic}: {key} is required")
    previous = value["previous_checkin_ids"]
    if not isinstance(previous, list):
        raise CodecError(f"{topic}: previous_checkin_ids must be a list")
    incident_id = value.get("incident_id")
    return IncidentOccurrence(
        _int(value["failed_checkin_id"], "failed_checkin_id", topic),
        [_int(v, "previous_checkin_ids[]", topic) for v in previous],
        _int(value["received_ts"], "received_ts", topic),
        _int(value["clock_tick_ts"], "clock_tick_ts", topic),
        None if incident_id is None else _int(incident_id, "incident_id", topic),
    )
