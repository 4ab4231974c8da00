"""`vigil.issues.produce_occurrence` / `produce_status_change` (spec A7) write to the real
log on both backends: the key on the raw first fingerprint part, the value the consumer
decodes, and the errors raised before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from tests.support.log_reader import read_messages
from vigil.config import Settings
from vigil.issues import produce_occurrence, produce_status_change
from vigil.issues.enums import GroupStatus, GroupSubStatus
from vigil.issues.group_types import get_group_type_by_id
from vigil.issues.occurrence import (
    IssueEvidence,
    IssueOccurrence,
    no_assignees,
    normalise_occurrence,
)
from vigil.issues.produce import payload_producer
from vigil.issues.status_change_message import new_status_change, normalise_status_change
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.codecs import decode_occurrence_message
from vigil.streams.topics import Topic

OCCURRENCES = Topic.INGEST_OCCURRENCES.value
EVENT_ID = "e" * 32
NOW = datetime(2024, 6, 6, 22, 43, 1, tzinfo=UTC)


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics()
    yield backend
    backend.close()


def occurrence(**changes: Any) -> IssueOccurrence:
    values: dict[str, Any] = {
        "id": "a" * 32,
        "project_id": 7,
        "event_id": EVENT_ID,
        "fingerprint": ("nightly-job:failure", "second"),
        "issue_title": "Monitor failure: nightly",
        "subtitle": "missed",
        "resource_id": None,
        "evidence_data": {"monitor": "nightly"},
        "evidence_display": (IssueEvidence("Failure reason", "missed", True),),
        "type": get_group_type_by_id(4001),
        "detection_time": NOW,
        "level": "error",
    }
    values.update(changes)
    return IssueOccurrence(**values)


def event(**changes: Any) -> dict[str, Any]:
    return {
        "event_id": EVENT_ID,
        "project_id": 7,
        "platform": "python",
        "timestamp": NOW.timestamp(),
        "tags": {"environment": "production"},
        **changes,
    }


def test_occurrence_lands_keyed_on_the_raw_first_fingerprint_part(
    stack: Settings, log_backend: LogBackend
) -> None:
    sent = produce_occurrence(log_backend, stack, occurrence())
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key == b"nightly-job:failure-7"
    value = decode_occurrence_message(payload.value)
    assert value == {**occurrence().to_dict(), "payload_type": "occurrence"}
    assert value == sent.value
    # What was produced is what the consumer accepts, with the parts hashed there.
    normalised = normalise_occurrence(value, resolve_assignee=no_assignees, now=NOW)
    assert normalised.occurrence.fingerprint[0] != "nightly-job:failure"
    assert normalised.event_data is None


def test_occurrence_with_its_event_and_buffered_spans(
    stack: Settings, log_backend: LogBackend
) -> None:
    producer = log_backend.get_producer()
    try:
        produce_occurrence(producer, stack, occurrence(), event_data=event())
        produce_occurrence(
            producer, stack, occurrence(id="b" * 32), event_data=event(), is_buffered_spans=True
        )
    finally:
        producer.close().result(timeout=30)
    first, second = (
        orjson.loads(p.value) for p in read_messages(stack, log_backend, OCCURRENCES, 2)
    )
    assert first["event"] == event()
    assert "is_buffered_spans" not in first
    assert second["is_buffered_spans"] is True
    normalised = normalise_occurrence(first, resolve_assignee=no_assignees, now=NOW)
    assert normalised.event_data is not None
    assert normalised.event_data["event_id"] == EVENT_ID


def test_status_change_lands_keyed_like_its_occurrences(
    stack: Settings, log_backend: LogBackend
) -> None:
    change = new_status_change(
        ["nightly-job:failure"], 7, GroupStatus.IGNORED, GroupSubStatus.FOREVER
    )
    produce_status_change(log_backend, stack, change)
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key == b"nightly-job:failure-7"
    value = orjson.loads(payload.value)
    assert value == {
        "payload_type": "status_change",
        "id": change.id,
        "fingerprint": ["nightly-job:failure"],
        "project_id": 7,
        "new_status": 2,
        "new_substatus": 5,
    }
    assert normalise_status_change(value).new_substatus == GroupSubStatus.FOREVER


def test_an_empty_fingerprint_is_produced_without_a_key(
    stack: Settings, log_backend: LogBackend
) -> None:
    sent = produce_occurrence(log_backend, stack, occurrence(fingerprint=()))
    assert sent.key is None
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key is None


def test_payload_producer_writes_a_built_payload_with_its_key(
    stack: Settings, log_backend: LogBackend
) -> None:
    produce = payload_producer(log_backend, stack)
    produce({"payload_type": "status_change", "project_id": 3}, "abc-3")
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert payload.key == b"abc-3"
    assert orjson.loads(payload.value) == {"payload_type": "status_change", "project_id": 3}


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda b, s: produce_occurrence(b, s, None), "occurrence must be provided"),
        (
            lambda b, s: produce_occurrence(
                b, s, occurrence(), event_data=event(event_id="f" * 32)
            ),
            "Event id on occurrence and event_data must be the same",
        ),
        (lambda b, s: produce_status_change(b, s, None), "status_change must be provided"),
    ],
)
def test_what_cannot_be_built_raises_before_anything_is_written(
    stack: Settings, log_backend: LogBackend, call: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        call(log_backend, stack)
    produce_occurrence(log_backend, stack, occurrence(id="c" * 32))
    [payload] = read_messages(stack, log_backend, OCCURRENCES, 1)
    assert orjson.loads(payload.value)["id"] == "c" * 32
