"""What one check-in message means (B4.3-B4.7, B5, B6, B8.3): `process_checkins` applies
decoded `ingest-monitors` check-ins to the database, a chunk of them per transaction,
each as if alone (`process_checkin`: one), records processing errors (B10) for the ones
that cannot be applied, and hands monitor-failure occurrences and resolving
status changes to the transactional outbox (`vigil.streams.outbox`, topic
`ingest-occurrences`) in the transaction that decided them — or, for callers that give
one, to a `produce_occurrence(payload, key)` called after that transaction committed.

Time is always the message's: `start_time` for the check-in, the log timestamp for the
rate limit and the error record. Only the occurrence's detection time and event
timestamp are "now" (B8.3).

Not here yet: the quota steps (3, 7, 9 never fire on a self-hosted install) and
outcomes. The rate-limit window is counted in memory (`MinuteRateLimiter` says why).
"""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy import Connection, Engine, Row, and_, bindparam, desc, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from vigil.db.bulk import execute_many, insert_rows
from vigil.db.engine import is_transient
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.timestamps import aware_utc
from vigil.issues.produce import enqueue_payload
from vigil.monitors import processing_error_store
from vigil.monitors.enums import CheckInStatus, MonitorStatus, ObjectStatus
from vigil.monitors.environment_name import environment_name
from vigil.monitors.failure_reason import failure_reason
from vigil.monitors.models import Monitor, MonitorEnvironment
from vigil.monitors.monitor_config import (
    failure_issue_threshold,
    recovery_threshold,
)
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorsException,
    ProcessingErrorType,
)
from vigil.monitors.schedule import (
    heartbeat_timeout_at,
    next_expected,
    next_expected_latest,
    timeout_at,
)
from vigil.monitors.slugs import processing_key, valid_monitor_slug
from vigil.monitors.store import (
    MonitorEnvironmentLimitsExceeded,
    MonitorEnvironmentValidationFailed,
    MonitorLimitsExceeded,
    OwnerResolver,
    ensure_environment,
    ensure_monitor_with_config,
    get_monitor_by_id,
    get_monitor_environment_by_id,
    get_monitors,
    lock_monitor_environments,
    no_owners,
)
from vigil.tenancy.store import (
    Organization,
    Project,
    get_organization_by_id,
    get_project_by_id,
)

log = logging.getLogger(__name__)

MAX_DURATION: Final = 2_147_483_647
CHECKINS_PER_MINUTE: Final = 6
MONITOR_FAILURE_TYPE: Final = 4001
GROUP_STATUS_RESOLVED: Final = 1
_CLIENT_STATUSES: Final = {
    "ok": CheckInStatus.OK,
    "error": CheckInStatus.ERROR,
    "in_progress": CheckInStatus.IN_PROGRESS,
}

ProduceOccurrence = Callable[[dict[str, Any], str], None]


class RateLimiter(Protocol):
    def is_limited(self, key: str, minute: datetime) -> bool:
        """Count one check-in under `key`, the bucket of the message minute `minute`;
        True when it is over the limit."""


# How many minutes behind the newest one seen a bucket is kept.
RATE_LIMIT_HORIZON: Final = timedelta(minutes=2)


@dataclass
class MinuteRateLimiter:
    """The per-monitor-environment limit of step 2: `limit` check-ins per key and message
    minute (a new minute is a new bucket), counted in this process's memory.

    Memory stays bounded: when the message time reaches a new minute, the buckets more
    than RATE_LIMIT_HORIZON older than it are forgotten, since their minute is over.

    Why memory and not the database: `ingest-monitors` is partitioned by monitor
    environment, so every check-in of one key reaches one consumer process, which can
    count them alone; the count is only ever needed within one minute of message time.
    A restart (or a rebalance) forgets the counts: in that minute a monitor environment
    may get up to `limit` check-ins more through, which is harmless; nothing is lost.
    A bucket for a minute far behind the newest (a partition catching up while another
    is current) may be forgotten early in the same way.

    Safe to share between the threads of one consumer.
    """

    limit: int = CHECKINS_PER_MINUTE
    buckets: dict[datetime, dict[str, int]] = field(default_factory=dict)
    newest: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def is_limited(self, key: str, minute: datetime) -> bool:
        with self._lock:
            if self.newest is None or minute > self.newest:
                self.newest = minute
                floor = minute - RATE_LIMIT_HORIZON
                for over in [m for m in self.buckets if m < floor]:
                    del self.buckets[over]
            counts = self.buckets.setdefault(minute, {})
            counts[key] = counts.get(key, 0) + 1
            return counts[key] > self.limit


@dataclass
class CheckinProcessing:
    """What processing needs besides the message: the organizations whose check-ins are
    switched off, the rate limiter, the operator's creation limits, owner resolution and
    where monitor-failure occurrences and status changes go: None (the consumer's way),
    the outbox, in the deciding transaction; a callable, called after it committed."""

    produce_occurrence: ProduceOccurrence | None = None
    killswitch: frozenset[int] = frozenset()
    rate_limiter: RateLimiter = field(default_factory=MinuteRateLimiter)
    max_monitors: int = 10_000
    max_environments: int = 1_000
    resolve_owner: OwnerResolver = no_owners


