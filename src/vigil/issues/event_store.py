"""Stored events (the reference's node store + Snuba, kept in the database): saving the
event an occurrence carries, looking up one an occurrence refers to, and the
lightweight in-memory event of buffered-span producers (spec A3.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from vigil.db.tables import event
from vigil.db.timestamps import as_utc
from vigil.issues.environment_store import MAX_ENVIRONMENT_CHARS, MAX_RELEASE_CHARS
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.grouping import event_datetime
from vigil.issues.rows import insert_if_absent

MAX_PLATFORM_CHARS = 64
MAX_EVENT_TYPE_CHARS = 32


@dataclass(frozen=True)
class StoredEvent:
    """An event as the issue platform sees it. `received`: when vigil got it (the
    producer's own `received` is in `data`). `stored` is False for a lightweight event
    that exists only while its occurrence is processed."""

    project_id: int
    event_id: str
    type: str
    timestamp: datetime
    received: datetime
    platform: str | None
    environment: str | None
    release: str | None
    tags: list[list[str]]
    data: dict[str, Any]
    stored: bool = True


def tag_pairs(tags: object) -> list[list[str]]:
    """Tags as [key, value] pairs, from an object or a list of pairs (others dropped)."""
    if isinstance(tags, Mapping):
        items: list[Any] = list(tags.items())
    elif isinstance(tags, list):
        items = [t for t in tags if isinstance(t, list | tuple) and len(t) == 2]
    else:
        return []
    return [[str(k), str(v)] for k, v in items if v is not None]


def _optional_text(data: Mapping[str, Any], key: str, limit: int) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidEventPayloadError(f"event {key} must be a string")
    if len(value) > limit:
        raise InvalidEventPayloadError(f"event {key} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidEventPayloadError(f"event {key} contains a NUL character")
    return value


def event_of(project_id: int, data: Mapping[str, Any], now: datetime) -> StoredEvent:
    """The event `data` describes, not stored. InvalidEventPayloadError if its
    timestamp, platform, environment or release cannot be stored."""
    try:
        timestamp = event_datetime(data.get("timestamp"))
    except (ValueError, OverflowError, OSError) as exc:
        raise InvalidEventPayloadError(f"event timestamp is not usable: {exc}") from None
    event_type = data.get("type") or "default"
    if not isinstance(event_type, str) or len(event_type) > MAX_EVENT_TYPE_CHARS:
        raise InvalidEventPayloadError("event type must be a short string")
    return StoredEvent(
        project_id=project_id,
        event_id=str(data["event_id"]),
        type=event_type,
        timestamp=timestamp,
        # When vigil got it, whatever the producer's `received` says (that stays in the
        # data): retention keeps an event for its days from here, and a detector's
        # example dated two years back must not go at the next hourly cleanup.
        received=now,
        platform=_optional_text(data, "platform", MAX_PLATFORM_CHARS),
        environment=_optional_text(data, "environment", MAX_ENVIRONMENT_CHARS),
        release=_optional_text(data, "release", MAX_RELEASE_CHARS),
        tags=tag_pairs(data.get("tags")),
        data=dict(data),
    )


def stored_event(row: Row[Any]) -> StoredEvent:
    """An event row as a StoredEvent."""
    return StoredEvent(
        project_id=row.project_id,
        event_id=row.event_id,
        type=row.type,
        timestamp=as_utc(row.timestamp),
        received=as_utc(row.received),
        platform=row.platform,
        environment=row.environment,
        release=row.release,
        tags=[list(pair) for pair in row.tags],
        data=dict(row.data),
    )


# Statements run for every occurrence are built once (building one costs more than
# running it on SQLite).
_BY_KEY = (event.c.project_id == bindparam("p_project"), event.c.event_id == bindparam("p_event"))
_GET = select(event).where(*_BY_KEY)
_LINK = update(event).where(*_BY_KEY, event.c.group_id.is_(None))


def get_event(conn: Connection, project_id: int, event_id: str) -> StoredEvent | None:
    """The stored event (project, event_id), or None."""
    row = conn.execute(_GET, {"p_project": project_id, "p_event": event_id}).first()
    return None if row is None else stored_event(row)


def save_event(
    conn: Connection,
    project_id: int,
    data: Mapping[str, Any],
    now: datetime,
    *,
    occurrence_id: str | None = None,
) -> StoredEvent:
    """Store the event `data` describes (its `event_id` must be 32 hex). Saving an event
    id the project already has stores nothing and returns the stored one, so a replayed
    message never makes a second event."""
    found = get_event(conn, project_id, str(data["event_id"]))
    if found is not None:
        return found
    new = event_of(project_id, data, now)
    if len(new.event_id) != 32:
        raise InvalidEventPayloadError(f"event_id is not a 32-digit hex UUID: {new.event_id!r}")
    stored = insert_if_absent(conn, event, event_row(new, occurrence_id))
    if not stored:  # a concurrent transaction stored it first
        winner = get_event(conn, project_id, new.event_id)
        assert winner is not None
        return winner
    return new


def event_row(new: StoredEvent, occurrence_id: str | None) -> dict[str, Any]:
    """The row that stores `new` (saved for the occurrence `occurrence_id`; in no group
    yet)."""
    return {
        "project_id": new.project_id,
        "event_id": new.event_id,
        "occurrence_id": occurrence_id,
        "group_id": None,
        "type": new.type,
        "timestamp": new.timestamp,
        "received": new.received,
        "platform": new.platform,
        "environment": new.environment,
        "release": new.release,
        "tags": new.tags,
        "data": new.data,
    }


def link_event_to_group(conn: Connection, project_id: int, event_id: str, group_id: int) -> None:
    """Record the group an event saved for an occurrence belongs to (if not set yet)."""
    conn.execute(_LINK, {"p_project": project_id, "p_event": event_id, "group_id": group_id})
