"""What time passing means for monitors (B7.3-B7.6): which environments and check-ins a
tick concerns (`dispatch_*`), and the task for each (`mark_*`).

Each task re-checks its condition inside its transaction, with the row locked, so a
task delivered twice, or a tick dispatched twice, changes nothing the second time: one
missed check-in per missed slot, one timeout per run. Monitor-failure occurrences are
handed to `produce_occurrence` (the caller sends them once the transaction committed).
`MissingChunk` is what a chunk of `mark_missing` tasks in one transaction reads up
front, and writes in bulk for the common missed run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import Connection, Row, and_, bindparam, desc, exists, func, select, tuple_, update

from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as me_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.timestamps import aware_utc
from vigil.monitors.checkin_store import get_checkin
from vigil.monitors.enums import CheckInStatus, MonitorStatus, MonitorType, ObjectStatus
from vigil.monitors.incidents import (
    FailureFacts,
    ProduceOccurrence,
    failure_occurrence,
    mark_failed,
)
from vigil.monitors.models import CheckIn, Monitor, MonitorEnvironment
from vigil.monitors.monitor_config import failure_issue_threshold
from vigil.monitors.schedule import next_expected, next_expected_latest, prev_schedule
from vigil.monitors.store import (
    get_monitor_by_id,
    get_monitor_environment_by_id,
    get_monitors_by_ids,
    lock_monitor_environments_by_ids,
)
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


def lock_checkins(conn: Connection, checkin_ids: Collection[int]) -> None:
    """Lock these check-ins' rows until the transaction ends, in id order."""
    if checkin_ids:
        conn.execute(
            select(checkin_table.c.id)
            .where(checkin_table.c.id.in_(sorted(set(checkin_ids))))
            .order_by(checkin_table.c.id)
            .with_for_update()
        ).all()


