"""The clock-tasks consumer applies its tasks in chunks (one transaction, a savepoint per
task, the common missed runs written in bulk) on both databases: a chunk leaves the
database as the tasks applied one by one would, and a task that fails is skipped alone.
Time is the tick's, chosen by the test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from tests.support.checkins import T0, Sender
from vigil.config import Settings
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_environment as me_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.tables import outbox as outbox_table
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_consumers import ClockTasksConsumer
from vigil.monitors.clock_tasks import (
    dispatch_check_missing,
    dispatch_check_timeout,
    mark_checkin_timeout,
    mark_environment_missing,
)
from vigil.monitors.enums import CheckInStatus, ObjectStatus
from vigil.streams.codecs import ClockTask
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}  # margin 1 minute
TICK = datetime(2026, 3, 1, 13, 1, tzinfo=UTC)
INVALID = {"schedule_type": 2, "schedule": [-2, "minute"]}


@pytest.fixture
def consumer(stack: Settings) -> Iterator[ClockTasksConsumer]:
    made = ClockTasksConsumer(stack)
    yield made
    made.close()


def _project(engine: Engine, org_slug: str) -> Project:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, org_slug)
        return tenancy.create_project(conn, org, "app")


def _sender(engine: Engine, project: Project) -> Sender:
    return Sender(engine, project, CheckinProcessing(produce_occurrence=lambda p, k: None))


def _populate(engine: Engine, send: Sender) -> None:
    """Environments of every kind a tick meets: opening an incident (threshold 1),
    continuing one (already in ERROR), counting towards a threshold of 2 (twice: the OK
    check-in in the window, or not), muted, disabled, not due, and one with a run that
    also times out at the tick."""
    send(monitor_config=HOURLY, monitor_slug="opens")
    send(T0 - timedelta(hours=1), monitor_config=HOURLY, monitor_slug="continues")
    send(monitor_config=HOURLY, monitor_slug="continues", status="error")
    send(monitor_config={**HOURLY, "failure_issue_threshold": 2}, monitor_slug="counts")
    send(
        monitor_config={**HOURLY, "failure_issue_threshold": 2},
        monitor_slug="reaches",
        status="error",
    )
    send(monitor_config=HOURLY, monitor_slug="muted")
    send(monitor_config=HOURLY, monitor_slug="disabled")
    send(TICK, monitor_config=HOURLY, monitor_slug="not-due")
    send(monitor_config={**HOURLY, "max_runtime": 30}, monitor_slug="times-out", status="error")
    send(
        T0 + timedelta(minutes=5),
        monitor_config={**HOURLY, "max_runtime": 30},
        monitor_slug="times-out",
        status="in_progress",
    )
    with engine.begin() as conn:
        project_monitors = monitor_table.c.project_id == send.project.id
        conn.execute(
            update(monitor_table)
            .where(project_monitors & (monitor_table.c.slug == "muted"))
            .values(is_muted=True)
        )
        conn.execute(
            update(monitor_table)
            .where(project_monitors & (monitor_table.c.slug == "disabled"))
            .values(status=int(ObjectStatus.DISABLED))
        )


def _tasks(engine: Engine, project: Project) -> list[ClockTask]:
    """The tick's tasks for the project's environments (each missed one twice: a
    duplicate delivery changes nothing)."""
    with engine.connect() as conn:
        ours = set(
            conn.execute(
                select(me_table.c.id)
                .join(monitor_table, monitor_table.c.id == me_table.c.monitor_id)
                .where(monitor_table.c.project_id == project.id)
            ).scalars()
        )
        missing = [
            t for t in dispatch_check_missing(conn, TICK) if t.monitor_environment_id in ours
        ]
        timeouts = [
            t for t in dispatch_check_timeout(conn, TICK) if t.monitor_environment_id in ours
        ]
    assert missing and timeouts
    return missing + timeouts + missing


def _one_by_one(engine: Engine, tasks: list[ClockTask]) -> list[dict[str, Any]]:
    """The tasks as they were applied before chunks: each alone in its own transaction,
    reading everything itself."""
    produced: list[dict[str, Any]] = []
    for task in tasks:
        with engine.begin() as conn:
            if task.type == "mark_missing":
                mark_environment_missing(
                    conn, task.monitor_environment_id, TICK, lambda p, k: produced.append(p)
                )
            else:
                assert task.checkin_id is not None
                mark_checkin_timeout(conn, task.checkin_id, TICK, lambda p, k: produced.append(p))
    return produced


def _outbox(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        values = conn.execute(select(outbox_table.c.value).order_by(outbox_table.c.id)).scalars()
        return [orjson.loads(v) for v in values]


def _state(engine: Engine, project: Project, occurrences: list[dict[str, Any]]) -> Any:
    """The project's monitors as the API would show them, by slug, without ids, guids
    and wall-clock times."""
    with engine.connect() as conn:
        slugs = dict(
            conn.execute(
                select(monitor_table.c.id, monitor_table.c.slug).where(
                    monitor_table.c.project_id == project.id
                )
            ).all()
        )
        envs = {
            slugs[r.monitor_id]: (
                r.status,
                r.next_checkin,
                r.next_checkin_latest,
                r.last_checkin,
            )
            for r in conn.execute(select(me_table).where(me_table.c.monitor_id.in_(slugs)))
        }
        found = conn.execute(
            select(checkin_table)
            .where(checkin_table.c.monitor_id.in_(slugs))
            .order_by(checkin_table.c.id)
        ).all()
        runs = sorted(
            (slugs[r.monitor_id], r.status, r.date_added, r.expected_time, r.date_clock)
            for r in found
        )
        starts = {r.id: (r.status, r.date_added) for r in found}
        opened = sorted(
            (
                slugs[r.monitor_id],
                starts[r.starting_checkin_id],
                r.starting_timestamp,
                r.resolving_checkin_id is None,
                r.date_added,
            )
            for r in conn.execute(
                select(incident_table).where(incident_table.c.monitor_id.in_(slugs))
            )
        )
    told = sorted(
        (
            o["event"]["tags"]["monitor.slug"],
            o["issue_title"],
            orjson.dumps(o["evidence_display"]),
            o["event"]["contexts"]["monitor"]["status"],
            o["event"]["environment"],
            o["event"]["received"],
        )
        for o in occurrences
        if o["project_id"] == project.id
    )
    return envs, runs, opened, told


def test_a_chunk_leaves_the_database_as_the_tasks_one_by_one(
    engine: Engine, consumer: ClockTasksConsumer
) -> None:
    alone, chunked = _project(engine, "alone"), _project(engine, "chunked")
    _populate(engine, _sender(engine, alone))
    _populate(engine, _sender(engine, chunked))
    produced = _one_by_one(engine, _tasks(engine, alone))
    consumer.run_tasks(_tasks(engine, chunked))
    expected = _state(engine, alone, produced)
    assert _state(engine, chunked, _outbox(engine)) == expected
    envs, runs, opened, told = expected
    assert len(runs) > len(envs)  # the tick did record misses and timeouts
    assert opened and told


def test_a_task_that_fails_in_a_chunk_is_skipped_alone(
    engine: Engine, consumer: ClockTasksConsumer
) -> None:
    project = _project(engine, "acme")
    send = _sender(engine, project)
    for slug in ("first", "bulk-broken", "middle", "broken", "last"):
        threshold = 2 if slug == "broken" else 1  # one failing in bulk, one alone
        send(monitor_config={**HOURLY, "failure_issue_threshold": threshold}, monitor_slug=slug)
    with engine.begin() as conn:
        conn.execute(
            update(monitor_table)
            .where(monitor_table.c.slug.in_(["bulk-broken", "broken"]))
            .values(config=INVALID)
        )
    with engine.connect() as conn:
        tasks = dispatch_check_missing(conn, TICK)
    assert len(tasks) == 5
    consumer.run_tasks(tasks)
    with engine.connect() as conn:
        missed = conn.execute(
            select(monitor_table.c.slug)
            .join(checkin_table, checkin_table.c.monitor_id == monitor_table.c.id)
            .where(checkin_table.c.status == int(CheckInStatus.MISSED))
            .order_by(monitor_table.c.slug)
        ).scalars()
        assert list(missed) == ["first", "last", "middle"]
    assert sorted(o["event"]["tags"]["monitor.slug"] for o in _outbox(engine)) == [
        "first",
        "last",
        "middle",
    ]
