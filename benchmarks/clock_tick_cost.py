"""The crons clock's work per tick as monitors grow (issue 5, benchmark c).

    .venv/bin/python benchmarks/clock_tick_cost.py [--sizes 1000 10000 100000]
        [--due-percent 1] [--database-url postgresql+psycopg://postgres@host/postgres]
        [--repeat 3]

For each size N, a fresh database gets N monitors, each with one environment and one
finished `ok` check-in (history), of which `--due-percent` are due at the tick (their
`next_checkin_latest` is before it) and as many have an `in_progress` check-in past its
timeout; the rest are due in the future. Then, per tick:

- `dispatch`: the tick consumer's queries (`dispatch_check_missing` +
  `dispatch_check_timeout`), i.e. what every tick costs even when nothing is due;
- `tasks`: `mark_environment_missing` and `mark_checkin_timeout` for every due one,
  each in its own transaction, as the clock-tasks consumer runs them (occurrences
  collected, not produced).

Goal: the work grows with the due environments, not with all of them. Reported: median
over `--repeat` fresh runs, milliseconds, and microseconds per due environment.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from arroyo.types import Message, Value
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.db.migrate import migrate
from vigil.db.tables import environment, monitor, monitor_checkin, monitor_environment
from vigil.monitors.clock_consumers import ClockTasksConsumer
from vigil.monitors.clock_tasks import (
    dispatch_check_missing,
    dispatch_check_timeout,
    mark_checkin_timeout,
    mark_environment_missing,
)
from vigil.monitors.enums import CheckInStatus, MonitorStatus, MonitorType, ObjectStatus
from vigil.streams.backend import get_backend
from vigil.tenancy import store

TICK = datetime(2026, 3, 1, 13, 1, tzinfo=UTC)
CONFIG = {"schedule_type": 1, "schedule": "0 * * * *", "checkin_margin": 1, "max_runtime": 30}
CHUNK = 10_000


def populate(engine: Engine, size: int, due_percent: float) -> None:
    with engine.begin() as conn:
        org = store.create_organization(conn, "bench")
        project = store.create_project(conn, org, "bench")
        env_id = conn.execute(
            environment.insert()
            .values(project_id=project.id, name="production", date_added=TICK)
            .returning(environment.c.id)
        ).scalar_one()
    due = max(1, int(size * due_percent / 100))
    for start in range(0, size, CHUNK):
        ids = range(start, min(start + CHUNK, size))
        with engine.begin() as conn:
            conn.execute(
                monitor.insert(),
                [
                    {
                        "id": i + 1,
                        "guid": uuid.uuid4(),
                        "organization_id": org.id,
                        "project_id": project.id,
                        "slug": f"m{i}",
                        "name": f"m{i}",
                        "status": int(ObjectStatus.ACTIVE),
                        "type": int(MonitorType.CRON_JOB),
                        "is_muted": False,
                        "config": CONFIG,
                        "date_added": TICK - timedelta(days=1),
                    }
                    for i in ids
                ],
            )
            conn.execute(
                monitor_environment.insert(),
                [
                    {
                        "id": i + 1,
                        "monitor_id": i + 1,
                        "environment_id": env_id,
                        "status": int(MonitorStatus.OK),
                        "is_muted": False,
                        "next_checkin": TICK - timedelta(minutes=1)
                        if i < due
                        else TICK + timedelta(minutes=59),
                        "next_checkin_latest": TICK if i < due else TICK + timedelta(hours=1),
                        "last_checkin": TICK - timedelta(hours=1),
                        "date_added": TICK - timedelta(days=1),
                    }
                    for i in ids
                ],
            )
            rows: list[dict[str, Any]] = [
                _checkin(i, CheckInStatus.OK, TICK - timedelta(hours=1), None) for i in ids
            ]
            rows += [
                _checkin(i, CheckInStatus.IN_PROGRESS, TICK - timedelta(minutes=40), TICK)
                for i in ids
                if due <= i < 2 * due
            ]
            conn.execute(monitor_checkin.insert(), rows)
    # Fresh statistics, as autovacuum (PostgreSQL) would have after a bulk load.
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _checkin(
    i: int, status: CheckInStatus, at: datetime, timeout: datetime | None
) -> dict[str, Any]:
    return {
        "guid": uuid.uuid4(),
        "project_id": 1,
        "monitor_id": i + 1,
        "monitor_environment_id": i + 1,
        "status": int(status),
        "duration": None,
        "date_added": at,
        "date_updated": at,
        "date_clock": at,
        "expected_time": at,
        "timeout_at": timeout,
        "monitor_config": CONFIG,
        "trace_id": None,
    }


def measure(engine: Engine) -> tuple[float, float, int]:
    """(dispatch seconds, tasks seconds, tasks run)."""
    started = time.perf_counter()
    with engine.execution_options(readonly=True).connect() as conn:
        tasks = dispatch_check_missing(conn, TICK) + dispatch_check_timeout(conn, TICK)
    dispatched = time.perf_counter()
    collected: list[Any] = []
    for task in tasks:
        with engine.begin() as conn:
            if task.type == "mark_missing":
                mark_environment_missing(
                    conn, task.monitor_environment_id, TICK, lambda p, k: collected.append(p)
                )
            else:
                assert task.checkin_id is not None
                mark_checkin_timeout(conn, task.checkin_id, TICK, lambda p, k: collected.append(p))
    done = time.perf_counter()
    return dispatched - started, done - dispatched, len(tasks)


def measure_consumer(engine: Engine, home: Path) -> tuple[float, float, int]:
    """Like `measure`, but the tasks run through `ClockTasksConsumer.apply` in batches
    of 500 (the outbox and its flush to an embedded log under `home` included)."""
    settings = Settings(home=home, database_url=engine.url.render_as_string(hide_password=False))
    backend = get_backend(settings)
    backend.ensure_topics()
    backend.close()
    started = time.perf_counter()
    with engine.execution_options(readonly=True).connect() as conn:
        tasks = dispatch_check_missing(conn, TICK) + dispatch_check_timeout(conn, TICK)
    dispatched = time.perf_counter()
    consumer = ClockTasksConsumer(settings)
    try:
        for start in range(0, len(tasks), 500):  # the runner's batch size
            consumer.apply([Message(Value(t, {})) for t in tasks[start : start + 500]])
    finally:
        consumer.close()
    done = time.perf_counter()
    return dispatched - started, done - dispatched, len(tasks)


@contextmanager
def fresh_engine(admin_url: str | None, home: Path) -> Iterator[Engine]:
    """A migrated, empty database: a SQLite file under `home`, or a database of its own
    created on the PostgreSQL server of `admin_url` (and dropped afterwards)."""
    if not admin_url:
        engine = make_engine(Settings(home=home))
        migrate(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    name = f"vigil_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(make_url(admin_url).set(database=name))
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (admin URL); the benchmark makes and drops its own database",
    )
    parser.add_argument(
        "--consumer",
        action="store_true",
        help="run the tasks through ClockTasksConsumer (outbox and flush included)",
    )
    args = parser.parse_args()
    print("| monitor environments | due + timed out | dispatch ms | tasks ms | µs per task |")
    print("|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        results = []
        for _ in range(args.repeat):
            with (
                tempfile.TemporaryDirectory() as home,
                fresh_engine(args.database_url, Path(home)) as engine,
            ):
                populate(engine, size, args.due_percent)
                if args.consumer:
                    results.append(measure_consumer(engine, Path(home)))
                else:
                    results.append(measure(engine))
        dispatch = statistics.median(r[0] for r in results) * 1000
        tasks = statistics.median(r[1] for r in results) * 1000
        count = results[0][2]
        print(
            f"| {size:,} | {count:,} | {dispatch:.1f} | {tasks:.1f} | "
            f"{tasks * 1000 / max(count, 1):.0f} |"
        )


if __name__ == "__main__":
    main()
