"""A chunk of check-ins applied in one transaction (B4.3): what it reads once, up front,
and keeps up to date (`BatchRows`), and the write-behind of its common check-ins
(`write_behind`), whose writes `BatchRows.flush` sends to the database together.

Takes the caller's connection: reads projects, organizations and monitors, reads and locks
monitor environments and check-ins, and writes only check-ins and monitor environments'
check-in times (and status: ok after an environment's first check-in, if that is ok).
Raises no processing errors and touches no incidents: a check-in it cannot take is left
to the general path (`checkin_processing`)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select

from vigil.db.bulk import insert_rows, update_rows
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.monitors.checkin_store import (
    MAX_DURATION,
    checkin_from_row,
    in_progress_of_monitors,
    new_checkin_values,
)
from vigil.monitors.enums import CheckInStatus, MonitorStatus
from vigil.monitors.models import CheckIn, Monitor, MonitorEnvironment
from vigil.monitors.processing_errors import CheckinItem
from vigil.monitors.schedule import heartbeat_timeout_at, next_expected, next_expected_latest
from vigil.monitors.slugs import valid_monitor_slug
from vigil.monitors.store import (
    get_monitor_environment_by_id,
    get_monitors,
    lock_monitor_environments,
)
from vigil.tenancy.store import (
    Organization,
    Project,
    get_organization_by_id,
    get_project_by_id,
)


@dataclass
class BatchRows:
    """What a chunk of check-ins applied in one transaction knows, so that the common
    check-in costs no reads and its writes go to the database together.

    Read once, up front (`prefetch`): projects with their organization, the monitors the
    chunk names, their environments (rows locked for the transaction, so their state
    here stays exact), which check-in ids do not exist yet, and the in-progress
    check-ins of the monitors that nil-id check-ins name. Kept up to date with this
    transaction's own writes: a monitor or environment it creates or updates, each
    environment's state after a check-in moved it and its in-progress check-ins
    (forgotten, so read again, after any check-in that took the general path), the ids of
    the projects' environments it met.

    Write-behind: an `ok` or `in_progress` check-in whose environment needs no status
    change (no recovery to evaluate), or gets its very first check-in and it is ok, and
    that either is new (by its id, or with the nil id where its environment has no
    check-in in progress) or continues an in-progress check-in known here (by its id or,
    with the nil id, its environment's latest; read and locked up front, or created in
    this chunk) only inserts or updates its row and moves its environment's check-in
    times, and status to ok for that first one (B4.5-B4.7, B5). Those writes
    are kept in `pending_*` and written by `flush`, which runs before any check-in takes
    the general path and when the chunk ends, so every read sees the writes of the
    check-ins before it."""

    projects: dict[int, tuple[Project, Organization] | None] = field(default_factory=dict)
    monitors: dict[tuple[int, str], Monitor] = field(default_factory=dict)
    environments: dict[tuple[int, str], int] = field(default_factory=dict)
    # Projects' environments (not monitors'), by (project id, name), as met.
    environment_ids: dict[tuple[int, str], int] = field(default_factory=dict)
    states: dict[int, MonitorEnvironment] = field(default_factory=dict)
    absent_guids: set[uuid.UUID] = field(default_factory=set)
    # In-progress check-ins read and locked up front, or created here; in id order (the
    # database's, then this transaction's inserts), which breaks ties of "latest".
    open_checkins: dict[uuid.UUID, CheckIn] = field(default_factory=dict)
    # Environments whose every in-progress check-in is in `open_checkins`, for the nil id.
    open_known: set[int] = field(default_factory=set)
    pending_checkins: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    pending_updates: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    pending_environments: dict[int, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def prefetch(cls, conn: Connection, items: Sequence[CheckinItem]) -> BatchRows:
        rows = cls()
        slugs: dict[int, set[str]] = {}
        guids: set[uuid.UUID] = set()
        latest: set[tuple[int, str]] = set()  # monitors with a nil-id check-in
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
            else:
                latest.add((project_id, slug))
        for project_id, wanted in slugs.items():
            if rows.project(conn, project_id) is not None:
                for slug, monitor in get_monitors(conn, project_id, wanted).items():
                    rows.monitors[(project_id, slug)] = monitor
        # The in-progress check-ins of the environments a nil id may close (B4.5), found
        # through their index, locked with those the chunk names by id.
        latest_monitors = {rows.monitors[key].id for key in latest if key in rows.monitors}
        open_ids: set[int] = set()
        if latest_monitors:
            open_ids = {r.id for r in conn.execute(in_progress_of_monitors(latest_monitors))}
        if guids or open_ids:
            # check-ins locked before environments: the order the clock's tasks lock in
            found = [
                checkin_from_row(r)
                for r in conn.execute(
                    select(checkin_table)
                    .where(or_(checkin_table.c.guid.in_(guids), checkin_table.c.id.in_(open_ids)))
                    .order_by(checkin_table.c.id)
                    .with_for_update()
                )
            ]
            rows.absent_guids = guids - {c.guid for c in found}
            rows.open_checkins = {c.guid: c for c in found if c.status == CheckInStatus.IN_PROGRESS}
        for env in lock_monitor_environments(conn, [m.id for m in rows.monitors.values()]):
            rows.environments[(env.monitor_id, env.environment)] = env.id
            rows.states[env.id] = env
        if latest_monitors:
            # Read again under the environments' locks, which whoever adds a check-in to
            # them holds: an environment whose set changed since is left to the general path.
            now_open = list(conn.execute(in_progress_of_monitors(latest_monitors)))
            changed = {r.monitor_environment_id for r in now_open if r.id not in open_ids}
            rows.open_known = {
                env_id
                for (monitor_id, _), env_id in rows.environments.items()
                if monitor_id in latest_monitors and env_id not in changed
            }
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
        self.open_known.discard(env_id)
        for guid in [
            g for g, c in self.open_checkins.items() if c.monitor_environment_id == env_id
        ]:
            del self.open_checkins[guid]

    def latest_open(self, env_id: int) -> CheckIn | None:
        """The environment's most recent in-progress check-in here: by date added, then
        by id (the later in `open_checkins`)."""
        latest: CheckIn | None = None
        for checkin in self.open_checkins.values():
            if checkin.monitor_environment_id == env_id and (
                latest is None or checkin.date_added >= latest.date_added
            ):
                latest = checkin
        return latest

    def flush(self, conn: Connection) -> None:
        """Write the pending check-ins, their updates and environment updates, each kind
        in one statement (or one executemany)."""
        insert_rows(conn, checkin_table, list(self.pending_checkins.values()))
        self.pending_checkins = {}
        update_rows(conn, checkin_table, "guid", _keyed("guid", self.pending_updates))
        self.pending_updates = {}
        update_rows(conn, monitor_environment_table, "id", _keyed("id", self.pending_environments))
        self.pending_environments = {}


def _keyed(key: str, pending: Mapping[Any, Mapping[str, Any]]) -> list[dict[str, Any]]:
    # Each pending row's columns with its key column.
    return [{key: row_key, **values} for row_key, values in pending.items()]


def write_behind(
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
    env_status = env.status
    if env.status != MonitorStatus.OK and status == CheckInStatus.OK:
        if not _untouched(env):
            return False  # mark_ok evaluates recovery
        # Its first check-in, and ok: whatever the recovery threshold, every check-in
        # in its window is ok, and no incident can be open.
        env_status = MonitorStatus.OK
    new = guid in rows.absent_guids
    if guid.int == 0:
        # The environment's latest in-progress check-in, else a new one (B4.5). An
        # untouched environment has none: a check-in, even in progress, moves it.
        if _untouched(env):
            rows.open_known.add(env.id)
        if env.id not in rows.open_known:
            return False  # which check-in it closes, if any, is the general path's to find
        latest = rows.latest_open(env.id)
        if latest is None:
            guid, new = uuid.uuid4(), True
        else:
            guid, new = latest.guid, False
    # Everything that can fail (a stored schedule that does not compute) before anything
    # is kept: a check-in that fails here is dropped whole, as its savepoint would be.
    if new:
        values = new_checkin_values(
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
        rows.pending_environments[env.id] = {**moved, "status": int(env_status)}
        rows.states[env.id] = replace(env, status=env_status, **moved)
    return True


def _untouched(env: MonitorEnvironment) -> bool:
    """An environment no check-in has moved yet (as made by its first check-in): an
    incident opens only on a failure, which sets its check-in times and its status."""
    return (
        env.status == MonitorStatus.ACTIVE and env.last_checkin is None and env.next_checkin is None
    )


def _moved(monitor: Monitor, added: datetime, succeeded_at: datetime) -> dict[str, Any]:
    """The environment's check-in times after `mark_ok` of a check-in added at `added`."""
    return {
        "last_checkin": added,
        "next_checkin": next_expected(succeeded_at, monitor.config),
        "next_checkin_latest": next_expected_latest(succeeded_at, monitor.config),
    }
