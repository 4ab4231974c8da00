"""Custom sampling rules written by separate processes at once, on both databases: calls
racing for the same condition end with one rule; calls racing for new rules never get
the same id."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy import Engine, func, select

from vigil.config import Settings
from vigil.db.tables import custom_dynamic_sampling_rule as rule_table
from vigil.sampling import rules
from vigil.tenancy import store

WAIT_S = 120.0
PROCESSES = 4
CALLS = 8
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# argv: database url, organization id, project id, process index, calls, mode, gate
# file, now. Waits for the gate file, then makes `calls` update_or_create calls, each in
# its own transaction, and prints one JSON line per call: the rule's row id and rule id.
# mode "same": every process and call uses one condition (with values growing with the
# process index and call); mode "new": every call uses a condition of its own.
WRITER = """
import os, sys, time
from datetime import datetime, timedelta
import orjson
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.sampling import rules

url, org_id, project_id, index, calls, mode, gate, now = sys.argv[1:]
org_id, project_id, index, calls = int(org_id), int(project_id), int(index), int(calls)
now = datetime.fromisoformat(now)
engine = make_engine(Settings(database_url=url))
with engine.connect():
    pass
print("ready", flush=True)
while not os.path.exists(gate):
    time.sleep(0.005)
for call in range(calls):
    value = "/same" if mode == "same" else f"/p{index}/c{call}"
    with engine.begin() as conn:
        rule = rules.update_or_create(
            conn,
            condition={"op": "eq", "name": "event.transaction", "value": value},
            start=now,
            end=now + timedelta(hours=1 + index * calls + call),
            project_ids=[project_id],
            organization_id=org_id,
            num_samples=100 + index * calls + call,
            sample_rate=0.5,
            query="transaction:" + value,
            now=now,
        )
    print(orjson.dumps({"id": rule.id, "rule_id": rule.rule_id}).decode(), flush=True)
engine.dispose()
"""


def race(stack: Settings, engine: Engine, tmp_path: Path, mode: str) -> list[dict[str, int]]:
    with engine.begin() as conn:
        org = store.create_organization(conn, "racers")
        project = store.create_project(conn, org, "app")
    gate = tmp_path / f"gate-{mode}"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                stack.resolved_database_url,
                str(org.id),
                str(project.id),
                str(index),
                str(CALLS),
                mode,
                str(gate),
                NOW.isoformat(),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for index in range(PROCESSES)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        gate.touch()
        results = []
        for child in children:
            out, _ = child.communicate(timeout=WAIT_S)
            assert child.returncode == 0
            results += [orjson.loads(line) for line in out.splitlines()]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert len(results) == PROCESSES * CALLS
    return results


def test_processes_racing_for_one_condition_end_with_one_rule(
    stack: Settings, engine: Engine, tmp_path: Path
) -> None:
    results = race(stack, engine, tmp_path, "same")
    assert {r["id"] for r in results} == {results[0]["id"]}
    assert {r["rule_id"] for r in results} == {1}
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(rule_table)).scalar_one() == 1
        rule = rules.get_rule(conn, results[0]["id"])
    assert rule is not None
    # every extension was applied: the largest values of all calls won
    last = PROCESSES * CALLS - 1
    assert rule.end_date == NOW + timedelta(hours=1 + last)
    assert rule.num_samples == 100 + last


def test_processes_racing_for_new_rules_never_share_an_id(
    stack: Settings, engine: Engine, tmp_path: Path
) -> None:
    results = race(stack, engine, tmp_path, "new")
    ids = [r["rule_id"] for r in results]
    assert sorted(ids) == list(range(1, PROCESSES * CALLS + 1))
    assert len({r["id"] for r in results}) == PROCESSES * CALLS
    with engine.connect() as conn:
        rows = conn.execute(select(rule_table.c.rule_id)).scalars().all()
    assert sorted(rows) == list(range(1, PROCESSES * CALLS + 1))
