"""Data retention: what is older than `VIGIL_RETENTION_DAYS` goes, as Sentry's cleanup
does for a self-hosted install (90 days by default; 0 keeps everything).

- issues last seen before the cutoff, with all that is theirs (hashes, events,
  occurrences, environments, releases seen, inbox, activity, history, snooze);
- events and occurrences before the cutoff of issues still seen, and those that made no
  issue (noise gate, quota) or were stored for none;
- crons check-ins before the cutoff, and incidents resolved before it (a check-in an
  incident still refers to stays).

Monitors, their environments' state, releases and environments themselves stay.

Every deletion is a small batch in its own transaction, found through an index, so that
the consumers writing meanwhile wait for SQLite's write lock only briefly; `vigil
periodic` runs it hourly on a thread of its own (the crons clock's jobs never wait for
it), and `vigil cleanup` runs it at once, with progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, delete, select

from vigil.db.tables import event as event_table
from vigil.db.tables import group as group_table
from vigil.db.tables import issue_occurrence as occurrence_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as environment_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.tables import project as project_table

log = logging.getLogger(__name__)

# Rows deleted per transaction; groups per transaction (each takes its rows with it).
BATCH: Final = 1_000
GROUP_BATCH: Final = 50
# How often `vigil periodic` starts a run.
EVERY_S: Final = 3600.0


@dataclass
class Removed:
    """How many rows a run deleted, by kind."""

    issues: int = 0
    events: int = 0
    occurrences: int = 0
    checkins: int = 0
    incidents: int = 0

    def total(self) -> int:
        return self.issues + self.events + self.occurrences + self.checkins + self.incidents


Progress = Callable[[str, int], None]


def remove_expired(
    engine: Engine, now: datetime, days: int, progress: Progress | None = None
) -> Removed:
    """Delete what is older than `days` days before `now`; `progress(kind, n)` is told
    of each batch. Nothing is deleted when `days` is 0."""
    removed = Removed()
    if days <= 0:
        return removed
    cutoff = now - timedelta(days=days)

    def report(kind: str, count: int) -> None:
        setattr(removed, kind, getattr(removed, kind) + count)
        if progress is not None and count:
            progress(kind, count)

    with engine.connect() as conn:
        projects = [int(p) for (p,) in conn.execute(select(project_table.c.id))]
        environments = [int(e) for (e,) in conn.execute(select(environment_table.c.id))]
    for project_id in projects:
        _issues(engine, project_id, cutoff, report)
        _events_of_seen_issues(engine, project_id, cutoff, report)
        _without_issue(engine, project_id, cutoff, report)
    for environment_id in environments:
        _incidents(engine, environment_id, cutoff, report)
        _checkins(engine, environment_id, cutoff, report)
    return removed


def _issues(engine: Engine, project_id: int, cutoff: datetime, report: Progress) -> None:
    g = group_table
    while True:
        with engine.begin() as conn:
            ids = _ids(
                conn,
                select(g.c.id)
                .where(g.c.project_id == project_id, g.c.last_seen < cutoff)
                .limit(GROUP_BATCH),
            )
            if ids:
                # The foreign keys take the issue's rows with it (ON DELETE CASCADE).
                conn.execute(delete(g).where(g.c.id.in_(ids)))
        report("issues", len(ids))
        if len(ids) < GROUP_BATCH:
            return


def _events_of_seen_issues(
    engine: Engine, project_id: int, cutoff: datetime, report: Progress
) -> None:
    g = group_table
    with engine.connect() as conn:
        older = _ids(
            conn, select(g.c.id).where(g.c.project_id == project_id, g.c.first_seen < cutoff)
        )
    o, e = occurrence_table, event_table
    for group_id in older:
        old_occurrences = (o.c.group_id == group_id, o.c.date_added < cutoff)
        _in_batches(engine, o, old_occurrences, "occurrences", report)
        _in_batches(engine, e, (e.c.group_id == group_id, e.c.timestamp < cutoff), "events", report)


def _without_issue(engine: Engine, project_id: int, cutoff: datetime, report: Progress) -> None:
    """Occurrences that made no issue, and events stored for no issue (noise-gated ones,
    ones an occurrence looks up)."""
    o, e = occurrence_table, event_table
    # (An occurrence id is unique per project only: the project is part of the match.)
    conditions = (o.c.group_id.is_(None), o.c.project_id == project_id, o.c.date_added < cutoff)
    _in_batches(engine, o, conditions, "occurrences", report)
    conditions = (e.c.group_id.is_(None), e.c.project_id == project_id, e.c.timestamp < cutoff)
    _in_batches(engine, e, conditions, "events", report)


def _incidents(engine: Engine, environment_id: int, cutoff: datetime, report: Progress) -> None:
    i = incident_table
    with engine.begin() as conn:
        done = conn.execute(
            delete(i).where(
                i.c.monitor_environment_id == environment_id,
                i.c.resolving_checkin_id.is_not(None),
                i.c.resolving_timestamp < cutoff,
            )
        ).rowcount
    report("incidents", int(done))


def _checkins(engine: Engine, environment_id: int, cutoff: datetime, report: Progress) -> None:
    c, i = checkin_table, incident_table
    with engine.connect() as conn:
        # The check-ins that resolved the incidents kept: the incident needs them.
        kept = _ids(
            conn,
            select(i.c.resolving_checkin_id).where(
                i.c.monitor_environment_id == environment_id,
                i.c.resolving_checkin_id.is_not(None),
            ),
        )
    conditions = [c.c.monitor_environment_id == environment_id, c.c.date_added < cutoff]
    if kept:
        conditions.append(c.c.id.not_in(kept))
    _in_batches(engine, c, conditions, "checkins", report)


def _in_batches(
    engine: Engine, table: Table, conditions: Sequence[Any], kind: str, report: Progress
) -> None:
    """Delete the rows of `table` meeting `conditions`, BATCH at a time (found by its
    `id`, the conditions asked again as they are deleted)."""
    key = table.c.id
    while True:
        with engine.begin() as conn:
            ids = _ids(conn, select(key).where(*conditions).limit(BATCH))
            if ids:
                conn.execute(delete(table).where(key.in_(ids), *conditions))
        report(kind, len(ids))
        if len(ids) < BATCH:
            return


def _ids(conn: Connection, query: Any) -> list[Any]:
    return [row[0] for row in conn.execute(query)]


class Retention:
    """`vigil periodic`'s job: starts a run on a thread of its own unless one is still
    going, so that the other jobs (the crons clock's every half second) never wait; or,
    not `background` (`vigil periodic --once`), runs it before returning."""

    def __init__(self, days: int, *, background: bool = True) -> None:
        self.days = days
        self.background = background
        self._thread: threading.Thread | None = None

    def __call__(self, engine: Engine, now: datetime) -> None:
        if self.days <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        if not self.background:
            self._run(engine, now)
            return
        self._thread = threading.Thread(
            target=self._run, args=(engine, now), name="vigil-retention", daemon=True
        )
        self._thread.start()

    def _run(self, engine: Engine, now: datetime) -> None:
        try:
            removed = remove_expired(engine, now, self.days)
        except Exception:
            log.exception("retention run failed; the next one tries again")
            return
        if removed.total():
            log.info(
                "retention: old data removed",
                extra={
                    "days": self.days,
                    "issues": removed.issues,
                    "events": removed.events,
                    "occurrences": removed.occurrences,
                    "checkins": removed.checkins,
                    "incidents": removed.incidents,
                },
            )

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a run in progress (tests, shutdown)."""
        if self._thread is not None:
            self._thread.join(timeout)