@dataclass(frozen=True)
class CheckIn:
    id: int
    guid: uuid.UUID
    project_id: int
    monitor_id: int
    monitor_environment_id: int
    status: CheckInStatus
    duration: int | None
    date_added: datetime
    date_updated: datetime
    timeout_at: datetime | None
    trace_id: uuid.UUID | None


def _checkin(row: Row[Any]) -> CheckIn:
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
    return None if row is None else _checkin(row)


def get_checkin_by_guid(conn: Connection, guid: uuid.UUID) -> CheckIn | None:
    row = conn.execute(select(checkin_table).where(checkin_table.c.guid == guid)).first()
    return None if row is None else _checkin(row)


# --- the message ----------------------------------------------------------------------


def start_time_of(item: CheckinItem) -> datetime:
    return datetime.fromtimestamp(float(item.message["start_time"]), UTC)


def message_minute(item: CheckinItem) -> datetime:
    """The minute of the message's log time (UTC): the rate limit's bucket."""
    return item.ts.astimezone(UTC).replace(second=0, microsecond=0)


def rate_limit_key(item: CheckinItem) -> str:
    """ "monitor-checkins:{processing_key}:{message minute, naive}" (B4.3 step 2)."""
    project_id = int(item.message["project_id"])
    minute = message_minute(item).replace(tzinfo=None)
    key = processing_key(
        project_id, str(item.payload.get("monitor_slug", "")), item.payload.get("environment")
    )
    return f"monitor-checkins:{key}:{minute:%Y-%m-%d %H:%M:%S}"


@dataclass
class BatchRows:
    """What a chunk of check-ins applied in one transaction knows, so that the common
    check-in costs no reads and its writes go to the database together.

    Read once, up front (`prefetch`): projects with their organization, the monitors the
    chunk names, their environments (rows locked for the transaction, so their state
    here stays exact) and which check-in ids do not exist yet. Kept up to date with this
    transaction's own writes: a monitor or environment it creates or updates, each
    environment's state after a check-in moved it (forgotten, so read again, after any
    check-in that took the general path).

    Write-behind: an `ok` or `in_progress` check-in whose environment needs no status
    change (no recovery to evaluate) and that either is new or continues an in-progress
    check-in known here (its row read and locked up front, or created in this chunk)
    only inserts or updates its row and moves its environment's check-in times (B4.5-B4.7,
    B5). Those writes are kept in `pending_*` and written by `flush`, which runs before
    any check-in takes the general path and when the chunk ends, so every read sees the
    writes of the check-ins before it."""

    projects: dict[int, tuple[Project, Organization] | None] = field(default_factory=dict)
    monitors: dict[tuple[int, str], Monitor] = field(default_factory=dict)
    environments: dict[tuple[int, str], int] = field(default_factory=dict)
    states: dict[int, MonitorEnvironment] = field(default_factory=dict)
    absent_guids: set[uuid.UUID] = field(default_factory=set)
    open_checkins: dict[uuid.UUID, CheckIn] = field(default_factory=dict)
    pending_checkins: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    pending_updates: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    pending_environments: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def prefetch(cls, conn: Connection, items: Sequence[CheckinItem]) -> BatchRows:
        rows = cls()
        slugs: dict[int, set[str]] = {}
        guids: set[uuid.UUID] = set()
        for item in items:
            try:
                project_id = int(item.message["project_id"])
                slug = valid_monitor_slug(str(item.payload.get("monitor_slug", "")))
                guid = uuid.UUID(str(item.payload.get("check_in_id")))
            except (KeyError, TypeError, ValueError):
                continue  # its own processing says what is wrong with it
            slugs.setdefault(project_id, set()).add(slug)
            if guid.int:
                guids.add(guid)
        for project_id, wanted in slugs.items():
            if rows.project(conn, project_id) is not None:
                for slug, monitor in get_monitors(conn, project_id, wanted).items():
                    rows.monitors[(project_id, slug)] = monitor
        if guids:
            # check-ins locked before environments: the order the clock's tasks lock in
            found = [
                _checkin(r)
                for r in conn.execute(
                    select(checkin_table)
                    .where(checkin_table.c.guid.in_(guids))
                    .order_by(checkin_table.c.id)
                    .with_for_update()
                )
            ]
            rows.absent_guids = guids - {c.guid for c in found}
            rows.open_checkins = {c.guid: c for c in found if c.status == CheckInStatus.IN_PROGRESS}
        for env in lock_monitor_environments(conn, [m.id for m in rows.monitors.values()]):
            rows.environments[(env.monitor_id, env.environment)] = env.id
            rows.states[env.id] = env
        return rows

    def project(self, conn: Connection, project_id: int) -> tuple[Project, Organization] | None:
        if project_id not in self.projects:
            found = get_project_by_id(conn, project_id)
            self.projects[project_id] = (
                None
                if found is None
                else (found, get_organization_by_id(conn, found.organization_id))
            )
        return self.projects[project_id]

    def state(self, conn: Connection, env_id: int) -> MonitorEnvironment:
        """The monitor environment as this transaction left it."""
        env = self.states.get(env_id)
        if env is None:
            env = get_monitor_environment_by_id(conn, env_id)
            assert env is not None
            self.states[env_id] = env
        return env

    def forget(self, env_id: int) -> None:
        """Read the environment, and its open check-ins, again from here on (a check-in
        of it takes the general path, which may change them)."""
        self.states.pop(env_id, None)
        for guid in [
            g for g, c in self.open_checkins.items() if c.monitor_environment_id == env_id
        ]:
            del self.open_checkins[guid]

    def flush(self, conn: Connection) -> None:
        """Write the pending check-ins, their updates and environment updates (through
        the driver's executemany: SQLAlchemy's per-row parameter work cost more)."""
        insert_rows(conn, checkin_table, list(self.pending_checkins.values()))
        self.pending_checkins = {}
        execute_many(conn, _UPDATE_CHECKINS, _bound("checkin_guid", self.pending_updates))
        self.pending_updates = {}
        execute_many(conn, _MOVE_ENVIRONMENTS, _bound("env_id", self.pending_environments))
        self.pending_environments = {}


