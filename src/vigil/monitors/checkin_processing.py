"""What one check-in message means (B4.3-B4.7): `process_checkins` applies decoded
`ingest-monitors` check-ins to the database, a chunk of them per transaction, each as if
alone (`process_checkin`: one), records processing errors (B10) for the ones that cannot
be applied, and hands monitor-failure occurrences and resolving status changes to the
transactional outbox (`vigil.streams.outbox`, topic `ingest-occurrences`) in the
transaction that decided them — or, for callers that give one, to a
`produce_occurrence(payload, key)` called after that transaction committed.

The steps are here; what they lean on is not: the rate limit (`checkin_rate_limit`), the
chunk's up-front reads and bulk writes (`checkin_batch`), check-in rows (`checkin_store`)
and what an outcome does to the monitor environment and its incidents (`incidents`).

Time is always the message's: `start_time` for the check-in, the log timestamp for the
rate limit and the error record. Only the occurrence's detection time and event
timestamp are "now" (B8.3).

Not here yet: the quota steps (3, 7, 9 never fire on a self-hosted install) and
outcomes.
"""

from __future__ import annotations

import copy
import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from vigil.db.engine import is_transient
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.issues.produce import enqueue_payload
from vigil.monitors import processing_error_store
from vigil.monitors.checkin_batch import BatchRows, write_behind
from vigil.monitors.checkin_rate_limit import (
    MinuteRateLimiter,
    RateLimiter,
    message_minute,
    rate_limit_key,
)
from vigil.monitors.checkin_store import (
    MAX_DURATION,
    checkin_from_row,
    get_checkin_by_guid,
    latest_in_progress,
    new_checkin_values,
)
from vigil.monitors.enums import CheckInStatus, ObjectStatus
from vigil.monitors.environment_name import environment_name
from vigil.monitors.incidents import ProduceOccurrence, mark_failed, mark_ok
from vigil.monitors.models import CheckIn, Monitor, MonitorEnvironment
from vigil.monitors.processing_errors import (
    CheckinItem,
    ProcessingError,
    ProcessingErrorsException,
    ProcessingErrorType,
)
from vigil.monitors.schedule import heartbeat_timeout_at
from vigil.monitors.slugs import valid_monitor_slug
from vigil.monitors.store import (
    MonitorEnvironmentLimitsExceeded,
    MonitorEnvironmentValidationFailed,
    MonitorLimitsExceeded,
    OwnerResolver,
    ensure_environment,
    ensure_monitor_with_config,
    get_monitor_environment_by_id,
    no_owners,
)

log = logging.getLogger(__name__)

_CLIENT_STATUSES: Final = {
    "ok": CheckInStatus.OK,
    "error": CheckInStatus.ERROR,
    "in_progress": CheckInStatus.IN_PROGRESS,
}


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


# --- the message ----------------------------------------------------------------------


def start_time_of(item: CheckinItem) -> datetime:
    return datetime.fromtimestamp(float(item.message["start_time"]), UTC)


class _Dropped(Exception):
    """A check-in whose own writes failed and were rolled back to its savepoint (the
    batch's transaction is still usable): logged and dropped (B4.2)."""


# Check-ins applied per transaction: bounds how long one batch holds SQLite's write lock.
CHECKINS_PER_TRANSACTION: Final = 200


@dataclass(frozen=True)
class DroppedCheckin:
    """A check-in that failed for a reason that is no processing error (a bug, a value
    the database refused): nothing of it was applied. The consumer dead-letters it, so
    that it is kept, with the reason, rather than only logged."""

    item: CheckinItem
    reason: str


def process_checkin(
    engine: Engine, item: CheckinItem, processing: CheckinProcessing
) -> list[DroppedCheckin]:
    """Apply one check-in: `process_checkins` of one."""
    return process_checkins(engine, [item], processing)


