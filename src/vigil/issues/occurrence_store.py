"""Stored occurrences, retrievable by (id, project) (the reference's node store entry
"i-o:" + md5("{id}::{project_id}"), kept as a row)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select

from vigil.db.tables import issue_occurrence
from vigil.issues.group_types import GroupTypeRegistry, registry
from vigil.issues.occurrence import IssueOccurrence

MAX_LEVEL_CHARS = 32


# The statements run for every occurrence are built once (building one costs more than
# running it on SQLite).
_BY_KEY = (
    issue_occurrence.c.id == bindparam("p_id"),
    issue_occurrence.c.project_id == bindparam("p_project"),
)
_EXISTS = select(issue_occurrence.c.id).where(*_BY_KEY)
_INSERT = insert(issue_occurrence)


def occurrence_exists(conn: Connection, occurrence_id: str, project_id: int) -> bool:
    """Whether the occurrence is already stored for the project."""
    found = conn.execute(_EXISTS, {"p_id": occurrence_id, "p_project": project_id})
    return found.first() is not None


def store_occurrence(
    conn: Connection,
    occurrence: IssueOccurrence,
    now: datetime,
    *,
    group_id: int | None = None,
    event_time: datetime,
) -> None:
    """Store a new occurrence, in `group_id` (None: it went to no group), with its
    event's time (`event_time`)."""
    conn.execute(_INSERT, occurrence_row(occurrence, now, group_id=group_id, event_time=event_time))


def occurrence_row(
    occurrence: IssueOccurrence, now: datetime, *, group_id: int | None, event_time: datetime
) -> dict[str, Any]:
    """The row that stores the occurrence."""
    return dict(
        id=occurrence.id,
        project_id=occurrence.project_id,
        group_id=group_id,
        event_id=occurrence.event_id,
        fingerprint=list(occurrence.fingerprint),
        type=occurrence.type.type_id,
        issue_title=occurrence.issue_title,
        subtitle=occurrence.subtitle,
        resource_id=occurrence.resource_id,
        evidence_data=occurrence.evidence_data,
        evidence_display=[row.to_dict() for row in occurrence.evidence_display],
        detection_time=occurrence.detection_time,
        level=occurrence.level,
        culprit=occurrence.culprit,
        priority=occurrence.initial_issue_priority,
        assignee=occurrence.assignee,
        data=occurrence.to_dict(),
        timestamp=event_time,
        date_added=now,
    )


def get_occurrence(
    conn: Connection, occurrence_id: str, project_id: int, types: GroupTypeRegistry = registry
) -> IssueOccurrence | None:
    """The stored occurrence (id, project), or None."""
    data: Any = conn.execute(
        select(issue_occurrence.c.data).where(
            issue_occurrence.c.id == occurrence_id,
            issue_occurrence.c.project_id == project_id,
        )
    ).scalar_one_or_none()
    return None if data is None else IssueOccurrence.from_dict(data, types)