def _bound(key: str, pending: Mapping[Any, Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Each pending row under the update's parameter names: its key, "new_<column>".
    return [
        {key: row_key, **{f"new_{name}": value for name, value in values.items()}}
        for row_key, values in pending.items()
    ]


_UPDATE_CHECKINS = (
    update(checkin_table)
    .where(checkin_table.c.guid == bindparam("checkin_guid"))
    .values(
        duration=bindparam("new_duration"),
        status=bindparam("new_status"),
        timeout_at=bindparam("new_timeout_at"),
        date_updated=bindparam("new_date_updated"),
    )
)
_MOVE_ENVIRONMENTS = (
    update(monitor_environment_table)
    .where(monitor_environment_table.c.id == bindparam("env_id"))
    .values(
        last_checkin=bindparam("new_last_checkin"),
        next_checkin=bindparam("new_next_checkin"),
        next_checkin_latest=bindparam("new_next_checkin_latest"),
    )
)


def _write_behind(
    rows: BatchRows,
    monitor: Monitor,
    env: MonitorEnvironment,
    guid: uuid.UUID,
    status: CheckInStatus,
    duration: int | None,
    trace_id: uuid.UUID | None,
    start_time: datetime,
    clock: datetime,
) -> bool:
    """Steps 12-14 for a check-in that only creates or continues its row and moves its
    environment's check-in times, as `_update_or_create` and `mark_ok` would, with the
    writes left pending in `rows`; False (nothing done) for any other."""
    if status not in (CheckInStatus.OK, CheckInStatus.IN_PROGRESS):
        return False
    if env.status != MonitorStatus.OK and status == CheckInStatus.OK:
        return False  # mark_ok evaluates recovery
    # Everything that can fail (a stored schedule that does not compute) before anything
    # is kept: a check-in that fails here is dropped whole, as its savepoint would be.
    if guid in rows.absent_guids:
        values = _new_checkin_values(
            monitor, env, guid, status, duration, trace_id, start_time, clock
        )
        added = values["date_added"]
        moved = _moved(monitor, added, start_time)
        rows.pending_checkins[guid] = values
        rows.absent_guids.discard(guid)
        if status == CheckInStatus.IN_PROGRESS:
            rows.open_checkins[guid] = CheckIn(
                id=0,  # not known before the insert; the pending update goes by guid
                guid=guid,
                project_id=monitor.project_id,
                monitor_id=monitor.id,
                monitor_environment_id=env.id,
                status=status,
                duration=duration,
                date_added=added,
                date_updated=start_time,
                timeout_at=values["timeout_at"],
                trace_id=trace_id,
            )
    else:
        existing = rows.open_checkins.get(guid)
        if existing is None or (
            existing.project_id,
            existing.monitor_id,
            existing.monitor_environment_id,
        ) != (monitor.project_id, monitor.id, env.id):
            return False  # unknown here, or a mismatch to report (general path)
        if duration is None:
            duration = int(abs((start_time - existing.date_added).total_seconds()) * 1000)
        if duration < 0 or duration > MAX_DURATION:
            return False
        changes: dict[str, Any] = {
            "duration": duration,
            "status": int(status),
            "timeout_at": None,
            "date_updated": existing.date_updated,
        }
        if status == CheckInStatus.IN_PROGRESS:
            changes["timeout_at"] = heartbeat_timeout_at(
                start_time, existing.date_added, monitor.config
            )
            changes["date_updated"] = start_time
        moved = _moved(monitor, existing.date_added, start_time)
        if guid in rows.pending_checkins:
            rows.pending_checkins[guid].update(changes)  # not written yet: written so
        else:
            rows.pending_updates[guid] = changes
        if status == CheckInStatus.IN_PROGRESS:
            rows.open_checkins[guid] = replace(
                existing,
                duration=duration,
                timeout_at=changes["timeout_at"],
                date_updated=start_time,
            )
        else:
            del rows.open_checkins[guid]  # finished: what follows takes the general path
    if env.last_checkin is None or env.last_checkin <= start_time:
        rows.pending_environments[env.id] = moved
        rows.states[env.id] = replace(env, **moved)
    return True


def _moved(monitor: Monitor, added: datetime, succeeded_at: datetime) -> dict[str, Any]:
    """The environment's check-in times after `mark_ok` of a check-in added at `added`."""
    return {
        "last_checkin": added,
        "next_checkin": next_expected(succeeded_at, monitor.config),
        "next_checkin_latest": next_expected_latest(succeeded_at, monitor.config),
    }


class _Dropped(Exception):
    """A check-in whose own writes failed and were rolled back to its savepoint (the
    batch's transaction is still usable): logged and dropped (B4.2)."""


# Check-ins applied per transaction: bounds how long one batch holds SQLite's write lock.
CHECKINS_PER_TRANSACTION: Final = 200


def process_checkin(engine: Engine, item: CheckinItem, processing: CheckinProcessing) -> None:
    """Apply one check-in: `process_checkins` of one."""
    process_checkins(engine, [item], processing)


def process_checkins(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> None:
    """Apply check-ins in order, up to CHECKINS_PER_TRANSACTION in one database
    transaction, each as if alone (B4.3's steps, in order): a monitor or environment it
    creates stays even if its check-in then fails, and a check-in that fails leaves
    nothing else behind (its own writes are in a savepoint). Processing errors are
    stored with the original item; anything else is logged and the check-in dropped
    (B4.2) — except a passing database outage, which is raised so the consumer runner
    retries the batch (the transaction rolls back whole: nothing is applied twice), and
    any other database error outside a check-in's savepoint, which may have made the
    transaction unusable (PostgreSQL) and is raised too: the runner then applies the
    batch's messages one at a time and dead-letters the one that fails.

    Occurrences and status changes are written to the outbox in the transaction that
    decided them, or, with `processing.produce_occurrence`, handed to it only after that
    transaction committed (an error raised by it propagates): a check-in that rolled back
    must not leave an issue behind."""
    for start in range(0, len(items), CHECKINS_PER_TRANSACTION):
        _process_chunk(engine, items[start : start + CHECKINS_PER_TRANSACTION], processing)


def _process_chunk(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> None:
    decided: list[tuple[dict[str, Any], str]] = []
    with engine.begin() as conn:
        rows = BatchRows.prefetch(conn, items)
        for item in items:
            decided.extend(_apply_one(conn, item, processing, rows))
        rows.flush(conn)
    if processing.produce_occurrence is not None:
        for payload, key in decided:
            processing.produce_occurrence(payload, key)


def _apply_one(
    conn: Connection, item: CheckinItem, processing: CheckinProcessing, rows: BatchRows
) -> list[tuple[dict[str, Any], str]]:
    """One check-in in the batch's transaction; what it decided for a given
    `produce_occurrence` (empty when they went to the outbox)."""
    decided: list[tuple[dict[str, Any], str]] = []

    def on_decided(payload: dict[str, Any], key: str) -> None:
        if processing.produce_occurrence is None:
            enqueue_occurrence(conn, payload, key)
        else:
            decided.append((payload, key))

    try:
        # the payload is what a processing error shows: processing works on a copy
        _process_checkin(
            conn, replace(item, payload=copy.deepcopy(item.payload)), processing, rows, on_decided
        )
    except ProcessingErrorsException as exc:
        try:
            with conn.begin_nested():
                processing_error_store.store(
                    conn, exc, item, int(item.message["project_id"]), item.ts
                )
        except Exception as store_exc:
            if is_transient(store_exc):
                raise
            log.exception("Failed to store processing errors")
        return []
    except _Dropped:
        log.exception("Failed to process check-in")
        return []
    except DBAPIError:
        raise  # transient, or outside the check-in's savepoint: see process_checkins
    except Exception:
        log.exception("Failed to process check-in")
        return []
    return decided


def enqueue_occurrence(conn: Connection, payload: dict[str, Any], key: str) -> None:
    """Hand an occurrence or status change to the issue platform through its outbox, in
    the caller's transaction."""
    enqueue_payload(conn, payload, key)


def _error(kind: ProcessingErrorType, **extra: Any) -> ProcessingError:
    return ProcessingError(kind, extra)


def _raise(kind: ProcessingErrorType, monitor: Monitor | None = None, **extra: Any) -> None:
    raise ProcessingErrorsException([_error(kind, **extra)], monitor)


def _process_checkin(
    conn: Connection,
    item: CheckinItem,
    processing: CheckinProcessing,
    rows: BatchRows,
    produce: ProduceOccurrence,
) -> None:
    """The ordered steps of B4.3."""
    start_time = start_time_of(item)
    project_id = int(item.message["project_id"])
    payload = dict(item.payload)
    slug = valid_monitor_slug(str(payload.get("monitor_slug", "")))
    found = rows.project(conn, project_id)
    if found is None:
        log.info("check-in for an unknown project", extra={"project_id": project_id})
        return
    project, organization = found
    # 1, 2
    if organization.id in processing.killswitch:
        _raise(ProcessingErrorType.ORGANIZATION_KILLSWITCH_ENABLED)
    if processing.rate_limiter.is_limited(rate_limit_key(item), message_minute(item)):
        _raise(ProcessingErrorType.MONITOR_ENVIRONMENT_RATELIMITED)
    # 4
    try:
        guid = uuid.UUID(str(payload.get("check_in_id")))
    except ValueError:
        _raise(ProcessingErrorType.CHECKIN_INVALID_GUID)
    # 5
    raw_config = payload.pop("monitor_config", None)
    status, duration, trace_id = validate_checkin(payload)
    # 6, 8 (a slug of only punctuation names no monitor and must never create one)
    if not slug:
        _raise(ProcessingErrorType.MONITOR_NOT_FOUND)
    # Steps 6-11 write at most one statement at a time (or in their own savepoints), so
    # what they create stays even if the check-in fails later, as in the reference.
    monitor_key = (project.id, slug)
    if raw_config or monitor_key not in rows.monitors:
        try:
            ensured = ensure_monitor_with_config(
                conn,
                project,
                slug,
                raw_config,
                processing.resolve_owner,
                processing.max_monitors,
                now=start_time,
                existing=rows.monitors.get(monitor_key),
            )
        except MonitorLimitsExceeded as exc:
            _raise(ProcessingErrorType.MONITOR_LIMIT_EXCEEDED, reason=str(exc))
            return
        if ensured.monitor is None:
            errors = [*ensured.errors, _error(ProcessingErrorType.MONITOR_NOT_FOUND)]
            raise ProcessingErrorsException(errors)
        rows.monitors[monitor_key] = ensured.monitor
    monitor = rows.monitors[monitor_key]
    # 10
    if monitor.status == ObjectStatus.DISABLED:
        _raise(ProcessingErrorType.MONITOR_DISABLED, monitor)
    # 11
    env_name = payload.get("environment")
    env_key = (monitor.id, environment_name(env_name))
    if env_key not in rows.environments:
        try:
            ensured_env = ensure_environment(
                conn, project, monitor, env_name, processing.max_environments, now=start_time
            )
        except MonitorEnvironmentLimitsExceeded as exc:
            _raise(ProcessingErrorType.MONITOR_ENVIRONMENT_LIMIT_EXCEEDED, monitor, reason=str(exc))
            return
        except MonitorEnvironmentValidationFailed as exc:
            _raise(ProcessingErrorType.MONITOR_INVALID_ENVIRONMENT, monitor, reason=str(exc))
            return
        rows.environments[env_key] = ensured_env.id
        rows.states[ensured_env.id] = ensured_env
    # 12-14
    env_id = rows.environments[env_key]
    monitor_environment = rows.state(conn, env_id)
    if _write_behind(
        rows, monitor, monitor_environment, guid, status, duration, trace_id, start_time, item.ts
    ):
        return
    # The general path: the check-in's own writes, all or nothing, after those pending.
    rows.flush(conn)
    rows.forget(env_id)  # whatever happens next, read it again
    rows.absent_guids.discard(guid)  # it may exist from here on
    rows.open_checkins.pop(guid, None)
    try:
        with conn.begin_nested():
            checkin = _update_or_create(
                conn,
                monitor,
                monitor_environment,
                guid,
                status,
                duration,
                trace_id,
                start_time,
                item.ts,
            )
            if checkin is None:
                return
            if checkin.status == CheckInStatus.ERROR:
                mark_failed(
                    conn,
                    checkin,
                    start_time,
                    produce,
                    received=start_time,
                    monitor=monitor,
                    env=monitor_environment,
                )
            else:
                mark_ok(
                    conn, checkin, start_time, produce, monitor=monitor, env=monitor_environment
                )
    except ProcessingErrorsException:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise _Dropped(str(exc)) from exc


def validate_checkin(
    payload: Mapping[str, Any],
) -> tuple[CheckInStatus, int | None, uuid.UUID | None]:
    """Step 5: (status, duration in ms, trace id), or CHECKIN_VALIDATION_FAILED with
    the field errors."""
    errors: dict[str, list[str]] = {}
    raw_status = payload.get("status")
    status = _CLIENT_STATUSES.get(raw_status) if isinstance(raw_status, str) else None
    if status is None:
        if raw_status is None:
            errors["status"] = ["This field is required."]
        else:
            errors["status"] = [f'"{raw_status}" is not a valid choice.']
    duration: int | None = None
    raw_duration = payload.get("duration")
    if raw_duration is not None:
        if isinstance(raw_duration, bool) or not isinstance(raw_duration, int | float):
            errors["duration"] = ["A valid integer is required."]
        else:
            duration = int(raw_duration * 1000)
            if duration < 0:
                errors["duration"] = ["Ensure this value is greater than or equal to 0."]
            elif duration > MAX_DURATION:
                errors["duration"] = [f"Ensure this value is less than or equal to {MAX_DURATION}."]
    environment = payload.get("environment")
    if environment is not None and not isinstance(environment, str):
        errors["environment"] = ["Not a valid string."]
    trace_id: uuid.UUID | None = None
    contexts = payload.get("contexts")
    trace = contexts.get("trace") if isinstance(contexts, Mapping) else None
    if isinstance(trace, Mapping) and trace.get("trace_id") is not None:
        try:
            trace_id = uuid.UUID(str(trace["trace_id"]))
        except ValueError:
            errors["contexts"] = ["Must be a valid UUID."]
    if errors:
        _raise(ProcessingErrorType.CHECKIN_VALIDATION_FAILED, errors=errors)
    assert status is not None
    return status, duration, trace_id


# --- locating, updating, creating (B4.5-B4.7) ----------------------------------------------


def _update_or_create(
    conn: Connection,
    monitor: Monitor,
    env: MonitorEnvironment,
    guid: uuid.UUID,
    status: CheckInStatus,
    duration: int | None,
    trace_id: uuid.UUID | None,
    start_time: datetime,
    clock: datetime,
) -> CheckIn | None:
    """The check-in after applying the message, or None when nothing is to follow (a
    late heartbeat for a finished run)."""
    if guid.int == 0:
        row = conn.execute(
            select(checkin_table)
            .where(
                and_(
                    checkin_table.c.monitor_environment_id == env.id,
                    checkin_table.c.status == int(CheckInStatus.IN_PROGRESS),
                )
            )
            .order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id))
            .limit(1)
            .with_for_update()
        ).first()
        existing = None if row is None else _checkin(row)
        if existing is None:
            guid = uuid.uuid4()
    else:
        row = conn.execute(
            select(checkin_table).where(checkin_table.c.guid == guid).with_for_update()
        ).first()
        existing = None if row is None else _checkin(row)
        if existing is not None and existing.monitor_environment_id != env.id:
            other = get_monitor_environment_by_id(conn, existing.monitor_environment_id)
            name = other.environment if other is not None else None
            _raise(
                ProcessingErrorType.CHECKIN_ENVIRONMENT_MISMATCH,
                monitor,
                existingEnvironment=name,
            )
    if existing is None:
        created = _create(conn, monitor, env, guid, status, duration, trace_id, start_time, clock)
        if created is not None:
            return created
        existing = get_checkin_by_guid(conn, guid)  # inserted meanwhile
        assert existing is not None
    return _update(conn, monitor, env, existing, status, duration, start_time)


def _new_checkin_values(
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


def _create(
    conn: Connection,
    monitor: Monitor,
    env: MonitorEnvironment,
    guid: uuid.UUID,
    status: CheckInStatus,
    duration: int | None,
    trace_id: uuid.UUID | None,
    start_time: datetime,
    clock: datetime,
) -> CheckIn | None:
    values = _new_checkin_values(monitor, env, guid, status, duration, trace_id, start_time, clock)
    date_added, timeout = values["date_added"], values["timeout_at"]
    try:
        with conn.begin_nested():
            checkin_id = conn.execute(
                checkin_table.insert().values(**values).returning(checkin_table.c.id)
            ).scalar_one()
    except IntegrityError:
        return None
    return CheckIn(
        id=checkin_id,
        guid=guid,
        project_id=monitor.project_id,
        monitor_id=monitor.id,
        monitor_environment_id=env.id,
        status=status,
        duration=duration,
        date_added=date_added,
        date_updated=start_time,
        timeout_at=timeout,
        trace_id=trace_id,
    )


def _update(
    conn: Connection,
    monitor: Monitor,
    env: MonitorEnvironment,
    existing: CheckIn,
    status: CheckInStatus,
    duration: int | None,
    start_time: datetime,
) -> CheckIn | None:
    errors: list[ProcessingError] = []
    if (
        existing.project_id != monitor.project_id
        or existing.monitor_id != monitor.id
        or existing.monitor_environment_id != env.id
    ):
        errors.append(
            _error(ProcessingErrorType.CHECKIN_GUID_PROJECT_MISMATCH, guid=existing.guid.hex)
        )
    if existing.status in (CheckInStatus.OK, CheckInStatus.ERROR):
        if status == CheckInStatus.IN_PROGRESS:
            return None
        errors.append(_error(ProcessingErrorType.CHECKIN_FINISHED))
    if duration is None:
        duration = int(abs((start_time - existing.date_added).total_seconds()) * 1000)
    if duration < 0 or duration > MAX_DURATION:
        errors.append(_error(ProcessingErrorType.CHECKIN_INVALID_DURATION, duration=str(duration)))
    if errors:
        raise ProcessingErrorsException(errors, monitor)
    new_status = status
    if existing.status == CheckInStatus.TIMEOUT and status in (
        CheckInStatus.OK,
        CheckInStatus.ERROR,
    ):
        new_status = CheckInStatus.TIMEOUT
    values: dict[str, Any] = {"duration": duration, "status": int(new_status), "timeout_at": None}
    if status == CheckInStatus.IN_PROGRESS:
        values["timeout_at"] = heartbeat_timeout_at(start_time, existing.date_added, monitor.config)
        values["date_updated"] = start_time
    conn.execute(update(checkin_table).where(checkin_table.c.id == existing.id).values(**values))
    return replace(
        existing,
        duration=duration,
        status=new_status,
        timeout_at=values["timeout_at"],
        date_updated=values.get("date_updated", existing.date_updated),
    )


# --- mark_ok / mark_failed (B5, B6) ---------------------------------------------------


def _recent_statuses(
    conn: Connection, env_id: int, count: int, before: datetime | None = None
) -> list[CheckIn]:
    query = select(checkin_table).where(checkin_table.c.monitor_environment_id == env_id)
    if before is not None:
        query = query.where(checkin_table.c.date_added <= before)
    rows = conn.execute(
        query.order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id)).limit(count)
    )
    return [_checkin(r) for r in rows]


def _active_incident(conn: Connection, env_id: int) -> Row[Any] | None:
    return conn.execute(
        select(incident_table).where(
            and_(
                incident_table.c.monitor_environment_id == env_id,
                incident_table.c.resolving_checkin_id.is_(None),
            )
        )
    ).first()


def mark_ok(
    conn: Connection,
    checkin: CheckIn,
    succeeded_at: datetime,
    produce_occurrence: ProduceOccurrence,
    *,
    monitor: Monitor | None = None,
    env: MonitorEnvironment | None = None,
) -> None:
    """B5: move the environment's last/next check-in and, for an OK check-in that
    completes the recovery threshold, set it OK and resolve its active incident.
    `monitor` and `env`, when given, are the check-in's as read in this transaction."""
    if monitor is None:
        monitor = get_monitor_by_id(conn, checkin.monitor_id)
    if env is None:
        env = get_monitor_environment_by_id(conn, checkin.monitor_environment_id)
    assert monitor is not None and env is not None
    params: dict[str, Any] = {
        "last_checkin": checkin.date_added,
        "next_checkin": next_expected(succeeded_at, monitor.config),
        "next_checkin_latest": next_expected_latest(succeeded_at, monitor.config),
    }
    if env.status != MonitorStatus.OK and checkin.status == CheckInStatus.OK:
        threshold = recovery_threshold(monitor.config)
        recovering = threshold <= 1 or all(
            c.status == CheckInStatus.OK for c in _recent_statuses(conn, env.id, threshold)
        )
        if recovering:
            params["status"] = int(MonitorStatus.OK)
            incident = _active_incident(conn, env.id)
            if incident is not None:
                resolve_incident_group(produce_occurrence, incident.grouphash, monitor.project_id)
                conn.execute(
                    update(incident_table)
                    .where(incident_table.c.id == incident.id)
                    .values(
                        resolving_checkin_id=checkin.id,
                        resolving_timestamp=checkin.date_added,
                    )
                )
    if env.last_checkin is None or env.last_checkin <= succeeded_at:
        conn.execute(
            update(monitor_environment_table)
            .where(monitor_environment_table.c.id == env.id)
            .values(**params)
        )


def resolve_incident_group(
    produce_occurrence: ProduceOccurrence, grouphash: str, project_id: int
) -> None:
    """Resolve the incident's issue: a RESOLVED status change for its fingerprint."""
    payload = status_change_payload(grouphash, project_id)
    produce_occurrence(payload, f"{grouphash}-{project_id}")


def status_change_payload(grouphash: str, project_id: int) -> dict[str, Any]:
    return {
        "payload_type": "status_change",
        "id": uuid.uuid4().hex,
        "fingerprint": [grouphash],
        "project_id": project_id,
        "new_status": GROUP_STATUS_RESOLVED,
        "new_substatus": None,
    }


@dataclass(frozen=True)
class FailureFacts:
    """What a caller already read in this transaction about an environment one of whose
    check-ins it is about to fail, so `mark_failed` need not read it again: its active
    incident (None: none open) and when its last OK check-in was added (None: never)."""

    incident: Row[Any] | None
    last_ok: datetime | None


def mark_failed(
    conn: Connection,
    failed: CheckIn,
    failed_at: datetime,
    produce_occurrence: ProduceOccurrence,
    received: datetime | None = None,
    now: datetime | None = None,
    *,
    monitor: Monitor | None = None,
    env: MonitorEnvironment | None = None,
    facts: FailureFacts | None = None,
) -> bool:
    """B6: move the environment's check-in times and apply the failure threshold,
    opening (or continuing) its incident and producing the monitor-failure occurrences.
    False when a newer check-in already moved the environment, or its status does not
    take failures. `monitor`, `env` and `facts`, when given, are as read in this
    transaction (`env` locked)."""
    received = failed_at if received is None else received
    if monitor is None:
        monitor = get_monitor_by_id(conn, failed.monitor_id)
    if env is None:
        env = get_monitor_environment_by_id(conn, failed.monitor_environment_id)
    assert monitor is not None and env is not None
    last_checkin = env.last_checkin if failed.status == CheckInStatus.MISSED else failed.date_added
    values: dict[str, Any] = {
        "last_checkin": last_checkin,
        "next_checkin": next_expected(failed_at, monitor.config),
        "next_checkin_latest": next_expected_latest(failed_at, monitor.config),
    }
    # The threshold is decided before the write so that the check-in times and the
    # status go out in one UPDATE; its window reads check-ins only, which that UPDATE
    # does not touch.
    window = [failed]
    opens = False
    if env.status in (MonitorStatus.OK, MonitorStatus.ACTIVE):
        threshold = failure_issue_threshold(monitor.config)
        if threshold > 1:
            window = list(reversed(_recent_statuses(conn, env.id, threshold, failed.date_added)))
        opens = not any(c.status == CheckInStatus.OK for c in window)
        if opens:
            values["status"] = int(MonitorStatus.ERROR)
    me = monitor_environment_table
    query = update(me).where(me.c.id == env.id)
    if last_checkin is not None:
        query = query.where((me.c.last_checkin <= last_checkin) | me.c.last_checkin.is_(None))
    if conn.execute(query.values(**values)).rowcount == 0:
        return False
    before = env.status
    env = replace(
        env,
        last_checkin=last_checkin,
        next_checkin=values["next_checkin"],
        next_checkin_latest=values["next_checkin_latest"],
        status=MonitorStatus.ERROR if opens else env.status,
    )
    if before in (MonitorStatus.OK, MonitorStatus.ACTIVE):
        if not opens:
            return False
        incident = facts.incident if facts is not None else _active_incident(conn, env.id)
        if incident is None:
            incident = _open_incident(conn, monitor, env, window[0], received)
    elif before == MonitorStatus.ERROR:
        incident = facts.incident if facts is not None else _active_incident(conn, env.id)
    else:
        return False
    if incident is not None and not monitor.is_muted and not env.is_muted:
        last_ok = facts.last_ok if facts is not None else _last_successful(conn, env.id)
        for checkin in window:
            payload = failure_occurrence(
                conn, monitor, env, incident, checkin, window, received, now, last_ok=last_ok
            )
            produce_occurrence(payload, f"{incident.grouphash}-{monitor.project_id}")
    return True


def _open_incident(
    conn: Connection,
    monitor: Monitor,
    env: MonitorEnvironment,
    starting: CheckIn,
    received: datetime,
) -> Row[Any] | None:
    """Open the environment's incident from `starting`; the one opened meanwhile if
    another transaction was first."""
    try:
        with conn.begin_nested():
            return conn.execute(
                incident_table.insert()
                .values(
                    monitor_id=monitor.id,
                    monitor_environment_id=env.id,
                    starting_checkin_id=starting.id,
                    starting_timestamp=starting.date_added,
                    grouphash=uuid.uuid4().hex,
                    date_added=received,
                )
                .returning(*incident_table.c)
            ).one()
    except IntegrityError:
        return _active_incident(conn, env.id)


def _last_successful(conn: Connection, env_id: int) -> datetime | None:
    value = conn.execute(
        select(checkin_table.c.date_added)
        .where(
            and_(
                checkin_table.c.monitor_environment_id == env_id,
                checkin_table.c.status == int(CheckInStatus.OK),
            )
        )
        .order_by(desc(checkin_table.c.date_added))
        .limit(1)
    ).scalar_one_or_none()
    return aware_utc(value)


_UNREAD: Final = object()


def failure_occurrence(
    conn: Connection,
    monitor: Monitor,
    env: MonitorEnvironment,
    incident: Row[Any],
    checkin: CheckIn,
    window: list[CheckIn],
    received: datetime,
    now: datetime | None = None,
    *,
    last_ok: datetime | object | None = _UNREAD,
) -> dict[str, Any]:
    """The monitor-failure occurrence of B8.3 for one check-in of the window.
    `last_ok`, when given, is the environment's last OK check-in time (None: never)."""
    moment = datetime.now(UTC) if now is None else now
    event_id = uuid.uuid4().hex
    if last_ok is _UNREAD:
        last_ok = _last_successful(conn, env.id)
    assert last_ok is None or isinstance(last_ok, datetime)
    assignee = (
        f"user:{monitor.owner_user_id}"
        if monitor.owner_user_id is not None
        else f"team:{monitor.owner_team_id}"
        if monitor.owner_team_id is not None
        else None
    )
    contexts: dict[str, Any] = {
        "monitor": {
            "id": str(monitor.guid),
            "slug": monitor.slug,
            "name": monitor.name,
            "config": monitor.config,
            "status": env.status.label,
            "type": "cron_job",
        }
    }
    if checkin.trace_id is not None:
        contexts["trace"] = {"trace_id": checkin.trace_id.hex, "span_id": None}
    environment = env.environment  # the name, read with the environment
    return {
        "payload_type": "occurrence",
        "id": uuid.uuid4().hex,
        "event_id": event_id,
        "project_id": monitor.project_id,
        "fingerprint": [incident.grouphash],
        "type": MONITOR_FAILURE_TYPE,
        "issue_title": f"Monitor failure: {monitor.name}",
        "subtitle": "Your monitor has reached its failure threshold.",
        "resource_id": None,
        "evidence_data": {},
        "evidence_display": [
            {
                "name": "Failure reason",
                "value": failure_reason(c.status for c in window),
                "important": True,
            },
            {"name": "Environment", "value": environment, "important": False},
            {
                "name": "Last successful check-in",
                "value": last_ok.isoformat() if last_ok is not None else "Never",
                "important": False,
            },
        ],
        "culprit": "",
        "level": "error",
        "detection_time": moment.isoformat(),
        "assignee": assignee,
        "event": {
            "contexts": contexts,
            "environment": environment,
            "event_id": event_id,
            "fingerprint": [incident.grouphash],
            "platform": "other",
            "project_id": monitor.project_id,
            "received": received.isoformat(),
            "sdk": None,
            "tags": {
                "monitor.id": str(monitor.guid),
                "monitor.slug": monitor.slug,
                "monitor.incident": str(incident.id),
            },
            "timestamp": moment.isoformat(),
        },
    }
