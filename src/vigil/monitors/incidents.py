"""What a check-in's outcome does to its monitor environment, and the incidents that
follow (B5, B6, B8.3). `mark_ok` moves the environment's check-in times and, once the
recovery threshold is met, sets it OK and resolves its active incident (a RESOLVED status
change for the incident's issue); `mark_failed` moves them and, once the failure threshold
is met, opens (or continues) the incident and builds its monitor-failure occurrences.

Both take the caller's connection: they read the monitor, the environment, its recent
check-ins and its incident, and write only the monitor environment and its incidents. What
they decide goes to the `produce_occurrence(payload, key)` the caller gives; nothing is
sent from here. An occurrence's detection time and event timestamp are "now"; every other
time is the caller's."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, Row, and_, desc, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.timestamps import aware_utc
from vigil.monitors.checkin_store import checkin_from_row
from vigil.monitors.enums import CheckInStatus, MonitorStatus
from vigil.monitors.failure_reason import failure_reason
from vigil.monitors.models import CheckIn, Monitor, MonitorEnvironment
from vigil.monitors.monitor_config import failure_issue_threshold, recovery_threshold
from vigil.monitors.schedule import next_expected, next_expected_latest
from vigil.monitors.store import get_monitor_by_id, get_monitor_environment_by_id

MONITOR_FAILURE_TYPE: Final = 4001
GROUP_STATUS_RESOLVED: Final = 1

ProduceOccurrence = Callable[[dict[str, Any], str], None]


def _recent_statuses(
    conn: Connection, env_id: int, count: int, before: datetime | None = None
) -> list[CheckIn]:
    query = select(checkin_table).where(checkin_table.c.monitor_environment_id == env_id)
    if before is not None:
        query = query.where(checkin_table.c.date_added <= before)
    rows = conn.execute(
        query.order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id)).limit(count)
    )
    return [checkin_from_row(r) for r in rows]


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
