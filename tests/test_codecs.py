"""One codec per topic, proven against the reference's example messages (read from
../shared at run time) and against hostile input."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.streams import codecs
from vigil.streams.codecs import CodecError

SHARED = Path(__file__).resolve().parents[2] / "shared"
EXAMPLES = SHARED / "vendor-data" / "sentry-kafka-schemas" / "examples"


def example(path: str) -> bytes:
    file = EXAMPLES / path
    if not file.exists():
        pytest.skip(f"{file} not found: the shared/ folder must sit beside the project")
    return file.read_bytes()


def test_reference_check_in_decodes() -> None:
    msg = codecs.decode_monitor_message(example("ingest-monitors/1/checkin.msgpack"))
    assert isinstance(msg, codecs.CheckInMessage)
    assert msg.project_id == 1
    assert msg.sdk == "sentry.javascript.node/7.44.1"
    assert msg.retention_days == 90
    assert msg.start_time == 1713973672.0
    payload = msg.payload_json()
    assert payload["monitor_slug"] == "my-example-monitor"
    assert payload["check_in_id"] == "19897db925604bdb888503948a180a5e"


def test_reference_clock_pulse_decodes() -> None:
    msg = codecs.decode_monitor_message(example("ingest-monitors/1/clock_pulse.msgpack"))
    assert isinstance(msg, codecs.ClockPulse)


def test_check_in_round_trip_matches_reference_shape() -> None:
    original = codecs.decode_monitor_message(example("ingest-monitors/1/checkin.msgpack"))
    assert isinstance(original, codecs.CheckInMessage)
    encoded = codecs.encode_monitor_message(original)
    raw = msgpack.unpackb(encoded, raw=False)
    fields = {"message_type", "payload", "start_time", "project_id", "sdk", "retention_days"}
    assert set(raw) == fields
    assert codecs.decode_monitor_message(encoded) == original


@pytest.mark.parametrize("name", ["mark_missing", "mark_timeout", "mark_unknown"])
def test_reference_clock_tasks_decode(name: str) -> None:
    data = example(f"monitors-clock-tasks/1/{name}.json")
    task = codecs.decode_clock_task(data)
    assert task.type == name
    assert task.ts == 1714072962
    assert task.monitor_environment_id == 1
    assert task.checkin_id == (None if name == "mark_missing" else 1)
    assert json.loads(codecs.encode_clock_task(task)) == json.loads(data)


def test_reference_clock_tick_decodes() -> None:
    data = example("monitors-clock-tick/1/example.json")
    tick = codecs.decode_clock_tick(data)
    assert tick.ts == 1714072962
    assert json.loads(codecs.encode_clock_tick(tick)) == json.loads(data)


def test_reference_incident_occurrence_decodes() -> None:
    data = example("monitors-incident-occurrences/1/example.json")
    item = codecs.decode_incident_occurrence(data)
    assert item.failed_checkin_id == 123456
    assert item.previous_checkin_ids == [111222, 333444, 555666]
    assert item.incident_id == 987654
    assert json.loads(codecs.encode_incident_occurrence(item)) == json.loads(data)


def test_reference_occurrence_decodes() -> None:
    value = codecs.decode_occurrence_message(example("ingest-occurrences/1/monitor-failure.json"))
    assert value["type"] == 4001
    assert isinstance(value["fingerprint"], list)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xc1", "not msgpack"),
        (msgpack.packb([1, 2]), "must be a msgpack map"),
        (msgpack.packb({"message_type": "nope"}), "unknown ingest-monitors message_type"),
        (msgpack.packb({"message_type": "check_in"}), "lacks payload, start_time"),
        (
            msgpack.packb(
                {
                    "message_type": "check_in",
                    "payload": b"{}",
                    "start_time": "soon",
                    "project_id": 1,
                    "retention_days": 90,
                }
            ),
            "start_time must be a number",
        ),
        (
            msgpack.packb(
                {
                    "message_type": "check_in",
                    "payload": b"{}",
                    "start_time": 1.0,
                    "project_id": -1,
                    "retention_days": 90,
                }
            ),
            "project_id must be an unsigned integer",
        ),
    ],
)
def test_bad_monitor_messages_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codecs.decode_monitor_message(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"type": "mark_everything", "ts": 1, "monitor_environment_id": 1}', "unknown task type"),
        (b'{"type": "mark_timeout", "ts": 1, "monitor_environment_id": 1}', "needs checkin_id"),
        (b'{"type": "mark_missing", "ts": "x", "monitor_environment_id": 1}', "ts must be"),
        (b'{"type": "mark_missing", "ts": NaN, "monitor_environment_id": 1}', "not JSON"),
    ],
)
def test_bad_clock_tasks_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codecs.decode_clock_task(data)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_other_errors(data: bytes) -> None:
    for decode in (
        codecs.decode_monitor_message,
        codecs.decode_clock_tick,
        codecs.decode_clock_task,
        codecs.decode_incident_occurrence,
        codecs.decode_occurrence_message,
    ):
        with contextlib.suppress(CodecError):
            decode(data)