def process_checkins(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> list[DroppedCheckin]:
    """Apply check-ins in order, up to CHECKINS_PER_TRANSACTION in one database
    transaction, each as if alone (B4.3's steps, in order): a monitor or environment it
    creates stays even if its check-in then fails, and a check-in that fails leaves
    nothing else behind (its own writes are in a savepoint). Processing errors are
    stored with the original item; anything else is logged and the check-in dropped
    (B4.2), and returned, for the consumer to dead-letter — except a passing database
    outage, which is raised so the consumer runner
    retries the batch (the transaction rolls back whole: nothing is applied twice), and
    any other database error outside a check-in's savepoint, which may have made the
    transaction unusable (PostgreSQL) and is raised too: the runner then applies the
    batch's messages one at a time and dead-letters the one that fails.

    Occurrences and status changes are written to the outbox in the transaction that
    decided them, or, with `processing.produce_occurrence`, handed to it only after that
    transaction committed (an error raised by it propagates): a check-in that rolled back
    must not leave an issue behind."""
    dropped: list[DroppedCheckin] = []
    for start in range(0, len(items), CHECKINS_PER_TRANSACTION):
        chunk = items[start : start + CHECKINS_PER_TRANSACTION]
        dropped.extend(_process_chunk(engine, chunk, processing))
    return dropped


def _process_chunk(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> list[DroppedCheckin]:
    decided: list[tuple[dict[str, Any], str]] = []
    dropped: list[DroppedCheckin] = []
    with engine.begin() as conn:
        rows = BatchRows.prefetch(conn, items)
        for item in items:
            decided.extend(_apply_one(conn, item, processing, rows, dropped))
        rows.flush(conn)
    if processing.produce_occurrence is not None:
        for payload, key in decided:
            processing.produce_occurrence(payload, key)
    return dropped


def _apply_one(
    conn: Connection,
    item: CheckinItem,
    processing: CheckinProcessing,
    rows: BatchRows,
    dropped: list[DroppedCheckin],
) -> list[tuple[dict[str, Any], str]]:
    """One check-in in the batch's transaction; what it decided for a given
    `produce_occurrence` (empty when they went to the outbox). A check-in dropped for
    an unexpected error is added to `dropped`."""
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
    except DBAPIError:
        raise  # transient, or outside the check-in's savepoint: see process_checkins
    except Exception as exc:
        log.exception("Failed to process check-in")
        reason = exc.__cause__ if isinstance(exc, _Dropped) and exc.__cause__ else exc
        dropped.append(DroppedCheckin(item, f"{type(reason).__name__}: {reason}"))
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
                absent=True,  # the chunk read every monitor it names
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
                conn,
                project,
                monitor,
                env_name,
                processing.max_environments,
                now=start_time,
                absent=True,  # the chunk read every environment of its monitors
                environment_ids=rows.environment_ids,
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
    if write_behind(
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
        # int(seconds * 1000), as the reference, then the range; seconds near the float
        # maximum are infinite in milliseconds, and NaN is no number (msgpack has both).
        is_number = isinstance(raw_duration, int | float) and not isinstance(raw_duration, bool)
        milliseconds = raw_duration * 1000 if is_number else math.nan
        # (an int stays an int, however large: only a float can be NaN)
        if isinstance(milliseconds, float) and math.isnan(milliseconds):
            errors["duration"] = ["A valid integer is required."]
        elif milliseconds <= -1:
            errors["duration"] = ["Ensure this value is greater than or equal to 0."]
        elif milliseconds >= MAX_DURATION + 1:
            errors["duration"] = [f"Ensure this value is less than or equal to {MAX_DURATION}."]
        else:
            duration = int(milliseconds)
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
        row = conn.execute(latest_in_progress(env.id)).first()
        existing = None if row is None else checkin_from_row(row)
        if existing is None:
            guid = uuid.uuid4()
    else:
        row = conn.execute(
            select(checkin_table).where(checkin_table.c.guid == guid).with_for_update()
        ).first()
        existing = None if row is None else checkin_from_row(row)
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
    values = new_checkin_values(monitor, env, guid, status, duration, trace_id, start_time, clock)
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
