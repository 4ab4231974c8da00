"""Check-in rows (B4.5-B4.7): a row read as a `CheckIn`, reading one by id or guid, the
in-progress ones of some monitors, and the row a new check-in gets. Reads take the
caller's connection, so the caller owns the transaction; nothing is written here."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Row, Select, desc, literal_column, select

from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.db.timestamps import aware_utc
from vigil.monitors.enums import CheckInStatus
from vigil.monitors.models import CheckIn, Monitor, MonitorEnvironment
from vigil.monitors.schedule import timeout_at

# The largest duration (ms) a check-in row holds: its column is a 32-bit integer.
MAX_DURATION: Final = 2_147_483_647

# "In progress", written as the literal of the in-progress index's condition: with a
# bound parameter, neither database's planner can tell that the partial index applies.
IN_PROGRESS: Final[ColumnElement[bool]] = checkin_table.c.status == literal_column(
    str(int(CheckInStatus.IN_PROGRESS))
)


def checkin_from_row(row: Row[Any]) -> CheckIn:
    date_added = aware_utc(row.date_added)
    date_updated = aware_utc(row.date_updated)
    assert date_added is not None and date_updated is not None
    return CheckIn(
        id=row.id,
        guid=row.guid,
        project_id=row.project_id,
        monitor_id=row.monitor_id,
        monitor_environment_id=row.monitor_environment_id,
        status=CheckInStatus(row.status),
        duration=row.duration,
        date_added=date_added,
        date_updated=date_updated,
        timeout_at=aware_utc(row.timeout_at),
        trace_id=row.trace_id,
    )


def get_checkin(conn: Connection, checkin_id: int) -> CheckIn | None:
    row = conn.execute(select(checkin_table).where(checkin_table.c.id == checkin_id)).first()
    return None if row is None else checkin_from_row(row)


def get_checkin_by_guid(conn: Connection, guid: uuid.UUID) -> CheckIn | None:
    row = conn.execute(select(checkin_table).where(checkin_table.c.guid == guid)).first()
    return None if row is None else checkin_from_row(row)


def latest_in_progress(env_id: int) -> Select[Any]:
    """The environment's most recent in-progress check-in, locked (the nil id, B4.5)."""
    return (
        select(checkin_table)
        .where(checkin_table.c.monitor_environment_id == env_id, IN_PROGRESS)
        .order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id))
        .limit(1)
        .with_for_update()
    )


def in_progress_of_monitors(monitor_ids: Collection[int]) -> Select[tuple[int, int]]:
    """(id, monitor environment id) of the in-progress check-ins of these monitors'
    environments (not locked)."""
    return select(checkin_table.c.id, checkin_table.c.monitor_environment_id).where(
        IN_PROGRESS,
        checkin_table.c.monitor_environment_id.in_(
            select(monitor_environment_table.c.id).where(
                monitor_environment_table.c.monitor_id.in_(monitor_ids)
            )
        ),
    )


def new_checkin_values(
    monitor: Monitor,
    env: MonitorEnvironment,
    guid: uuid.UUID,
    status: CheckInStatus,
    duration: int | None,
    trace_id: uuid.UUID | None,
    start_time: datetime,
    clock: datetime,
) -> dict[str, Any]:
    """The row of a new check-in (B4.7)."""
    date_added = start_time - timedelta(milliseconds=duration) if duration else start_time
    # the stored config passed validation when it was stored: it is the snapshot
    snapshot = dict(monitor.config)
    timeout = (
        timeout_at(date_added, monitor.config) if status == CheckInStatus.IN_PROGRESS else None
    )
    return {
        "guid": guid,
        "project_id": monitor.project_id,
        "monitor_id": monitor.id,
        "monitor_environment_id": env.id,
        "status": int(status),
        "duration": duration,
        "date_added": date_added,
        "date_updated": start_time,
        "date_clock": clock.astimezone(UTC),
        "expected_time": env.next_checkin,
        "timeout_at": timeout,
        "monitor_config": snapshot,
        "trace_id": trace_id,
    }
