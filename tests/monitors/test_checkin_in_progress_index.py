"""An environment's in-progress check-ins are found without walking its history (the nil
id's "latest in progress", B4.5, and the consumer's read-ahead of them), on both
databases: each planner, asked about an environment with thousands of finished check-ins
and statistics on them, reads the partial in-progress index."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, Select, insert, text
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from tests.support.checkins import T0, Sender, checkins
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.checkin_store import in_progress_of_monitors, latest_in_progress
from vigil.monitors.enums import CheckInStatus
from vigil.tenancy import store as tenancy

DAILY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
NIL = "00000000-0000-0000-0000-000000000000"
HISTORY = 3_000


def _plan(conn: Connection, query: Select[Any]) -> str:
    """The database's plan of `query` with its parameters bound: on PostgreSQL, a
    prepared statement's generic plan (the one a long-running consumer's repeated
    statements end up with, which cannot know a bound parameter's value)."""
    postcompile = {"render_postcompile": True}
    if conn.dialect.name == "sqlite":
        compiled = query.compile(dialect=conn.dialect, compile_kwargs=postcompile)
        params = tuple(compiled.params[key] for key in compiled.positiontup or ())
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)
        return " ".join(str(row[-1]) for row in rows)
    numbered = postgresql_psycopg.dialect(paramstyle="numeric_dollar")
    compiled = query.compile(dialect=numbered, compile_kwargs=postcompile)
    values = ", ".join(str(int(compiled.params[key])) for key in compiled.positiontup or ())
    conn.exec_driver_sql(f"PREPARE in_progress_plan AS {compiled}")
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    try:
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE in_progress_plan({values})")
        return " ".join(str(row[0]) for row in rows)
    finally:
        conn.exec_driver_sql("RESET plan_cache_mode")
        conn.exec_driver_sql("DEALLOCATE in_progress_plan")


@pytest.fixture
def history(engine: Engine) -> tuple[int, int]:
    """(monitor id, environment id) of a monitor with HISTORY finished check-ins and one
    in progress, the oldest; the table analysed, as a server's statistics would have it."""
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "acme")
        project = tenancy.create_project(conn, org, "app")
    send = Sender(engine, project, CheckinProcessing(produce_occurrence=lambda p, k: None))
    send(monitor_config=DAILY, status="in_progress")
    [first] = checkins(engine)
    rows = [
        {
            "guid": uuid.uuid4(),
            "project_id": first.project_id,
            "monitor_id": first.monitor_id,
            "monitor_environment_id": first.monitor_environment_id,
            "status": int(CheckInStatus.OK),
            "duration": 1000,
            "date_added": T0 + timedelta(minutes=i + 1),
            "date_updated": T0 + timedelta(minutes=i + 1),
        }
        for i in range(HISTORY)
    ]
    with engine.begin() as conn:
        conn.execute(insert(checkin_table), rows)
        conn.execute(text("ANALYZE"))
    return first.monitor_id, first.monitor_environment_id


def test_the_latest_in_progress_check_in_is_read_from_the_in_progress_index(
    engine: Engine, history: tuple[int, int]
) -> None:
    _, env_id = history
    with engine.connect() as conn:
        plan = _plan(conn, latest_in_progress(env_id))
        assert "ix_monitor_checkin_in_progress" in plan, plan
        assert len(list(conn.execute(latest_in_progress(env_id)))) == 1


def test_the_in_progress_check_ins_of_monitors_are_read_from_the_in_progress_index(
    engine: Engine, history: tuple[int, int]
) -> None:
    monitor_id, _ = history
    with engine.connect() as conn:
        plan = _plan(conn, in_progress_of_monitors([monitor_id]))
        assert "ix_monitor_checkin_in_progress" in plan, plan
        assert len(list(conn.execute(in_progress_of_monitors([monitor_id])))) == 1


def test_the_index_condition_is_the_in_progress_status() -> None:
    # The index's condition is written as text in the schema and its migration.
    [index] = [i for i in checkin_table.indexes if i.name == "ix_monitor_checkin_in_progress"]
    for dialect in ("sqlite", "postgresql"):
        condition = index.dialect_options[dialect]["where"]
        assert str(condition) == f"status = {int(CheckInStatus.IN_PROGRESS)}"
