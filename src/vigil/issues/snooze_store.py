"""Stored snoozes (`group_snooze`: an issue ignored until a condition is met) and the
occurrence count a windowed condition needs. Takes the caller's connection."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from vigil.db.tables import group_snooze
from vigil.db.tables import issue_occurrence as occurrence_table
from vigil.db.timestamps import as_utc
from vigil.issues.snooze import Snooze


def _snooze(row: Any) -> Snooze:
    return Snooze(
        until=None if row.until is None else as_utc(row.until),
        count=row.event_count,
        window=row.window_minutes,
        user_count=row.user_count,
        user_window=row.user_window_minutes,
        times_seen=int(row.times_seen),
    )


def get_snooze(conn: Connection, group_id: int) -> Snooze | None:
    row = conn.execute(select(group_snooze).where(group_snooze.c.group_id == group_id)).first()
    return None if row is None else _snooze(row)


def get_snoozes(conn: Connection, group_ids: Collection[int]) -> dict[int, Snooze]:
    """The snoozes of those groups that have one."""
    if not group_ids:
        return {}
    rows = conn.execute(select(group_snooze).where(group_snooze.c.group_id.in_(group_ids)))
    return {int(row.group_id): _snooze(row) for row in rows}


def set_snooze(conn: Connection, group_id: int, snooze: Snooze, now: datetime) -> None:
    """The group's snooze is `snooze` from now on (replacing any earlier one)."""
    delete_snooze(conn, group_id)
    conn.execute(
        insert(group_snooze).values(
            group_id=group_id,
            until=snooze.until,
            event_count=snooze.count,
            window_minutes=snooze.window,
            user_count=snooze.user_count,
            user_window_minutes=snooze.user_window,
            times_seen=snooze.times_seen,
            date_added=now,
        )
    )


def delete_snooze(conn: Connection, group_id: int) -> None:
    conn.execute(delete(group_snooze).where(group_snooze.c.group_id == group_id))


def groups_due(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Up to `limit` groups whose snooze's time has come, earliest first."""
    rows = conn.execute(
        select(group_snooze.c.group_id)
        .where(group_snooze.c.until <= now)
        .order_by(group_snooze.c.until)
        .limit(limit)
    )
    return [int(group_id) for (group_id,) in rows]


def occurrences_since(conn: Connection, group_id: int, since: datetime) -> int:
    """How many of the group's occurrences were stored at or after `since`."""
    found = conn.execute(
        select(func.count())
        .select_from(occurrence_table)
        .where(occurrence_table.c.group_id == group_id, occurrence_table.c.date_added >= since)
    ).scalar_one()
    return int(found)
