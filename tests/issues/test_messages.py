"""The producer side of ingest-occurrences: keys, values and their errors (spec A2, A7)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.issues.enums import PayloadType
from vigil.issues.group_types import get_group_type_by_id
from vigil.issues.messages import build_message, message_key, payload_type_of
from vigil.issues.occurrence import (
    IssueEvidence,
    IssueOccurrence,
    no_assignees,
    normalise_occurrence,
)
from vigil.issues.status_change_message import new_status_change, normalise_status_change

EVENT_ID = "e" * 32


def occurrence(**changes: Any) -> IssueOccurrence:
    values: dict[str, Any] = {
        "id": "a" * 32,
        "project_id": 7,
        "event_id": EVENT_ID,
        "fingerprint": ("my-monitor:failure", "second"),
        "issue_title": "Monitor failure: job",
        "subtitle": "failed",
        "resource_id": None,
        "evidence_data": {},
        "evidence_display": (IssueEvidence("Failure reason", "missed", True),),
        "type": get_group_type_by_id(4001),
        "detection_time": datetime(2024, 6, 6, 22, 43, 1, 100000, tzinfo=UTC),
        "level": "error",
    }
    values.update(changes)
    return IssueOccurrence(**values)


@pytest.mark.parametrize(
    ("fingerprint", "project_id", "key"),
    [
        (["abc"], 1, b"abc-1"),
        (("first", "second"), 42, b"first-42"),
        (["ünï"], 3, "ünï-3".encode()),
        ([], 1, None),
    ],
)
def test_message_key(fingerprint: list[str], project_id: int, key: bytes | None) -> None:
    assert message_key(fingerprint, project_id) == key


def test_occurrence_message() -> None:
    msg = build_message(occurrence=occurrence())
    assert msg.key == b"my-monitor:failure-7"  # the raw first part, not its hash
    assert msg.value == {**occurrence().to_dict(), "payload_type": "occurrence"}
    assert "event" not in msg.value and "is_buffered_spans" not in msg.value


def test_occurrence_message_with_event_and_buffered_spans() -> None:
    event = {"event_id": EVENT_ID, "project_id": 7, "platform": "other", "timestamp": 1.0}
    msg = build_message(
        PayloadType.OCCURRENCE, occurrence=occurrence(), event_data=event, is_buffered_spans=True
    )
    assert msg.value["event"] == event
    assert msg.value["is_buffered_spans"] is True


def test_empty_event_data_is_left_out() -> None:
    assert "event" not in build_message(occurrence=occurrence(), event_data={}).value


def test_occurrence_must_be_provided() -> None:
    with pytest.raises(ValueError) as info:
        build_message("occurrence")
    assert str(info.value) == "occurrence must be provided"


def test_event_id_must_match() -> None:
    with pytest.raises(ValueError) as info:
        build_message(occurrence=occurrence(), event_data={"event_id": "f" * 32})
    assert str(info.value) == "Event id on occurrence and event_data must be the same"


def test_status_change_message() -> None:
    change = new_status_change(["my-monitor:failure"], 7, 1, message_id="c" * 32)
    msg = build_message("status_change", status_change=change)
    assert msg.key == b"my-monitor:failure-7"
    assert msg.value == {
        "fingerprint": ["my-monitor:failure"],
        "project_id": 7,
        "new_status": 1,
        "new_substatus": None,
        "id": "c" * 32,
        "payload_type": "status_change",
    }


def test_status_change_must_be_provided() -> None:
    with pytest.raises(ValueError) as info:
        build_message(PayloadType.STATUS_CHANGE, occurrence=occurrence())
    assert str(info.value) == "status_change must be provided"


def test_unknown_payload_type() -> None:
    with pytest.raises(NotImplementedError) as info:
        build_message("bogus", occurrence=occurrence())
    assert str(info.value) == "Unknown payload type: bogus"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({}, PayloadType.OCCURRENCE),
        ({"payload_type": None}, PayloadType.OCCURRENCE),
        ({"payload_type": "occurrence"}, PayloadType.OCCURRENCE),
        ({"payload_type": "status_change"}, PayloadType.STATUS_CHANGE),
        ({"payload_type": "something_else"}, None),
        ({"payload_type": 1}, None),
        ({"payload_type": ["occurrence"]}, None),
    ],
)
def test_payload_type_of(payload: dict[str, Any], kind: PayloadType | None) -> None:
    assert payload_type_of(payload) is kind


def test_what_producers_write_the_consumer_reads() -> None:
    occ = occurrence()
    value = build_message(occurrence=occ).value
    back = normalise_occurrence(
        value, resolve_assignee=no_assignees, now=datetime(2025, 1, 1, tzinfo=UTC)
    ).occurrence
    assert back.id == occ.id
    assert back.detection_time == occ.detection_time
    assert back.fingerprint != occ.fingerprint and len(back.fingerprint) == 2

    change = new_status_change(["fp"], 7, 2, 5)
    read = normalise_status_change(build_message("status_change", status_change=change).value)
    assert (read.id, read.project_id, read.new_status, read.new_substatus) == (change.id, 7, 2, 5)
