"""Missed check-ins (B7.4) on both databases: which environments a tick concerns, and
what `mark_environment_missing` records. Time is the tick's, chosen by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from tests.support.checkins import (
    T0,
    Sender,
    checkins,
    env_row,
    incidents,
)
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as me_table
from vigil.db.timestamps import aware_utc
from vigil.monitors import clock_tasks
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_tasks import dispatch_check_missing, mark_environment_missing
from vigil.monitors.enums import CheckInStatus, MonitorStatus, ObjectStatus
from vigil.monitors.schedule import InvalidSchedule
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}  # margin 1 minute
H13 = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
M = timedelta(minutes=1)

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


def due(engine: Engine, tick: datetime) -> list[int]:
    with engine.connect() as conn:
        return [task.monitor_environment_id for task in dispatch_check_missing(conn, tick)]


def mark(engine: Engine, env_id: int, tick: datetime, produced: Produced) -> bool:
    with engine.begin() as conn:
        return None is not mark_environment_missing(
            conn, env_id, tick, lambda p, k: produced.append((p, k))
        )


def test_an_environment_is_due_once_its_latest_checkin_time_has_passed(
    engine: Engine, send: Sender
) -> None:
    send(monitor_config=HOURLY)  # 12:00:05 ok: next 13:00, latest 13:01
    env_id = env_row(engine).id
    assert due(engine, H13) == []
    assert due(engine, H13 + M) == [env_id]
    assert due(engine, H13 + 30 * M) == [env_id]


def test_missed_checkin_at_the_expected_time_last_checkin_untouched(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    assert mark(engine, env_id, H13 + M, produced)
    ok, missed = checkins(engine)
    assert missed.status == CheckInStatus.MISSED
    assert aware_utc(missed.date_added) == aware_utc(missed.expected_time) == H13
    assert aware_utc(missed.date_clock) == H13 + M
    assert missed.monitor_config == ok.monitor_config
    env = env_row(engine)
    assert aware_utc(env.last_checkin) == T0  # a synthetic miss never moves it
    assert aware_utc(env.next_checkin) == H13 + 60 * M
    assert aware_utc(env.next_checkin_latest) == H13 + 61 * M
    assert env.status == MonitorStatus.ERROR
    [incident] = incidents(engine)
    assert incident.starting_checkin_id == missed.id
    [(occurrence, key)] = produced
    assert occurrence["evidence_display"][0]["value"] == "A missed check-in was detected"
    assert key == f"{incident.grouphash}-{ok.project_id}"


def test_skipped_slots_record_one_miss_and_the_schedule_jumps_forward(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    tick = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # 13:00, 14:00 and 15:00 all missed
    assert mark(engine, env_id, tick, produced)
    [_, missed] = checkins(engine)
    assert aware_utc(missed.date_added) == H13  # the first missed slot
    env = env_row(engine)
    assert aware_utc(env.next_checkin) == datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    assert due(engine, tick) == []


def test_duplicate_tasks_create_one_miss(engine: Engine, send: Sender, produced: Produced) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    assert mark(engine, env_id, H13 + M, produced)
    assert not mark(engine, env_id, H13 + M, produced)
    assert not mark(engine, env_id, H13 + 2 * M, produced)
    assert [r.status for r in checkins(engine)] == [CheckInStatus.OK, CheckInStatus.MISSED]
    assert len(produced) == 1


def test_the_next_slot_missed_too_makes_a_second_miss(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    mark(engine, env_id, H13 + M, produced)
    assert due(engine, H13 + 60 * M) == []
    assert mark(engine, env_id, H13 + 61 * M, produced)
    misses = [r for r in checkins(engine) if r.status == CheckInStatus.MISSED]
    assert [aware_utc(r.date_added) for r in misses] == [H13, H13 + 60 * M]
    assert aware_utc(env_row(engine).last_checkin) == T0
    assert len(incidents(engine)) == 1  # the same incident goes on
    assert len(produced) == 2


@pytest.mark.parametrize(
    ("table", "status"),
    [
        (monitor_table, ObjectStatus.DISABLED),
        (monitor_table, ObjectStatus.PENDING_DELETION),
        (me_table, MonitorStatus.DISABLED),
        (me_table, MonitorStatus.DELETION_IN_PROGRESS),
    ],
)
def test_disabled_monitors_and_environments_are_skipped(
    engine: Engine, send: Sender, produced: Produced, table: Any, status: int
) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    with engine.begin() as conn:
        conn.execute(update(table).values(status=int(status)))
    assert due(engine, H13 + M) == []
    assert not mark(engine, env_id, H13 + M, produced)  # disabled after dispatch
    assert len(checkins(engine)) == 1


@pytest.mark.parametrize("table", [monitor_table, me_table])
def test_muted_monitors_and_environments_record_misses_without_occurrences(
    engine: Engine, send: Sender, produced: Produced, table: Any
) -> None:
    send(monitor_config=HOURLY)
    env_id = env_row(engine).id
    with engine.begin() as conn:
        conn.execute(update(table).values(is_muted=True))
    assert due(engine, H13 + M) == [env_id]
    assert mark(engine, env_id, H13 + M, produced)
    assert checkins(engine)[-1].status == CheckInStatus.MISSED
    assert env_row(engine).status == MonitorStatus.ERROR
    assert produced == []


def test_a_failure_threshold_counts_misses(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config={**HOURLY, "failure_issue_threshold": 2})
    env_id = env_row(engine).id
    mark(engine, env_id, H13 + M, produced)
    assert env_row(engine).status == MonitorStatus.OK  # the OK check-in is in the window
    mark(engine, env_id, H13 + 61 * M, produced)
    assert env_row(engine).status == MonitorStatus.ERROR
    assert [o["evidence_display"][0]["value"] for o, _ in produced] == [
        "2 missed check-ins detected",
        "2 missed check-ins detected",
    ]


def test_an_invalid_stored_schedule_raises_and_leaves_other_environments(
    engine: Engine, send: Sender, produced: Produced
) -> None:
    send(monitor_config=HOURLY)
    send(monitor_config=HOURLY, monitor_slug="other")
    first, second = (r.id for r in _envs(engine))
    with engine.begin() as conn:
        conn.execute(
            update(monitor_table)
            .where(monitor_table.c.slug == "nightly")
            .values(config={"schedule_type": 2, "schedule": [-2, "minute"]})
        )
    with pytest.raises(InvalidSchedule):
        mark(engine, first, H13 + M, produced)
    assert mark(engine, second, H13 + M, produced)
    assert [r.status for r in checkins(engine)].count(CheckInStatus.MISSED) == 1


def _envs(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(me_table).order_by(me_table.c.id)))


def test_disabled_monitors_due_first_never_starve_the_others(
    engine: Engine, send: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More environments of disabled monitors are due than one query reads: the live
    ones behind them are still dispatched, and the limit still holds."""
    monkeypatch.setattr(clock_tasks, "QUERY_LIMIT", 2)
    for i in range(3):
        send(T0 - timedelta(hours=1), monitor_config=HOURLY, monitor_slug=f"off-{i}")
    for i in range(3):
        send(monitor_config=HOURLY, monitor_slug=f"on-{i}")
    with engine.begin() as conn:
        conn.execute(
            update(monitor_table)
            .where(monitor_table.c.slug.like("off-%"))
            .values(status=int(ObjectStatus.DISABLED))
        )
    live = [r.id for r in _envs(engine)][3:]
    assert due(engine, H13 + M) == live[:2]
