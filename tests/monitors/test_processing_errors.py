"""Processing error types (B10): ids, the extra fields each carries, and the stored form."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorRecord,
    ProcessingErrorsException,
    ProcessingErrorType,
    extra_fields,
)

T = ProcessingErrorType

EXPECTED: list[tuple[ProcessingErrorType, int, set[str]]] = [
    (T.CHECKIN_ENVIRONMENT_MISMATCH, 0, {"existingEnvironment"}),
    (T.CHECKIN_FINISHED, 1, set()),
    (T.CHECKIN_GUID_PROJECT_MISMATCH, 2, {"guid"}),
    (T.CHECKIN_INVALID_DURATION, 3, {"duration"}),
    (T.CHECKIN_INVALID_GUID, 4, set()),
    (T.CHECKIN_VALIDATION_FAILED, 5, {"errors"}),
    (T.MONITOR_DISABLED, 6, set()),
    (T.MONITOR_DISABLED_NO_QUOTA, 7, set()),
    (T.MONITOR_INVALID_CONFIG, 8, {"errors"}),
    (T.MONITOR_INVALID_ENVIRONMENT, 9, {"reason"}),
    (T.MONITOR_LIMIT_EXCEEDED, 10, {"reason"}),
    (T.MONITOR_NOT_FOUND, 11, set()),
    (T.MONITOR_OVER_QUOTA, 12, set()),
    (T.MONITOR_ENVIRONMENT_LIMIT_EXCEEDED, 13, {"reason"}),
    (T.MONITOR_ENVIRONMENT_RATELIMITED, 14, set()),
    (T.ORGANIZATION_KILLSWITCH_ENABLED, 15, set()),
]


def test_there_are_exactly_the_sixteen_types_of_the_reference() -> None:
    assert [(t, int(t)) for t in ProcessingErrorType] == [(t, i) for t, i, _ in EXPECTED]


@pytest.mark.parametrize(("error_type", "value", "fields"), EXPECTED)
def test_each_type_carries_its_extra_fields(
    error_type: ProcessingErrorType, value: int, fields: set[str]
) -> None:
    assert extra_fields(error_type) == fields
    data: dict[str, Any] = {name: "x" for name in fields}
    error = ProcessingError(error_type, data)
    assert error.to_dict() == {"type": value, **data}
    assert ProcessingError.from_dict(error.to_dict()) == error


def test_missing_or_unexpected_fields_are_refused() -> None:
    with pytest.raises(ValueError):
        ProcessingError(T.CHECKIN_INVALID_DURATION)
    with pytest.raises(ValueError):
        ProcessingError(T.MONITOR_NOT_FOUND, {"reason": "x"})
    with pytest.raises(ValueError):
        ProcessingError.from_dict({"type": 16})


def test_an_exception_needs_errors_and_may_carry_a_monitor() -> None:
    with pytest.raises(ValueError):
        ProcessingErrorsException([])
    exc = ProcessingErrorsException([ProcessingError(T.MONITOR_NOT_FOUND)])
    assert exc.monitor is None
    assert str(exc) == "MONITOR_NOT_FOUND"


def test_a_record_is_plain_json_with_bytes_as_text() -> None:
    ts = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
    item = CheckinItem(
        ts,
        2,
        {"message_type": "check_in", "payload": b'{"monitor_slug":"a"}', "project_id": 1},
        {"monitor_slug": "a", "status": "ok"},
    )
    record = ProcessingErrorRecord("ab" * 16, item, (ProcessingError(T.MONITOR_NOT_FOUND),))
    assert record.to_dict() == {
        "id": "ab" * 16,
        "checkin": {
            "ts": "2026-03-01T12:00:05+00:00",
            "partition": 2,
            "message": {
                "message_type": "check_in",
                "payload": '{"monitor_slug":"a"}',
                "project_id": 1,
            },
            "payload": {"monitor_slug": "a", "status": "ok"},
        },
        "errors": [{"type": 11}],
    }
    assert CheckinItem.from_dict(item.to_dict()).ts == ts
