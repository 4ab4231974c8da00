"""Keeping processing errors (B10) where the user can see them. Every function takes an
open connection (the caller owns the transaction) and `now` (time is a parameter).

A record belongs to one entity: "monitor:{id}" when the error names a monitor or the
check-in's slug is one of the project's monitors, else "project:{id}". Each entity keeps
its 10 newest records (by the check-in message's time), none older than 7 days.

Storing must never stop the consumer: the caller runs `store` in a savepoint and only
logs a failure, as the reference does.
"""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Row, Select, and_, delete, select, update

from vigil.db.engine import serialize
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_processing_error as error_table
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorRecord,
    ProcessingErrorsException,
    ProcessingErrorType,
)

MAX_ERRORS_PER_ENTITY: Final = 10
ERROR_TTL: Final = timedelta(days=7)

# PostgreSQL advisory-lock key space of one entity's records (prefix | crc32 of entity).
_ENTITY_LOCK: Final = 0x6D70 << 48


class InvalidProjectError(Exception):
    """A record was to be deleted through a project it does not belong to
    (`owner_project_id`'s)."""

    def __init__(self, message: str, owner_project_id: int) -> None:
        super().__init__(message)
        self.owner_project_id = owner_project_id


def monitor_entity(monitor_id: int) -> str:
    """The entity a monitor's processing errors are kept under."""
    return f"monitor:{monitor_id}"


def project_entity(project_id: int) -> str:
    """The entity of a project's errors that concern no monitor."""
    return f"project:{project_id}"


def store(
    conn: Connection,
    exception: ProcessingErrorsException,
    item: CheckinItem,
    project_id: int,
    now: datetime,
) -> ProcessingErrorRecord:
    """Keep the errors of `exception` about the check-in `item` of `project_id`.

    The entity is the exception's monitor, else the project's monitor whose slug is the
    payload's `monitor_slug` as sent, else the project. After storing, the entity keeps
    only its 10 newest records, and records older than 7 days before `now` are dropped.
    Returns the record as reads will answer it (bytes in the message made text).
    """
    monitor_id = exception.monitor.id if exception.monitor is not None else None
    if monitor_id is None:
        monitor_id = _monitor_for_slug(conn, project_id, item.payload.get("monitor_slug"))
    entity = monitor_entity(monitor_id) if monitor_id is not None else project_entity(project_id)
    # what is stored is the item's JSON form, and so is what reads answer
    stored_item = CheckinItem.from_dict(item.to_dict())
    record = ProcessingErrorRecord(uuid.uuid4().hex, stored_item, exception.errors)
    # One writer per entity at a time, so two consumers cannot both leave 10 others.
    serialize(conn, _ENTITY_LOCK | zlib.crc32(entity.encode()))
    conn.execute(
        error_table.insert().values(
            id=record.id,
            project_id=project_id,
            monitor_id=monitor_id,
            entity=entity,
            checkin=stored_item.to_dict(),
            errors=[e.to_dict() for e in record.errors],
            date_added=item.ts.astimezone(UTC),
        )
    )
    _trim(conn, entity)
    delete_expired(conn, now)
    return record


def _monitor_for_slug(conn: Connection, project_id: int, slug: object) -> int | None:
    if not isinstance(slug, str):
        return None
    found = conn.execute(
        select(monitor_table.c.id).where(
            and_(monitor_table.c.project_id == project_id, monitor_table.c.slug == slug)
        )
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _newest_first(entity: str) -> Select[Any]:
    return (
        select(error_table)
        .where(error_table.c.entity == entity)
        .order_by(error_table.c.date_added.desc(), error_table.c.id.desc())
    )


def _trim(conn: Connection, entity: str) -> None:
    """Drop the entity's records beyond the newest MAX_ERRORS_PER_ENTITY."""
    surplus = [r.id for r in conn.execute(_newest_first(entity).offset(MAX_ERRORS_PER_ENTITY))]
    if surplus:
        conn.execute(delete(error_table).where(error_table.c.id.in_(surplus)))


def delete_expired(conn: Connection, now: datetime) -> int:
    """Drop every record older than 7 days before `now`; returns how many."""
    oldest = now.astimezone(UTC) - ERROR_TTL
    result = conn.execute(delete(error_table).where(error_table.c.date_added < oldest))
    return int(result.rowcount)


def _record(row: Row[Any]) -> ProcessingErrorRecord:
    return ProcessingErrorRecord(
        row.id,
        CheckinItem.from_dict(row.checkin),
        tuple(ProcessingError.from_dict(e) for e in row.errors),
    )


def list_errors(conn: Connection, entity: str, now: datetime) -> list[ProcessingErrorRecord]:
    """The entity's records, newest first (at most 10), none older than 7 days."""
    rows = conn.execute(
        _newest_first(entity)
        .where(error_table.c.date_added >= now.astimezone(UTC) - ERROR_TTL)
        .limit(MAX_ERRORS_PER_ENTITY)
    )
    return [_record(r) for r in rows]


def list_for_monitor(
    conn: Connection, monitor_id: int, now: datetime
) -> list[ProcessingErrorRecord]:
    """The monitor's records, newest first."""
    return list_errors(conn, monitor_entity(monitor_id), now)


def list_for_project(
    conn: Connection, project_id: int, now: datetime
) -> list[ProcessingErrorRecord]:
    """The project's records that concern no monitor, newest first."""
    return list_errors(conn, project_entity(project_id), now)


def delete_error(conn: Connection, project_id: int, error_id: str) -> bool:
    """Delete the record `error_id` through the project `project_id`. False when there
    is no such record; InvalidProjectError when it belongs to another project."""
    owner = conn.execute(
        select(error_table.c.project_id).where(error_table.c.id == error_id)
    ).scalar_one_or_none()
    if owner is None:
        return False
    if owner != project_id:
        raise InvalidProjectError(
            f"processing error {error_id} is not of project {project_id}", int(owner)
        )
    conn.execute(delete(error_table).where(error_table.c.id == error_id))
    return True


def delete_errors_by_type(conn: Connection, entity: str, error_type: ProcessingErrorType) -> int:
    """Remove every error of `error_type` from the entity's records, deleting records
    left with no error; returns how many records changed or went."""
    changed = 0
    rows = conn.execute(
        select(error_table.c.id, error_table.c.errors).where(error_table.c.entity == entity)
    ).all()
    for row in rows:
        kept = [e for e in row.errors if e.get("type") != int(error_type)]
        if len(kept) == len(row.errors):
            continue
        changed += 1
        if kept:
            conn.execute(update(error_table).where(error_table.c.id == row.id).values(errors=kept))
        else:
            conn.execute(delete(error_table).where(error_table.c.id == row.id))
    return changed
