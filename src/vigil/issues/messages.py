"""The messages of the `ingest-occurrences` topic as producers write them (spec A2, A7):
their key, their value, and telling the two payload types apart. No I/O: producing is
the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.issues.enums import PayloadType
from vigil.issues.occurrence import IssueOccurrence
from vigil.issues.status_change_message import StatusChangeMessage


@dataclass(frozen=True)
class OccurrenceMessage:
    """One message ready to produce: its key (None when there is no fingerprint to key
    by) and its JSON-able value."""

    key: bytes | None
    value: dict[str, Any]


def message_key(fingerprint: list[str] | tuple[str, ...], project_id: int) -> bytes | None:
    """`"{fingerprint[0]}-{project_id}"` in UTF-8, with the first part as the producer
    gave it (not hashed), so every message about one issue lands on one partition; None
    for an empty fingerprint."""
    if not fingerprint:
        return None
    return f"{fingerprint[0]}-{project_id}".encode()


def build_message(
    payload_type: str = PayloadType.OCCURRENCE,
    *,
    occurrence: IssueOccurrence | None = None,
    status_change: StatusChangeMessage | None = None,
    event_data: Mapping[str, Any] | None = None,
    is_buffered_spans: bool = False,
) -> OccurrenceMessage:
    """The message a producer writes for an occurrence (with its event, if any) or a
    status change. `occurrence.fingerprint` must hold the raw parts (the consumer hashes
    them).

    ValueError("occurrence must be provided"), ValueError("Event id on occurrence and
    event_data must be the same"), ValueError("status_change must be provided"), and
    NotImplementedError("Unknown payload type: <x>"), as the reference."""
    if payload_type == PayloadType.OCCURRENCE:
        if occurrence is None:
            raise ValueError("occurrence must be provided")
        if event_data and event_data.get("event_id") != occurrence.event_id:
            raise ValueError("Event id on occurrence and event_data must be the same")
        value = occurrence.to_dict()
        value["payload_type"] = PayloadType.OCCURRENCE.value
        if event_data:
            value["event"] = dict(event_data)
        if is_buffered_spans:
            value["is_buffered_spans"] = True
        return OccurrenceMessage(message_key(occurrence.fingerprint, occurrence.project_id), value)
    if payload_type == PayloadType.STATUS_CHANGE:
        if status_change is None:
            raise ValueError("status_change must be provided")
        value = status_change.to_dict()
        value["payload_type"] = PayloadType.STATUS_CHANGE.value
        return OccurrenceMessage(
            message_key(status_change.fingerprint, status_change.project_id), value
        )
    raise NotImplementedError(f"Unknown payload type: {payload_type}")


def payload_type_of(payload: Mapping[str, Any]) -> PayloadType | None:
    """The payload type of a decoded message: OCCURRENCE when `payload_type` is absent or
    null (older producers), None for a value that is neither kind (the consumer drops
    such a message with a metric)."""
    raw = payload.get("payload_type")
    if raw is None:
        return PayloadType.OCCURRENCE
    try:
        return PayloadType(raw)
    except ValueError:
        return None
