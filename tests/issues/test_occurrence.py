"""Normalising and validating occurrence messages (spec A2.1, A3.1, A3.5), including the
reference's example message from ../shared."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from vigil.issues.errors import EventPayloadValidationError, InvalidEventPayloadError
from vigil.issues.event_data import EventSchema
from vigil.issues.fingerprint import md5_hex
from vigil.issues.group_types import get_group_type_by_id
from vigil.issues.occurrence import (
    IssueEvidence,
    IssueOccurrence,
    check_event_ids,
    check_occurrence_event,
    no_assignees,
    normalise_occurrence,
    parse_actor,
    parse_detection_time,
)

SHARED = Path(__file__).resolve().parents[3] / "shared"
EXAMPLE = (
    SHARED / "vendor-data/sentry-kafka-schemas/examples/ingest-occurrences/1/monitor-failure.json"
)
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
OCC_ID = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
OCC_HEX = "3f2504e04f8911d39a0c0305e82c3301"
EVENT_HEX = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def payload(**changes: Any) -> dict[str, Any]:
    """A valid occurrence without an embedded event; `changes` set (or, as ..., drop) keys."""
    data: dict[str, Any] = {
        "id": OCC_ID,
        "project_id": 1,
        "event_id": EVENT_HEX,
        "fingerprint": ["some-fingerprint"],
        "issue_title": "something bad happened",
        "subtitle": "it was bad",
        "type": 1001,
        "detection_time": 1717713781.1,
        "evidence_data": {"a": 1},
        "evidence_display": [{"name": "n", "value": "v", "important": True}],
    }
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def event(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "event_id": EVENT_HEX,
        "project_id": 1,
        "platform": "python",
        "timestamp": "2024-06-06T22:43:01+00:00",
        "tags": {"a": "b"},
    }
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def normalise(data: dict[str, Any], resolver: Any = no_assignees) -> Any:
    return normalise_occurrence(data, resolve_assignee=resolver, now=NOW)


def test_vendor_example_decodes() -> None:
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} not found: the shared/ folder must sit beside the project")
    message = json.loads(EXAMPLE.read_text())
    result = normalise(message)
    occ = result.occurrence
    assert occ.id == "a" * 32
    assert occ.project_id == 1
    assert occ.event_id == "b" * 32
    assert occ.fingerprint == (md5_hex("c" * 32),)
    assert occ.issue_title == "Monitor failure: poll_service"
    assert occ.subtitle == "Your monitor has reached its failure threshold."
    assert occ.type.type_id == 4001
    assert occ.detection_time == datetime.fromtimestamp(1717713781.1, UTC)
    assert (occ.level, occ.culprit, occ.assignee, occ.resource_id) == ("error", "", None, None)
    assert occ.initial_issue_priority == 75  # the cron type's default, HIGH
    assert occ.important_evidence_display == IssueEvidence(
        "Failure reason", "A missed check-in was detected", True
    )
    assert len(occ.evidence_display) == 3
    assert result.is_buffered_spans is False
    assert result.event_validation.schema is EventSchema.CURRENT
    data = result.event_data
    assert data["event_id"] == "b" * 32
    assert data["level"] == "error"
    assert data["platform"] == "other"
    assert data["environment"] == "us"
    assert data["contexts"]["monitor"]["slug"] == "poll_service"
    assert data["tags"]["monitor.slug"] == "poll_service"
    assert data["received"] == "2024-06-06T22:43:01.100000+00:00"
    assert data["metadata"] == {"title": "Monitor failure: poll_service"}
    assert data["type"] == "generic"
    assert "fingerprint" not in data  # not one of the fields copied from the event
    check_event_ids(occ, data)  # consistent


@pytest.mark.parametrize(
    "given",
    [
        OCC_ID,
        OCC_HEX,
        OCC_ID.upper(),
        "{" + OCC_ID + "}",
        "urn:uuid:" + OCC_ID,
    ],
)
def test_occurrence_id_any_uuid_form(given: str) -> None:
    assert normalise(payload(id=given)).occurrence.id == OCC_HEX


@pytest.mark.parametrize("given", [EVENT_HEX, "BBBBBBBB-BBBB-BBBB-BBBB-BBBBBBBBBBBB"])
def test_event_id_any_uuid_form(given: str) -> None:
    assert normalise(payload(event_id=given)).occurrence.event_id == EVENT_HEX


def test_fingerprint_parts_are_md5_hashed_in_order() -> None:
    occ = normalise(payload(fingerprint=["a", "b", "a"])).occurrence
    assert occ.fingerprint == (
        "0cc175b9c0f1b6a831c399e269772661",
        "92eb5ffee6ae2fec3ad71c777531578f",
        "0cc175b9c0f1b6a831c399e269772661",
    )


def test_defaults() -> None:
    occ = normalise(payload()).occurrence
    assert occ.level == "info"
    assert occ.culprit == ""
    assert occ.resource_id is None
    assert occ.assignee is None
    assert occ.initial_issue_priority == 25  # type 1001's default, LOW
    assert occ.priority == 25


@pytest.mark.parametrize(
    ("changes", "level", "culprit"),
    [
        ({"level": "error"}, "error", ""),
        ({"level": ""}, "info", ""),
        ({"level": None}, "info", ""),
        ({"culprit": "api/123"}, "info", "api/123"),
        ({"culprit": ""}, "info", ""),
        ({"culprit": None}, "info", ""),
    ],
)
def test_level_and_culprit(changes: dict[str, Any], level: str, culprit: str) -> None:
    occ = normalise(payload(**changes)).occurrence
    assert (occ.level, occ.culprit) == (level, culprit)


@pytest.mark.parametrize(
    ("changes", "priority"),
    [
        ({}, 25),
        ({"initial_issue_priority": None}, 25),
        ({"initial_issue_priority": 75}, 75),
        ({"initial_issue_priority": 0}, 0),
        ({"priority": 50}, 50),  # the newer field name
        ({"initial_issue_priority": 75, "priority": 50}, 75),
        ({"type": 4001}, 75),
        ({"type": 6001}, 50),
    ],
)
def test_priority(changes: dict[str, Any], priority: int) -> None:
    assert normalise(payload(**changes)).occurrence.initial_issue_priority == priority


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (1717713781.1, datetime.fromtimestamp(1717713781.1, UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        ("2024-06-06T22:43:01", datetime(2024, 6, 6, 22, 43, 1, tzinfo=UTC)),
        ("2024-06-06T22:43:01Z", datetime(2024, 6, 6, 22, 43, 1, tzinfo=UTC)),
        ("2024-06-06T22:43:01.5+00:00", datetime(2024, 6, 6, 22, 43, 1, 500000, tzinfo=UTC)),
        ("2024-06-07T00:43:01+02:00", datetime(2024, 6, 6, 22, 43, 1, tzinfo=UTC)),
    ],
)
def test_detection_time(given: object, expected: datetime) -> None:
    result = parse_detection_time(given)
    assert result == expected
    assert result.tzinfo is not None
    assert normalise(payload(detection_time=given)).occurrence.detection_time == expected


@pytest.mark.parametrize(
    "given", ["yesterday", "", None, True, [1], float("nan"), float("inf"), 1e20]
)
def test_bad_detection_time(given: object) -> None:
    with pytest.raises(InvalidEventPayloadError, match="detection_time"):
        normalise(payload(detection_time=given))


def test_assignee_is_resolved_within_the_organization() -> None:
    seen: list[str] = []

    def resolver(text: str) -> str | None:
        seen.append(text)
        return "user:7" if text == "user:7" else None

    assert normalise(payload(assignee="user:7"), resolver).occurrence.assignee == "user:7"
    assert normalise(payload(assignee="team:9"), resolver).occurrence.assignee is None
    assert normalise(payload(assignee=""), resolver).occurrence.assignee is None
    assert normalise(payload(assignee=None), resolver).occurrence.assignee is None
    assert normalise(payload(assignee=42), resolver).occurrence.assignee is None
    assert seen == ["user:7", "team:9"]


@pytest.mark.parametrize(
    ("text", "actor"),
    [
        ("user:1", ("user", 1)),
        ("team:42", ("team", 42)),
        ("user:", None),
        ("user:x", None),
        ("org:1", None),
        ("someone@example.com", None),
        ("user:-1", None),
        ("user:\u0661", None),
    ],
)
def test_parse_actor(text: str, actor: tuple[str, int] | None) -> None:
    assert parse_actor(text) == actor


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": ...}, "Missing required field: id"),
        ({"project_id": ...}, "Missing required field: project_id"),
        ({"fingerprint": ...}, "Missing required field: fingerprint"),
        ({"issue_title": ...}, "Missing required field: issue_title"),
        ({"subtitle": ...}, "Missing required field: subtitle"),
        ({"type": ...}, "Missing required field: type"),
        ({"detection_time": ...}, "Missing required field: detection_time"),
        ({"id": "not-a-uuid"}, "id is not a valid UUID: 'not-a-uuid'"),
        ({"id": 12}, "id must be a UUID string"),
        ({"event_id": "nope"}, "event_id is not a valid UUID: 'nope'"),
        ({"project_id": "1"}, "project_id must be an integer"),
        ({"project_id": True}, "project_id must be an integer"),
        ({"fingerprint": "abc"}, "fingerprint must be a list of strings"),
        ({"fingerprint": [1]}, "fingerprint must be a list of strings"),
        ({"fingerprint": []}, "fingerprint must be non-empty"),
        ({"issue_title": None}, "issue_title must be a string"),
        ({"subtitle": 3}, "subtitle must be a string"),
        ({"type": 31337}, "No group type with the id 31337 is registered."),
        ({"type": "4001"}, "type must be an integer"),
        ({"evidence_data": ...}, "evidence_data must be an object"),
        ({"evidence_data": None}, "evidence_data must be an object"),
        ({"evidence_display": ...}, "evidence_display must be a list"),
        ({"evidence_display": [{"name": "n"}]}, r"evidence_display\[0\] must be an object"),
        ({"level": 40}, "level must be a string"),
        ({"culprit": 1}, "culprit must be a string"),
        ({"initial_issue_priority": "high"}, "initial_issue_priority must be an integer"),
        ({"event_id": ...}, "Payload must contain either event_id or event_data"),
        ({"event_id": ""}, "Payload must contain either event_id or event_data"),
        ({"event_id": None}, "Payload must contain either event_id or event_data"),
    ],
)
def test_invalid_payloads(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventPayloadError, match=message):
        normalise(payload(**changes))


def test_a_null_subtitle_is_no_subtitle() -> None:
    # The wire schema types it ["string", "null"]; the key must still be there.
    assert normalise(payload(subtitle=None)).occurrence.subtitle == ""


@pytest.mark.parametrize("data", [None, [], "occurrence", 5])
def test_payload_must_be_an_object(data: Any) -> None:
    with pytest.raises(InvalidEventPayloadError, match="payload must be a JSON object"):
        normalise(data)


# --- the embedded event ---


def test_event_project_must_match() -> None:
    with pytest.raises(InvalidEventPayloadError) as info:
        normalise(payload(event=event(project_id=2)))
    assert (
        str(info.value) == "project_id in occurrence (1) is different from project_id in event (2)"
    )


def test_missing_event_project_counts_as_a_mismatch() -> None:
    with pytest.raises(InvalidEventPayloadError) as info:
        normalise(payload(event=event(project_id=...)))
    assert str(info.value) == (
        "project_id in occurrence (1) is different from project_id in event (None)"
    )


def test_event_needs_an_event_id_somewhere() -> None:
    with pytest.raises(InvalidEventPayloadError) as info:
        normalise(payload(event_id=..., event=event(event_id=...)))
    assert str(info.value) == "Payload must contain an event_id"


def test_event_id_taken_from_the_event_as_given() -> None:
    dashed = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
    result = normalise(payload(event_id=..., event=event(event_id=dashed)))
    assert result.occurrence.event_id == dashed  # kept as given
    assert result.event_data["event_id"] == EVENT_HEX  # the event data gets the hex form
    with pytest.raises(ValueError) as info:
        check_event_ids(result.occurrence, result.event_data)
    assert str(info.value) == (
        f"event_id in occurrence({dashed}) is different from event_id in event_data({EVENT_HEX})"
    )


def test_event_id_from_the_event_in_hex_is_consistent() -> None:
    result = normalise(payload(event_id=..., event=event()))
    assert result.occurrence.event_id == EVENT_HEX
    check_event_ids(result.occurrence, result.event_data)


def test_top_level_event_id_used_when_the_event_has_none() -> None:
    result = normalise(payload(event=event(event_id=...)))
    assert result.event_data["event_id"] == EVENT_HEX
    check_event_ids(result.occurrence, result.event_data)


def test_mismatched_event_ids_are_kept_until_the_event_is_saved() -> None:
    other = "c" * 32
    result = normalise(payload(event=event(event_id=other)))
    assert result.occurrence.event_id == EVENT_HEX
    assert result.event_data["event_id"] == other
    with pytest.raises(ValueError, match="is different from event_id in event_data"):
        check_event_ids(result.occurrence, result.event_data)


def test_bad_event_event_id() -> None:
    with pytest.raises(InvalidEventPayloadError, match=r"event\.event_id is not a valid UUID"):
        normalise(payload(event=event(event_id="zzz")))


def test_event_must_be_an_object() -> None:
    with pytest.raises(InvalidEventPayloadError, match="event must be a JSON object"):
        normalise(payload(event="not an event"))


def test_null_event_means_no_event() -> None:
    result = normalise(payload(event=None))
    assert result.event_data is None
    assert result.event_validation is None


def test_event_data_fields() -> None:
    ev = event(
        level="fatal",  # ignored: the occurrence's level wins
        environment="prod",
        release="1.0",
        user={"id": "1"},
        message="dropped",
        exception={"values": []},
        received="2024-06-06T22:43:02+00:00",
    )
    data = normalise(payload(level="warning", event=ev)).event_data
    assert data == {
        "event_id": EVENT_HEX,
        "level": "warning",
        "project_id": 1,
        "platform": "python",
        "received": "2024-06-06T22:43:02+00:00",
        "tags": {"a": "b"},
        "timestamp": "2024-06-06T22:43:01+00:00",
        "environment": "prod",
        "release": "1.0",
        "user": {"id": "1"},
        "metadata": {"title": "something bad happened"},
        "type": "generic",
    }


def test_received_defaults_to_now() -> None:
    data = normalise(payload(event=event())).event_data
    assert data["received"] == NOW.isoformat()


def test_invalid_event_is_not_an_invalid_payload_error() -> None:
    with pytest.raises(EventPayloadValidationError) as info:
        normalise(payload(event=event(platform=...)))
    assert not isinstance(info.value, InvalidEventPayloadError | ValueError)


def test_event_valid_only_under_the_legacy_schema() -> None:
    result = normalise(payload(event=event(tags={"a": float("nan")})))
    assert result.event_validation.schema is EventSchema.LEGACY
    assert result.event_validation.current_errors


@pytest.mark.parametrize(
    ("key", "flag"), [("is_buffered_spans", True), ("is_buffered_segment", True)]
)
def test_buffered_spans(key: str, flag: bool) -> None:
    assert normalise(payload(**{key: flag}, event=event())).is_buffered_spans is flag
    assert normalise(payload(event=event())).is_buffered_spans is False


# --- the occurrence object ---


def test_occurrence_equality_and_hash_by_id() -> None:
    a = normalise(payload()).occurrence
    b = normalise(payload(issue_title="another title", fingerprint=["x"])).occurrence
    c = normalise(payload(id="f" * 32)).occurrence
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    assert a != "not an occurrence"


def test_occurrence_dict_round_trip() -> None:
    occ = normalise(payload(assignee="user:1", culprit="x"), lambda s: s).occurrence
    data = occ.to_dict()
    assert data["type"] == 1001
    assert data["detection_time"] == 1717713781.1
    assert data["evidence_display"] == [{"name": "n", "value": "v", "important": True}]
    assert json.loads(json.dumps(data)) == data
    back = IssueOccurrence.from_dict(data)
    assert back.to_dict() == data


def test_naive_detection_time_is_refused_by_the_object() -> None:
    occ = normalise(payload()).occurrence
    with pytest.raises(ValueError, match="timezone-aware"):
        IssueOccurrence(**{**occ.__dict__, "detection_time": datetime(2024, 1, 1)})


def test_important_evidence_is_the_first_important_row() -> None:
    rows = [
        {"name": "a", "value": "1", "important": False},
        {"name": "b", "value": "2", "important": True},
        {"name": "c", "value": "3", "important": True},
    ]
    occ = normalise(payload(evidence_display=rows)).occurrence
    assert occ.important_evidence_display == IssueEvidence("b", "2", True)
    none_important = normalise(payload(evidence_display=rows[:1])).occurrence
    assert none_important.important_evidence_display is None
    assert normalise(payload(evidence_display=[])).occurrence.important_evidence_display is None


def test_occurrence_must_match_its_event() -> None:
    occ = normalise(payload()).occurrence
    check_occurrence_event(occ, EVENT_HEX)
    with pytest.raises(ValueError) as info:
        check_occurrence_event(occ, "c" * 32)
    assert str(info.value) == "IssueOccurrence must have the same event_id as the passed Event"


def test_normalising_does_not_change_the_payload() -> None:
    original = payload(event=event(), assignee="user:1")
    snapshot = copy.deepcopy(original)
    normalise(original)
    assert original == snapshot


def test_aware_non_utc_detection_time_keeps_the_instant() -> None:
    tz = timezone(timedelta(hours=-5))
    given = datetime(2024, 1, 1, 12, tzinfo=tz)
    assert parse_detection_time(given.isoformat()) == given


def test_group_type_object_is_the_registered_one() -> None:
    assert normalise(payload(type=4001)).occurrence.type is get_group_type_by_id(4001)