@dataclass
class MissingChunk:
    """What a chunk of `mark_missing` tasks run in one transaction read up front (a few
    queries for the whole chunk instead of several per task): the environments due by
    the chunk's latest tick with their monitors (rows locked until the transaction
    ends), their active incidents and last OK check-in times.

    Each environment is handed out once (`take`): a later task of the same environment
    in the chunk reads it again, as the first one changed it."""

    read: set[int] = field(default_factory=set)
    due: dict[int, tuple[MonitorEnvironment, Monitor]] = field(default_factory=dict)
    facts: dict[int, FailureFacts] = field(default_factory=dict)
    taken: set[int] = field(default_factory=set)
    pending: list[_PendingMiss] = field(default_factory=list)
    schedules: dict[tuple[bytes, datetime, datetime], tuple[datetime, datetime]] = field(
        default_factory=dict
    )

    @classmethod
    def prefetch(cls, conn: Connection, env_ids: Collection[int], tick: datetime) -> MissingChunk:
        chunk = cls(read=set(env_ids))
        envs = {
            env.id: env
            for env in lock_monitor_environments_by_ids(conn, env_ids).values()
            if env.status not in _GONE_ENV
            and env.next_checkin_latest is not None
            and env.next_checkin_latest <= tick
        }
        monitors = get_monitors_by_ids(conn, {env.monitor_id for env in envs.values()})
        for env in envs.values():
            monitor = monitors.get(env.monitor_id)
            if (
                monitor is not None
                and monitor.status not in _GONE_MONITOR
                and monitor.type == MonitorType.CRON_JOB
            ):
                chunk.due[env.id] = (env, monitor)
        if not chunk.due:
            return chunk
        ids = sorted(chunk.due)
        incidents = {
            row.monitor_environment_id: row
            for row in conn.execute(
                select(incident_table).where(
                    and_(
                        incident_table.c.monitor_environment_id.in_(ids),
                        incident_table.c.resolving_checkin_id.is_(None),
                    )
                )
            )
        }
        last_ok: dict[int, datetime | None] = {
            row[0]: row[1]
            for row in conn.execute(
                select(checkin_table.c.monitor_environment_id, func.max(checkin_table.c.date_added))
                .where(
                    and_(
                        checkin_table.c.monitor_environment_id.in_(ids),
                        checkin_table.c.status == int(CheckInStatus.OK),
                    )
                )
                .group_by(checkin_table.c.monitor_environment_id)
            )
        }
        for env_id in ids:
            chunk.facts[env_id] = FailureFacts(
                incidents.get(env_id), aware_utc(last_ok.get(env_id))
            )
        return chunk

    def take(self, env_id: int) -> tuple[MonitorEnvironment, Monitor, FailureFacts] | None:
        """The environment, its monitor and facts, if read up front as due and not
        handed out (or forgotten) before; None otherwise."""
        found = self.due.pop(env_id, None)
        if found is None:
            return None
        self.taken.add(env_id)
        return (*found, self.facts.pop(env_id))

    def forget(self, env_id: int) -> None:
        """Another task of the chunk changes the environment: read it again."""
        self.due.pop(env_id, None)
        self.facts.pop(env_id, None)
        self.taken.add(env_id)

    def not_due(self, env_id: int) -> bool:
        """Read up front and found not due by the chunk's latest tick, or gone."""
        return env_id in self.read and env_id not in self.taken and env_id not in self.due

    def defer(self, env_id: int, ts: datetime) -> bool:
        """The common missed run, written in bulk by `flush`: an environment read up
        front, due at `ts`, whose failure needs no more reads — already in ERROR, or
        OK/ACTIVE with a failure threshold of 1 (so this miss opens its incident).
        Everything that can fail (a stored schedule that does not compute) is done
        before anything is kept. False (nothing done) for any other: the caller runs
        `mark_environment_missing`."""
        found = self.due.get(env_id)
        if found is None:
            return False
        env, monitor = found
        if env.next_checkin_latest is None or env.next_checkin_latest > ts:
            return False
        opens = env.status in (MonitorStatus.OK, MonitorStatus.ACTIVE)
        if not opens and env.status != MonitorStatus.ERROR:
            return False
        if opens and failure_issue_threshold(monitor.config) > 1:
            return False
        expected = env.next_checkin if env.next_checkin is not None else ts
        next_checkin, next_checkin_latest = self._schedule(monitor, expected, ts)
        moved = replace(
            env,
            next_checkin=next_checkin,
            next_checkin_latest=next_checkin_latest,
            status=MonitorStatus.ERROR,
        )
        facts = self.facts.pop(env_id)
        del self.due[env_id]
        self.taken.add(env_id)
        self.pending.append(_PendingMiss(env_id, ts, moved, monitor, facts, expected))
        return True

    def _schedule(
        self, monitor: Monitor, expected: datetime, ts: datetime
    ) -> tuple[datetime, datetime]:
        """The environment's next check-in times after missing `expected` at `ts` (as
        `mark_failed` computes them from the most recent expected time). Pure in the
        schedule and the two times, so computed once per distinct triple: a burst is
        mostly monitors sharing a schedule and a minute."""
        key = (orjson.dumps(monitor.config, option=orjson.OPT_SORT_KEYS), expected, ts)
        found = self.schedules.get(key)
        if found is None:
            failed_at = prev_schedule(ts, monitor.config, start=expected)
            found = (
                next_expected(failed_at, monitor.config),
                next_expected_latest(failed_at, monitor.config),
            )
            self.schedules[key] = found
        return found

    def pending_envs(self) -> list[tuple[int, datetime]]:
        """The (environment, tick) of each miss waiting for `flush`."""
        return [(p.env_id, p.ts) for p in self.pending]

    def flush(self, conn: Connection) -> list[tuple[dict[str, Any], str]]:
        """Write the deferred misses as `mark_environment_missing` would have one by one
        (their missed check-ins, environments, opened incidents: one statement each
        kind) and return their occurrences (payload, key), in task order. Forgets them
        whether or not the writes succeed."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        ids = (
            conn.execute(
                checkin_table.insert().returning(checkin_table.c.id, sort_by_parameter_order=True),
                [
                    {
                        "guid": uuid.uuid4(),
                        "project_id": p.monitor.project_id,
                        "monitor_id": p.monitor.id,
                        "monitor_environment_id": p.env_id,
                        "status": int(CheckInStatus.MISSED),
                        "duration": None,
                        "date_added": p.expected,
                        "date_updated": p.expected,
                        "date_clock": p.ts,
                        "expected_time": p.expected,
                        "timeout_at": None,
                        "monitor_config": dict(p.monitor.config),
                        "trace_id": None,
                    }
                    for p in pending
                ],
            )
            .scalars()
            .all()
        )
        # A missed run leaves last_checkin as it is, and the row is locked since it was
        # read: mark_failed's guard against a newer check-in always holds here.
        conn.execute(
            update(me_table)
            .where(me_table.c.id == bindparam("env_id"))
            .values(
                next_checkin=bindparam("new_next_checkin"),
                next_checkin_latest=bindparam("new_next_checkin_latest"),
                status=bindparam("new_status"),
            ),
            [
                {
                    "env_id": p.env_id,
                    "new_next_checkin": p.env.next_checkin,
                    "new_next_checkin_latest": p.env.next_checkin_latest,
                    "new_status": int(MonitorStatus.ERROR),
                }
                for p in pending
            ],
        )
        missed = [
            CheckIn(
                id=checkin_id,
                guid=uuid.UUID(int=0),  # not used by what follows
                project_id=p.monitor.project_id,
                monitor_id=p.monitor.id,
                monitor_environment_id=p.env_id,
                status=CheckInStatus.MISSED,
                duration=None,
                date_added=p.expected,
                date_updated=p.expected,
                timeout_at=None,
                trace_id=None,
            )
            for p, checkin_id in zip(pending, ids, strict=True)
        ]
        opening = [(p, c) for p, c in zip(pending, missed, strict=True) if p.facts.incident is None]
        opened: dict[int, Row[Any]] = {}
        if opening:
            rows = conn.execute(
                incident_table.insert().returning(*incident_table.c, sort_by_parameter_order=True),
                [
                    {
                        "monitor_id": p.monitor.id,
                        "monitor_environment_id": p.env_id,
                        "starting_checkin_id": c.id,
                        "starting_timestamp": c.date_added,
                        "grouphash": uuid.uuid4().hex,
                        "date_added": p.ts,
                    }
                    for p, c in opening
                ],
            ).all()
            opened = {row.monitor_environment_id: row for row in rows}
        produced: list[tuple[dict[str, Any], str]] = []
        for p, checkin in zip(pending, missed, strict=True):
            incident = p.facts.incident if p.facts.incident is not None else opened[p.env_id]
            if p.monitor.is_muted or p.env.is_muted:
                continue
            payload = failure_occurrence(
                conn,
                p.monitor,
                p.env,
                incident,
                checkin,
                [checkin],
                p.ts,
                last_ok=p.facts.last_ok,
            )
            produced.append((payload, f"{incident.grouphash}-{p.monitor.project_id}"))
        return produced


@dataclass(frozen=True)
class _PendingMiss:
    """A missed run deferred by `MissingChunk.defer`: its environment as it will be."""

    env_id: int
    ts: datetime
    env: MonitorEnvironment
    monitor: Monitor
    facts: FailureFacts
    expected: datetime


def mark_environment_missing(
    conn: Connection,
    monitor_environment_id: int,
    ts: datetime,
    produce: ProduceOccurrence,
    chunk: MissingChunk | None = None,
) -> int | None:
    """B7.4: if the environment is (still) due at `ts`, record a MISSED check-in at its
    expected time and fail it from the most recent expected time before `ts`, so the
    schedule jumps past every missed slot at once. The missed check-in's id, or None
    when there was nothing to do. `chunk`, when given, holds what this transaction read
    up front for the environment.
    InvalidSchedule for a stored schedule that cannot be computed."""
    known = None if chunk is None else chunk.take(monitor_environment_id)
    facts: FailureFacts | None = None
    if chunk is not None and chunk.not_due(monitor_environment_id):
        return None  # read up front: not due, or gone
    if known is not None:
        env, monitor, facts = known
        if env.next_checkin_latest is None or env.next_checkin_latest > ts:
            return None  # due by a later tick of the chunk only
    else:
        row = conn.execute(
            select(me_table.c.id, me_table.c.monitor_id)
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
        found_monitor = get_monitor_by_id(conn, row.monitor_id)
        found_env = get_monitor_environment_by_id(conn, monitor_environment_id)
        assert found_monitor is not None and found_env is not None
        monitor, env = found_monitor, found_env
    expected = env.next_checkin
    if expected is None:  # a due environment always has one; be safe
        expected = ts
    if expected.tzinfo is None:
        expected = expected.replace(tzinfo=ts.tzinfo)
    # Computed first: an invalid schedule raises before anything is written.
    most_recent_expected = prev_schedule(ts, monitor.config, start=expected)
    guid = uuid.uuid4()
    checkin_id: int = conn.execute(
        checkin_table.insert()
        .values(
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
        .returning(checkin_table.c.id)
    ).scalar_one()
    missed = CheckIn(
        id=checkin_id,
        guid=guid,
        project_id=monitor.project_id,
        monitor_id=monitor.id,
        monitor_environment_id=monitor_environment_id,
        status=CheckInStatus.MISSED,
        duration=None,
        date_added=expected,
        date_updated=expected,
        timeout_at=None,
        trace_id=None,
    )
    mark_failed(
        conn,
        missed,
        most_recent_expected,
        produce,
        received=ts,
        monitor=monitor,
        env=env,
        facts=facts,
    )
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
