"""Status-change messages: built by producers, normalised by the consumer (spec A2.3)."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.fingerprint import md5_hex
from vigil.issues.status_change_message import (
    StatusChangeMessage,
    new_status_change,
    normalise_status_change,
)


def payload(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payload_type": "status_change",
        "id": "1" * 32,
        "fingerprint": ["fp-a", "fp-b"],
        "project_id": 3,
        "new_status": 1,
        "new_substatus": None,
    }
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def test_normalise_hashes_the_fingerprint() -> None:
    assert normalise_status_change(payload()) == StatusChangeMessage(
        id="1" * 32,
        fingerprint=(md5_hex("fp-a"), md5_hex("fp-b")),
        project_id=3,
        new_status=1,
        new_substatus=None,
    )


@pytest.mark.parametrize(("given", "expected"), [(..., None), (None, None), (5, 5), (99, 99)])
def test_substatus_defaults_to_null(given: Any, expected: int | None) -> None:
    assert normalise_status_change(payload(new_substatus=given)).new_substatus == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"id": ...}, "Missing required field: id"),
        ({"fingerprint": ...}, "Missing required field: fingerprint"),
        ({"project_id": ...}, "Missing required field: project_id"),
        ({"new_status": ...}, "Missing required field: new_status"),
        ({"id": ""}, "id must be a non-empty string"),
        ({"id": 7}, "id must be a non-empty string"),
        ({"fingerprint": []}, "fingerprint must be non-empty"),
        ({"fingerprint": "fp"}, "fingerprint must be a list of strings"),
        ({"fingerprint": [None]}, "fingerprint must be a list of strings"),
        ({"project_id": "3"}, "project_id must be an integer"),
        ({"new_status": "resolved"}, "new_status must be an integer"),
        ({"new_status": False}, "new_status must be an integer"),
        ({"new_substatus": "forever"}, "new_substatus must be an integer"),
    ],
)
def test_invalid(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEventPayloadError, match=message):
        normalise_status_change(payload(**changes))


def test_not_an_object() -> None:
    with pytest.raises(InvalidEventPayloadError, match="payload must be a JSON object"):
        normalise_status_change(["x"])  # type: ignore[arg-type]


def test_new_status_change_gets_a_fresh_hex_id() -> None:
    a = new_status_change(["fp"], 1, 1)
    b = new_status_change(["fp"], 1, 1)
    assert len(a.id) == 32 and int(a.id, 16) >= 0
    assert a.id != b.id
    assert a.fingerprint == ("fp",)  # raw on the producer side
    assert new_status_change(["fp"], 1, 2, 5, message_id="m").id == "m"


def test_new_status_change_needs_a_fingerprint() -> None:
    with pytest.raises(ValueError) as info:
        new_status_change([], 1, 1)
    assert str(info.value) == "fingerprint must be non-empty"


def test_dict_form() -> None:
    msg = new_status_change(["fp"], 4, 2, 5, message_id="abc")
    assert msg.to_dict() == {
        "fingerprint": ["fp"],
        "project_id": 4,
        "new_status": 2,
        "new_substatus": 5,
        "id": "abc",
    }
