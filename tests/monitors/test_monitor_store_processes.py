"""Monitors and environments created by separate processes at once, on both databases:
the organization's monitor limit and the per-monitor environment limit are never passed
together, and processes racing for one slug or one environment end with one row."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from sqlalchemy import Engine, Table, func, select

from vigil.config import Settings
from vigil.db.tables import environment as environment_table
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_environment as monitor_environment_table
from vigil.monitors.store import ensure_monitor_with_config, no_owners
from vigil.tenancy import store as tenancy

WAIT_S = 120.0
PROCESSES = 4
CALLS = 4
LIMIT = 5

# argv: database url, project id, process index, mode. Prints "ready", waits for a line
# on stdin (the gate), then makes CALLS calls, each in its own transaction, printing one
# outcome per call. Modes: "monitors" (a slug per call, limit LIMIT), "same" (one slug
# for all, printing the monitor id), "environments" (an environment per call on the
# monitor "shared", limit LIMIT), "production" (all ensure the default environment).
WRITER = f"""
import sys
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.monitors import store
from vigil.tenancy.store import get_project_by_id

url, project_id, index, mode = sys.argv[1:]
engine = make_engine(Settings(database_url=url))
with engine.connect() as conn:
    project = get_project_by_id(conn, int(project_id))
print("ready", flush=True)
sys.stdin.readline()
config = {{"schedule_type": "crontab", "schedule": "@daily", "max_runtime": int(index) + 1}}
for call in range({CALLS}):
    try:
        with engine.begin() as conn:
            if mode in ("monitors", "same"):
                slug = f"p{{index}}-{{call}}" if mode == "monitors" else "shared"
                found = store.ensure_monitor_with_config(
                    conn, project, slug, config, store.no_owners, {LIMIT}
                )
                print(found.monitor.id, flush=True)
            else:
                monitor = store.get_monitor(conn, project.id, "shared")
                name = f"e{{index}}-{{call}}" if mode == "environments" else None
                env = store.ensure_environment(conn, project, monitor, name, {LIMIT})
                print(env.id, flush=True)
    except (store.MonitorLimitsExceeded, store.MonitorEnvironmentLimitsExceeded):
        print("limit", flush=True)
engine.dispose()
"""


def race(stack: Settings, engine: Engine, mode: str, *, with_monitor: bool = False) -> list[str]:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "racers")
        project = tenancy.create_project(conn, org, "app")
        if with_monitor:
            config = {"schedule_type": "crontab", "schedule": "@daily"}
            ensure_monitor_with_config(conn, project, "shared", config, no_owners, 1)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                stack.resolved_database_url,
                str(project.id),
                str(index),
                mode,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:  # open the gate for all at once
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results: list[str] = []
        for child in children:
            out, _ = child.communicate(timeout=WAIT_S)
            assert child.returncode == 0
            results += out.split()
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert len(results) == PROCESSES * CALLS
    return results


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_processes_creating_monitors_never_pass_the_organization_limit(
    stack: Settings, engine: Engine
) -> None:
    results = Counter(race(stack, engine, "monitors"))
    assert results.pop("limit") == PROCESSES * CALLS - LIMIT
    assert len(results) == LIMIT  # distinct monitor ids
    assert count(engine, monitor_table) == LIMIT


def test_processes_racing_for_one_slug_end_with_one_monitor(
    stack: Settings, engine: Engine
) -> None:
    results = race(stack, engine, "same")
    assert len(set(results)) == 1
    assert count(engine, monitor_table) == 1


def test_processes_creating_environments_never_pass_the_monitor_limit(
    stack: Settings, engine: Engine
) -> None:
    results = Counter(race(stack, engine, "environments", with_monitor=True))
    assert results.pop("limit") == PROCESSES * CALLS - LIMIT
    assert len(results) == LIMIT
    assert count(engine, monitor_environment_table) == LIMIT


def test_processes_racing_for_one_environment_end_with_one(stack: Settings, engine: Engine) -> None:
    results = race(stack, engine, "production", with_monitor=True)
    assert len(set(results)) == 1
    assert count(engine, monitor_environment_table) == 1
    assert count(engine, environment_table) == 1
