"""What time passing means for monitors (B7.3-B7.6): which environments and check-ins a
tick concerns (`dispatch_*`), and the task for each (`mark_*`).

Each task re-checks its condition inside its own transaction, with the row locked, so a
task delivered twice, or a tick dispatched twice, changes nothing the second time: one
missed check-in per missed slot, one timeout per run. Monitor-failure occurrences are
handed to `produce_occurrence` (the caller sends them once the transaction committed).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, and_, desc, exists, select, tuple_, update

from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as me_table
from vigil.monitors.checkin_processing import ProduceOccurrence, get_checkin, mark_failed
from vigil.monitors.enums import CheckInStatus, MonitorStatus, MonitorType, ObjectStatus
from vigil.monitors.schedule import prev_schedule
from vigil.monitors.store import get_monitor_by_id
from vigil.streams.codecs import ClockTask

log = logging.getLogger(__name__)

# Per tick and kind of task (D4).
QUERY_LIMIT: Final = 10_000

_GONE_ENV: Final = (
    int(MonitorStatus.DISABLED),
    int(MonitorStatus.PENDING_DELETION),
    int(MonitorStatus.DELETION_IN_PROGRESS),
)
_GONE_MONITOR: Final = (
    int(ObjectStatus.DISABLED),
    int(ObjectStatus.PENDING_DELETION),
    int(ObjectStatus.DELETION_IN_PROGRESS),
)


def _due_environments(tick: datetime) -> object:
    """The filter of B7.4: due, neither environment nor monitor disabled or being
    deleted, a cron job. Muted ones are included (they still record misses)."""
    return and_(
        me_table.c.next_checkin_latest <= tick,
        me_table.c.status.not_in(_GONE_ENV),
        monitor_table.c.status.not_in(_GONE_MONITOR),
        monitor_table.c.type == int(MonitorType.CRON_JOB),
    )


# --- dispatch (per tick) ---------------------------------------------------------------


def dispatch_check_missing(conn: Connection, tick: datetime) -> list[ClockTask]:
    """One `mark_missing` task per environment due at `tick` (at most QUERY_LIMIT),
    oldest due first.

    Read in two steps so that a tick's cost grows with the due environments, not with
    all monitors: the due environments from the `next_checkin_latest` index, then their
    monitors by id (a join lets PostgreSQL scan every monitor). Environments of disabled
    monitors stay due; they are skipped chunk by chunk, so they can never starve the
    others."""
    tasks: list[ClockTask] = []
    ts = tick.timestamp()
    after: tuple[datetime, int] | None = None
    while len(tasks) < QUERY_LIMIT:
        query = select(me_table.c.id, me_table.c.monitor_id, me_table.c.next_checkin_latest).where(
            and_(me_table.c.next_checkin_latest <= tick, me_table.c.status.not_in(_GONE_ENV))
        )
        if after is not None:
            query = query.where(
                tuple_(me_table.c.next_checkin_latest, me_table.c.id) > tuple_(*after)
            )
        rows = conn.execute(
            query.order_by(me_table.c.next_checkin_latest, me_table.c.id).limit(QUERY_LIMIT)
        ).all()
        if not rows:
            break
        live = set(
            conn.execute(
                select(monitor_table.c.id).where(
                    and_(
                        monitor_table.c.id.in_({row.monitor_id for row in rows}),
                        monitor_table.c.status.not_in(_GONE_MONITOR),
                        monitor_table.c.type == int(MonitorType.CRON_JOB),
                    )
                )
            ).scalars()
        )
        tasks += [ClockTask("mark_missing", ts, row.id) for row in rows if row.monitor_id in live]
        if len(rows) < QUERY_LIMIT:
            break
        after = (rows[-1].next_checkin_latest, rows[-1].id)
    return tasks[:QUERY_LIMIT]


def dispatch_check_timeout(conn: Connection, tick: datetime) -> list[ClockTask]:
    """One `mark_timeout` task per in-progress check-in past its timeout at `tick`."""
    rows = conn.execute(
        select(checkin_table.c.id, checkin_table.c.monitor_environment_id)
        .where(
            and_(
                checkin_table.c.status == int(CheckInStatus.IN_PROGRESS),
                checkin_table.c.timeout_at <= tick,
            )
        )
        .order_by(checkin_table.c.timeout_at, checkin_table.c.id)
        .limit(QUERY_LIMIT)
    )
    ts = tick.timestamp()
    return [ClockTask("mark_timeout", ts, row.monitor_environment_id, row.id) for row in rows]


def dispatch_mark_unknown(conn: Connection, tick: datetime) -> list[ClockTask]:
    """During a system incident: one `mark_unknown` task per in-progress check-in begun
    by `tick`, newest first (their completion may have been lost, not their job)."""
    rows = conn.execute(
        select(checkin_table.c.id, checkin_table.c.monitor_environment_id)
        .where(
            and_(
                checkin_table.c.status == int(CheckInStatus.IN_PROGRESS),
                checkin_table.c.date_added <= tick,
            )
        )
        .order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id))
        .limit(QUERY_LIMIT)
    )
    ts = tick.timestamp()
    return [ClockTask("mark_unknown", ts, row.monitor_environment_id, row.id) for row in rows]


# --- the tasks -------------------------------------------------------------------------


def mark_environment_missing(
    conn: Connection, monitor_environment_id: int, ts: datetime, produce: ProduceOccurrence
) -> int | None:
    """B7.4: if the environment is (still) due at `ts`, record a MISSED check-in at its
    expected time and fail it from the most recent expected time before `ts`, so the
    schedule jumps past every missed slot at once. The missed check-in's id, or None
    when there was nothing to do.
    InvalidSchedule for a stored schedule that cannot be computed."""
    row = conn.execute(
        select(me_table.c.id, me_table.c.next_checkin, me_table.c.monitor_id)
        .join(monitor_table, monitor_table.c.id == me_table.c.monitor_id)
        .where(
            and_(
                me_table.c.id == monitor_environment_id,
                _due_environments(ts),  # type: ignore[arg-type]
            )
        )
        .with_for_update(of=me_table)
    ).first()
    if row is None:
        return None  # handled by an earlier task, deleted, or disabled meanwhile
    monitor = get_monitor_by_id(conn, row.monitor_id)
    assert monitor is not None
    expected = row.next_checkin
    if expected is None:  # a due environment always has one; be safe
        expected = ts
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=ts.tzinfo)
    # Computed first: an invalid schedule raises before anything is written.
    most_recent_expected = prev_schedule(ts, monitor.config, start=expected)
    guid = uuid.uuid4()
    conn.execute(
        checkin_table.insert().values(
            guid=guid,
            project_id=monitor.project_id,
            monitor_id=monitor.id,
            monitor_environment_id=monitor_environment_id,
            status=int(CheckInStatus.MISSED),
            duration=None,
            date_added=expected,
            date_updated=expected,
            date_clock=ts,
            expected_time=expected,
            timeout_at=None,
            monitor_config=dict(monitor.config),
            trace_id=None,
        )
    )
    checkin_id: int = conn.execute(
        select(checkin_table.c.id).where(checkin_table.c.guid == guid)
    ).scalar_one()
    missed = get_checkin(conn, checkin_id)
    assert missed is not None
    mark_failed(conn, missed, most_recent_expected, produce, received=ts)
    return checkin_id


def mark_checkin_timeout(
    conn: Connection, checkin_id: int, ts: datetime, produce: ProduceOccurrence
) -> bool:
    """B7.5: an IN_PROGRESS check-in becomes TIMEOUT (only while still in progress: one
    completed meanwhile keeps its status), and fails its environment unless a newer
    check-in of the environment already finished OK or ERROR. False when it was not in
    progress (or is gone)."""
    checkin = get_checkin(conn, checkin_id)
    if checkin is None:
        log.info("timeout for a check-in that no longer exists", extra={"checkin_id": checkin_id})
        return False
    changed = conn.execute(
        update(checkin_table)
        .where(
            and_(
                checkin_table.c.id == checkin_id,
                checkin_table.c.status == int(CheckInStatus.IN_PROGRESS),
            )
        )
        .values(status=int(CheckInStatus.TIMEOUT))
    ).rowcount
    if changed == 0:
        return False  # completed, or timed out by an earlier task
    newer_finished = conn.execute(
        select(
            exists().where(
                and_(
                    checkin_table.c.monitor_environment_id == checkin.monitor_environment_id,
                    checkin_table.c.date_added > checkin.date_added,
                    checkin_table.c.status.in_([int(CheckInStatus.OK), int(CheckInStatus.ERROR)]),
                )
            )
        )
    ).scalar_one()
    if not newer_finished:
        monitor = get_monitor_by_id(conn, checkin.monitor_id)
        assert monitor is not None
        failed_at = prev_schedule(ts, monitor.config, start=checkin.date_added)
        timed_out = get_checkin(conn, checkin_id)
        assert timed_out is not None
        mark_failed(conn, timed_out, failed_at, produce, received=ts)
    return True


def mark_checkin_unknown(conn: Connection, checkin_id: int) -> bool:
    """B7.6: an IN_PROGRESS check-in becomes UNKNOWN (never a failure; the client may
    still complete it). False when it was no longer in progress."""
    changed = conn.execute(
        update(checkin_table)
        .where(
            and_(
                checkin_table.c.id == checkin_id,
                checkin_table.c.status == int(CheckInStatus.IN_PROGRESS),
            )
        )
        .values(status=int(CheckInStatus.UNKNOWN))
    ).rowcount
    return bool(changed)
