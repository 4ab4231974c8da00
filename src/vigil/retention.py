"""Data retention: what is older than `VIGIL_RETENTION_DAYS` goes, as Sentry's cleanup
does for a self-hosted install (90 days by default; 0 keeps everything).

- issues last seen before the cutoff, with all that is theirs (hashes, events,
  occurrences, environments, releases seen, inbox, activity, history, snooze);
- events and occurrences before the cutoff of issues still seen, and those that made no
  issue (noise gate, quota) or were stored for none;
- crons check-ins before the cutoff, and incidents resolved before it (the check-in
  that resolved an incident kept stays; an open incident keeps its start time, not
  necessarily its starting check-in).

"Before the cutoff" goes by when vigil stored a row, not only by the time a client
claims: an issue whose events say they are old but that still gets occurrences stays,
and so do events received lately.

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


def _stale_issues(project_id: int, cutoff: datetime) -> tuple[Any, ...]:
    """Issues last seen before the cutoff, and with no occurrence stored since: an
    event's time is the client's, so an issue whose events claim to be old but keep
    arriving stays."""
    g, o = group_table, occurrence_table
    recent = select(o.c.group_id).where(o.c.group_id == g.c.id, o.c.date_added >= cutoff)
    return (g.c.project_id == project_id, g.c.last_seen < cutoff, ~recent.exists())


def _old_events(group_id: int | None, project_id: int, cutoff: datetime) -> tuple[Any, ...]:
    """A group's events (None: events of no group) from before the cutoff."""
    e = event_table
    of_group = e.c.group_id.is_(None) if group_id is None else e.c.group_id == group_id
    return (of_group, *_event_is_old(project_id, cutoff))


def _event_is_old(project_id: int, cutoff: datetime) -> tuple[Any, ...]:
    """An event of the project from before the cutoff, by its time and by when it was
    received (a backfilled event is kept for the retention from when it came)."""
    e = event_table
    return (e.c.project_id == project_id, e.c.timestamp < cutoff, e.c.received < cutoff)


def _old_occurrences(group_id: int | None, project_id: int, cutoff: datetime) -> tuple[Any, ...]:
    o = occurrence_table
    of_group = o.c.group_id.is_(None) if group_id is None else o.c.group_id == group_id
    return (of_group, *_occurrence_is_old(project_id, cutoff))


def _occurrence_is_old(project_id: int, cutoff: datetime) -> tuple[Any, ...]:
    # (An occurrence id is unique per project only: the project is part of the match.)
    o = occurrence_table
    return (o.c.project_id == project_id, o.c.date_added < cutoff)


def _issues(engine: Engine, project_id: int, cutoff: datetime, report: Progress) -> None:
    g = group_table
    stale = _stale_issues(project_id, cutoff)
    tried: set[int] = set()
    while True:
        with engine.connect() as conn:
            ids = _ids(conn, select(g.c.id).where(*stale).order_by(g.c.id).limit(GROUP_BATCH))
        ids = [i for i in ids if i not in tried]
        if not ids:
            return
        tried.update(ids)
        # Their many rows in small batches first; then the groups, each only if it is
        # still stale (an occurrence may have come meanwhile), taking the rest with them
        # (ON DELETE CASCADE: hashes, activity, history, inbox, environments).
        for group_id in ids:
            _delete_old_rows(engine, group_id, project_id, cutoff, report)
        with engine.begin() as conn:
            done = conn.execute(delete(g).where(g.c.id.in_(ids), *stale)).rowcount
        report("issues", int(done))


def _delete_old_rows(
    engine: Engine, group_id: int | None, project_id: int, cutoff: datetime, report: Progress
) -> None:
    o, e = occurrence_table, event_table
    _in_batches(engine, o, _old_occurrences(group_id, project_id, cutoff), "occurrences", report)
    _in_batches(engine, e, _old_events(group_id, project_id, cutoff), "events", report)


def _events_of_seen_issues(
    engine: Engine, project_id: int, cutoff: datetime, report: Progress
) -> None:
    g, e, o = group_table, event_table, occurrence_table
    # Only the issues that have something to delete, found in one statement (an index
    # probe per issue: event by group and time, occurrence by group and date), not two
    # deletes per issue first seen before the cutoff, which every hourly run repeated
    # for each long-lived issue.
    old_events = select(e.c.id).where(e.c.group_id == g.c.id, *_event_is_old(project_id, cutoff))
    old_occurrences = select(o.c.id).where(
        o.c.group_id == g.c.id, *_occurrence_is_old(project_id, cutoff)
    )
    with engine.connect() as conn:
        older = _ids(
            conn,
            select(g.c.id).where(
                g.c.project_id == project_id,
                g.c.first_seen < cutoff,
                old_events.exists() | old_occurrences.exists(),
            ),
        )
    for group_id in older:
        _delete_old_rows(engine, group_id, project_id, cutoff, report)


def _without_issue(engine: Engine, project_id: int, cutoff: datetime, report: Progress) -> None:
    """Occurrences that made no issue, and events stored for no issue (noise-gated ones,
    ones an occurrence looks up)."""
    _delete_old_rows(engine, None, project_id, cutoff, report)


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
    # A check-in that resolved an incident kept stays: the incident needs it. (An open
    # incident's starting check-in may go: the incident keeps its start time.) Asked
    # in each batch's own statements, so a resolution meanwhile is seen.
    resolving = select(i.c.resolving_checkin_id).where(
        i.c.monitor_environment_id == environment_id, i.c.resolving_checkin_id.is_not(None)
    )
    conditions = (
        c.c.monitor_environment_id == environment_id,
        c.c.date_added < cutoff,
        c.c.id.not_in(resolving),
    )
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
