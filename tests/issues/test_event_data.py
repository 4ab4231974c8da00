"""The embedded event: which fields are kept, and the observable behaviour of the
current and legacy event schemas (spec A2.2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.issues.errors import EventPayloadValidationError
from vigil.issues.event_data import (
    EVENT_FIELDS_ALWAYS,
    EVENT_FIELDS_WHEN_PRESENT,
    EventSchema,
    build_event_data,
    current_schema_errors,
    finish_event_data,
    legacy_schema_errors,
    validate_event_data,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def data(**changes: Any) -> dict[str, Any]:
    """Event data valid under both schemas; `changes` set (or, as ..., drop) keys."""
    base: dict[str, Any] = {
        "event_id": "a" * 32,
        "level": "error",
        "project_id": 1,
        "platform": "python",
        "received": "2024-01-01T00:00:00+00:00",
        "tags": {"k": "v"},
        "timestamp": "2024-01-01T00:00:00+00:00",
    }
    for key, value in changes.items():
        if value is ...:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def test_the_base_is_valid_under_both() -> None:
    assert current_schema_errors(data()) == []
    assert legacy_schema_errors(data()) == []
    assert validate_event_data(data()).schema is EventSchema.CURRENT


# Invalid under both schemas: a ValidationError propagates.
@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": ...},
        {"platform": ...},
        {"platform": 0},
        {"tags": "tagged"},
        {"timestamp": "not a time"},
        {"timestamp": None},
        {"platform": None},
    ],
)
def test_invalid_under_both(changes: dict[str, Any]) -> None:
    assert current_schema_errors(data(**changes))
    assert legacy_schema_errors(data(**changes))
    with pytest.raises(EventPayloadValidationError):
        validate_event_data(data(**changes))


# Valid under the current schema (the legacy one may disagree: it is not consulted).
@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": 0},
        {"timestamp": 1717713781.1},
        {"tags": ...},
        {"tags": None},
        {"tags": [["a", "b"], ["c", None]]},
        {"debug_meta": {}},
        {"debug_meta": None},
        {"debug_meta": {"images": []}},
        {"debug_meta": {"images": None}},
        {"debug_meta": {"images": [{}]}},
        {"stacktrace": {"frames": [{"filename": "a.py", "data": {"x": 1}}]}},
        {"stacktrace": {"frames": None}},
        {"breadcrumbs": {"values": [{"message": "m"}]}},
        {"breadcrumbs": [{"message": "m"}]},
        {"contexts": {"monitor": {"slug": "s"}}},
        {"sdk": None},
        {"environment": "prod", "release": "1.0", "dist": "1", "server_name": "h"},
        {"transaction": "/api", "trace_id": "t" * 32},
        {"user": {"id": 1}, "request": {"url": "u"}, "extra": {}, "modules": {"m": "1"}},
        {"unknown_key": 1},
        {"level": ...},
        {"project_id": ...},
        {"event_id": "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"},
    ],
)
def test_valid_under_the_current_schema(changes: dict[str, Any]) -> None:
    assert current_schema_errors(data(**changes)) == []
    assert validate_event_data(data(**changes)).schema is EventSchema.CURRENT


# Invalid under the current schema but valid under the legacy one: passes, and the
# caller emits the event_payload_invalid metric and logs once.
@pytest.mark.parametrize(
    "changes",
    [
        {"tags": {"k": float("nan")}},
        {"tags": {"k": 5}},
        {"level": "verbose"},
        {"event_id": "not-a-uuid"},
        {"debug_meta": {"images": [1]}},
        {"stacktrace": {"frames": "x"}},
        {"contexts": "c"},
        {"release": 1},
        {"breadcrumbs": 3},
    ],
)
def test_falls_back_to_the_legacy_schema(changes: dict[str, Any]) -> None:
    result = validate_event_data(data(**changes))
    assert result.schema is EventSchema.LEGACY
    assert len(result.current_errors) >= 1


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"event_id": ...}, "event_id"),
        ({"level": ...}, "level"),
        ({"project_id": "1"}, "project_id"),
        ({"project_id": ...}, "project_id"),
        ({"tags": ...}, "tags"),
        ({"tags": [["a", "b"]]}, "tags"),
        ({"timestamp": 0}, "timestamp"),
        ({"exception": {}}, "unexpected properties: exception"),
    ],
)
def test_legacy_schema_requirements(changes: dict[str, Any], problem: str) -> None:
    errors = legacy_schema_errors(data(**changes))
    assert any(problem in e for e in errors), errors


def test_build_keeps_the_listed_fields_only() -> None:
    event: dict[str, Any] = {name: {"v": name} for name in EVENT_FIELDS_WHEN_PRESENT}
    event.update(
        platform="go",
        tags={"t": "1"},
        timestamp=5,
        received="r",
        level="debug",
        project_id=9,
        event_id="x",
        exception={"values": []},
        message="m",
        fingerprint=["f"],
    )
    built = build_event_data(event, event_id="e" * 32, level="error", project_id=1, now=NOW)
    assert set(built) == set(EVENT_FIELDS_ALWAYS) | set(EVENT_FIELDS_WHEN_PRESENT)
    assert (built["event_id"], built["level"], built["project_id"]) == ("e" * 32, "error", 1)
    assert (built["platform"], built["tags"], built["timestamp"], built["received"]) == (
        "go",
        {"t": "1"},
        5,
        "r",
    )


def test_build_always_fields_are_null_when_missing() -> None:
    built = build_event_data({}, event_id="e" * 32, level="info", project_id=1, now=NOW)
    assert built == {
        "event_id": "e" * 32,
        "level": "info",
        "project_id": 1,
        "platform": None,
        "received": NOW.isoformat(),
        "tags": None,
        "timestamp": None,
    }


def test_finish_adds_metadata_title_and_generic_type() -> None:
    original = data()
    finished = finish_event_data(original, "The title")
    assert finished["metadata"] == {"title": "The title"}
    assert finished["type"] == "generic"
    assert "metadata" not in original
