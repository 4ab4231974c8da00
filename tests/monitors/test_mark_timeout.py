"""Timed-out and unknown runs (B7.5, B7.6) on both databases: only a check-in still in
progress times out; a newer finished run keeps the environment from failing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.support.checkins import T0, Sender, checkins, env_row, incidents
from vigil.db.tables import monitor_environment as me_table
from vigil.db.timestamps import aware_utc
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_tasks import (
    dispatch_check_timeout,
    dispatch_mark_unknown,
    mark_checkin_timeout,
    mark_checkin_unknown,
)
from vigil.monitors.enums import CheckInStatus, MonitorStatus
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *", "max_runtime": 30}
M = timedelta(minutes=1)
TIMEOUT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # T0 (12:00:05) + 30 minutes, truncated

Produced = list[tuple[dict[str, Any], str]]


@pytest.fixture
def project(engine: Engine) -> Project:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "acme")
        return tenancy.create_project(conn, org, "app")


@pytest.fixture
def produced() -> Produced:
    return []


@pytest.fixture
def send(engine: Engine, project: Project, produced: Produced) -> Sender:
    processing = CheckinProcessing(produce_occurrence=lambda p, k: produced.append((p, k)))
    return Sender(engine, project, processing)


def timeouts(engine: Engine, tick: datetime) -> list[int | None]:
    with engine.connect() as conn:
        return [task.checkin_id for task in dispatch_check_timeout(conn, tick)]


def unknowns(engine: Engine, tick: datetime) -> list[int | None]:
    with engine.connect() as conn:
        return [task.checkin_id for task in dispatch_mark_unknown(conn, tick)]


def time_out(engine: Engine, checkin_id: int, tick: datetime, produced: Produced) -> bool:
    with engine.begin() as conn:
        return mark_checkin_timeout(conn, checkin_id, tick, lambda p, k: produced.append((p, k)))


def test_in_progress_checkins_are_due_at_their_timeout(engine: Engine, send: Sender) -> None:
    send(monitor_config=HOURLY, status="in_progress")
    [row] = checkins(engine)
    assert aware_utc(row.timeout_at) == TIMEOUT
    assert timeouts(engine, TIMEOUT - M) == []
    assert timeouts(engine, TIMEOUT) == [row.id]


def test_a_timeout_fails_the_environment(engine: Engine, send: Sender, produced: Produced) -> None:
    send(monitor_config=HOURLY, status="in_progress")
    [row] = checkins(engine)
    assert time_out(engine, row.id, TIMEOUT, produced)
    [row] = checkins(engine)
    assert row.status == CheckInStatus.TIMEOUT
    env = env_row(engine)
    assert env.status == MonitorStatus.ERROR
    assert aware_utc(env.last_checkin) == aware_utc(row.date_added)
    # failed from the last expected time before the tick (12:00): next run 13:00
    assert aware_utc(env.next_checkin) == datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
    assert len(incidents(engine)) == 1
    [(occurrence, _)] = produced
    assert occurrence["evidence_display"][0]["value"] == "A timeout check-in was detected"
    assert timeouts(engine, TIMEOUT + M) == []


def test_a_duplicate_timeout_task_fails_once(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY, status="in_progress")
    [row] = checkins(engine)
    assert time_out(engine, row.id, TIMEOUT, produced)
    assert not time_out(engine, row.id, TIMEOUT + M, produced)
    assert len(produced) == 1


@pytest.mark.parametrize("status", ["ok", "error"])
def test_a_run_completed_before_the_task_keeps_its_status(
    engine: Engine, send: Sender, produced: Produced, status: str
) -> None:
    guid = send(monitor_config=HOURLY, status="in_progress")
    [row] = checkins(engine)
    send(T0 + 31 * M, check_in_id=guid, status=status)  # late, but before the task ran
    before = len(produced)
    assert not time_out(engine, row.id, TIMEOUT, produced)
    [row] = checkins(engine)
    assert row.status == CheckInStatus[status.upper()]
    assert len(produced) == before


def test_a_newer_finished_run_keeps_the_environment_from_failing(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY, status="in_progress")
    send(T0 + 10 * M, status="ok")  # an overlapping run that finished
    stuck = checkins(engine)[0]
    assert time_out(engine, stuck.id, TIMEOUT, produced)
    assert checkins(engine)[0].status == CheckInStatus.TIMEOUT
    env = env_row(engine)
    assert env.status == MonitorStatus.OK
    assert aware_utc(env.last_checkin) == T0 + 10 * M
    assert produced == []


def test_a_missing_checkin_is_a_no_op(engine: Engine, produced: Produced) -> None:
    assert not time_out(engine, 12345, TIMEOUT, produced)


def test_unknown_marks_in_progress_runs_newest_first_and_never_fails(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY, status="in_progress")
    send(T0 + 2 * M, status="in_progress", monitor_slug="other", monitor_config=HOURLY)
    send(T0 + 3 * M, status="ok", monitor_slug="third", monitor_config=HOURLY)
    first, second, _ = (r.id for r in checkins(engine))
    assert unknowns(engine, T0 + M) == [first]
    assert unknowns(engine, T0 + 5 * M) == [second, first]
    with engine.begin() as conn:
        assert mark_checkin_unknown(conn, first)
        assert not mark_checkin_unknown(conn, first)
    rows = checkins(engine)
    assert [r.status for r in rows] == [
        CheckInStatus.UNKNOWN,
        CheckInStatus.IN_PROGRESS,
        CheckInStatus.OK,
    ]
    assert env_row_of(engine, rows[0].monitor_environment_id).status == MonitorStatus.ACTIVE
    assert produced == []


def test_an_unknown_run_can_still_be_completed(engine: Engine, send: Sender) -> None:
    guid = send(monitor_config=HOURLY, status="in_progress")
    [row] = checkins(engine)
    with engine.begin() as conn:
        mark_checkin_unknown(conn, row.id)
    send(T0 + 5 * M, check_in_id=guid, status="ok")
    [row] = checkins(engine)
    assert row.status == CheckInStatus.OK


def env_row_of(engine: Engine, env_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(me_table).where(me_table.c.id == env_id)).one()
