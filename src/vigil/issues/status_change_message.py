"""Status-change messages on `ingest-occurrences` (spec A2.3): the value object, building
one on the producer side, and normalising one on the consumer side. No I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.fingerprint import hash_fingerprint


@dataclass(frozen=True)
class StatusChangeMessage:
    """A request to set the status of the issue a fingerprint identifies.

    `fingerprint` holds the parts as the producer made them on the producer side, and
    their MD5s after `normalise_status_change`. `id` identifies the message (the
    consumer's dedupe key), not the issue."""

    id: str
    fingerprint: tuple[str, ...]
    project_id: int
    new_status: int
    new_substatus: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form, without `payload_type` (the message builder adds it)."""
        return {
            "fingerprint": list(self.fingerprint),
            "project_id": self.project_id,
            "new_status": self.new_status,
            "new_substatus": self.new_substatus,
            "id": self.id,
        }


def new_status_change(
    fingerprint: Sequence[str],
    project_id: int,
    new_status: int,
    new_substatus: int | None = None,
    *,
    message_id: str | None = None,
) -> StatusChangeMessage:
    """A status change to produce, with a fresh uuid4-hex id unless one is given.
    ValueError("fingerprint must be non-empty") for an empty fingerprint: such a message
    could never find its issue."""
    if not fingerprint:
        raise ValueError("fingerprint must be non-empty")
    return StatusChangeMessage(
        id=message_id if message_id is not None else uuid.uuid4().hex,
        fingerprint=tuple(fingerprint),
        project_id=project_id,
        new_status=new_status,
        new_substatus=new_substatus,
    )


def normalise_status_change(payload: Mapping[str, Any]) -> StatusChangeMessage:
    """Validate a status-change message and hash its fingerprint. Requires `id` (a
    string), `fingerprint` (a non-empty list of strings), `project_id` and `new_status`
    (integers); `new_substatus` is an integer or null (the default). Whether the status
    and substatus make sense together is decided later (`status_change.decide`).
    InvalidEventPayloadError with the reason otherwise."""
    if not isinstance(payload, Mapping):
        raise InvalidEventPayloadError("payload must be a JSON object")
    for key in ("id", "fingerprint", "project_id", "new_status"):
        if key not in payload:
            raise InvalidEventPayloadError(f"Missing required field: {key}")
    message_id = payload["id"]
    if not isinstance(message_id, str) or not message_id:
        raise InvalidEventPayloadError("id must be a non-empty string")
    fingerprint = payload["fingerprint"]
    if not isinstance(fingerprint, list) or not all(isinstance(p, str) for p in fingerprint):
        raise InvalidEventPayloadError("fingerprint must be a list of strings")
    if not fingerprint:
        raise InvalidEventPayloadError("fingerprint must be non-empty")
    project_id = _int(payload["project_id"], "project_id")
    new_status = _int(payload["new_status"], "new_status")
    substatus = payload.get("new_substatus")
    new_substatus = None if substatus is None else _int(substatus, "new_substatus")
    return StatusChangeMessage(
        id=message_id,
        fingerprint=hash_fingerprint(fingerprint),
        project_id=project_id,
        new_status=new_status,
        new_substatus=new_substatus,
    )


def _int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidEventPayloadError(f"{name} must be an integer")
    return value
