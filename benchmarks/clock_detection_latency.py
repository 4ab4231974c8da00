"""Detection latency of a missed run on an idle embedded install (issue 5, benchmark a).

    .venv/bin/python benchmarks/clock_detection_latency.py [--monitors 20] [--minutes 3]

A fresh `vigil serve` (SQLite + the embedded log, nothing else running against it) with
`--monitors` monitors on a one-minute interval that never check in: each is due at
every minute boundary (`next_checkin_latest`), so each minute gives one sample per
monitor. A sample is the time from the boundary until the monitor's `missed` check-in
for it is in the database the API reads (polled every 20 ms by this process). Reported:
median, p99 and max over all samples. Goal (issue 5): median <= 1 s, p99 <= 2 s.

Burst (issue 5, benchmark b): `--monitors 10000 --minutes 1 --burst` — all of them due
at the same boundary; the database is polled for the count of that minute's misses only
(cheap next to reading them all), and the max is the time until the last one is visible.
Goal: within 5 s. `--clock-only` runs `vigil web`, `vigil periodic` and only the
consumers the clock needs instead of `vigil serve`, to see what the rest costs it.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select, update

from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.db.migrate import migrate
from vigil.db.tables import monitor_checkin, monitor_environment
from vigil.monitors import store as monitor_store
from vigil.monitors.enums import CheckInStatus, MonitorStatus
from vigil.tenancy import store

EVERY_MINUTE = {"schedule_type": "interval", "schedule": [1, "minute"]}
POLL_S = 0.02
# What `--clock-only` runs besides `vigil web` and `vigil periodic`: the idle clock reads
# the lag of ingest-monitors, so its consumer runs too.
CLOCK_CONSUMERS = ("ingest-monitors", "monitors-clock-tick", "monitors-clock-tasks")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--monitors", type=int, default=20)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument(
        "--burst", action="store_true", help="poll the count of misses only (many monitors)"
    )
    parser.add_argument(
        "--database-url", help="an empty PostgreSQL database (default: SQLite in a fresh home)"
    )
    parser.add_argument("--kafka", help="Kafka bootstrap servers (default: the embedded log)")
    parser.add_argument(
        "--clock-only",
        action="store_true",
        help="instead of `vigil serve`: web, periodic and only the consumers the clock needs "
        "(no ingest-occurrences consumer competing for the machine)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        if args.database_url:
            settings = replace(settings, database_url=args.database_url)
        engine = make_engine(settings)
        migrate(engine)
        with engine.begin() as conn:
            org = store.create_organization(conn, "bench")
            project = store.create_project(conn, org, "bench")
            env_ids = []
            for i in range(args.monitors):
                ensured = monitor_store.ensure_monitor_with_config(
                    conn, project, f"job-{i}", EVERY_MINUTE, monitor_store.no_owners, 10_000
                )
                assert ensured.monitor is not None
                env_ids.append(
                    monitor_store.ensure_environment(conn, project, ensured.monitor, None, 10).id
                )
        bind = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
        env.update(VIGIL_HOME=home, VIGIL_BIND=bind, VIGIL_LOG_LEVEL="WARNING")
        if args.database_url:
            env["VIGIL_DATABASE_URL"] = args.database_url
        if args.kafka:
            env["VIGIL_KAFKA_BOOTSTRAP_SERVERS"] = args.kafka
        commands = [["serve"]] if not args.clock_only else [["web"], ["periodic"]]
        if args.clock_only:
            commands += [["consumer", name] for name in CLOCK_CONSUMERS]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "vigil", *command],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for command in commands
        ]
        samples: list[float] = []
        try:
            wait_healthy(f"http://{bind}")
            # Due from the next boundary at least 10 s away: set once the server is up,
            # however long the setup took.
            first = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
            if (first - datetime.now(UTC)).total_seconds() < 10:
                first += timedelta(minutes=1)
            with engine.begin() as conn:
                conn.execute(
                    update(monitor_environment)
                    .where(monitor_environment.c.id.in_(env_ids))
                    .values(
                        status=int(MonitorStatus.OK),
                        last_checkin=first - timedelta(minutes=2),
                        next_checkin=first - timedelta(minutes=1),
                        next_checkin_latest=first,
                    )
                )
            for minute in range(args.minutes):
                boundary = first + timedelta(minutes=minute)
                if args.burst:
                    samples += measure_burst(engine, boundary, args.monitors)
                else:
                    samples += measure(engine, boundary, args.monitors)
                print(f"{boundary:%H:%M}: {len(samples)} samples so far", file=sys.stderr)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
            engine.dispose()
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"samples {len(samples)}: median {statistics.median(samples):.3f} s, "
        f"p99 {p99:.3f} s, max {ordered[-1]:.3f} s"
    )


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/_health/", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("vigil serve did not start")


def measure(engine: object, boundary: datetime, monitors: int) -> list[float]:
    """Seconds from `boundary` until each monitor's missed check-in for it is visible."""
    expected = boundary - timedelta(minutes=1)
    seen: dict[int, float] = {}
    deadline = boundary.timestamp() + 60
    query = select(monitor_checkin.c.monitor_environment_id).where(
        (monitor_checkin.c.status == int(CheckInStatus.MISSED))
        & (monitor_checkin.c.expected_time == expected)
    )
    while len(seen) < monitors and time.time() < deadline:
        with engine.execution_options(readonly=True).connect() as conn:  # type: ignore[attr-defined]
            found = conn.execute(query).scalars().all()
        now = time.time()
        for env_id in found:
            seen.setdefault(env_id, now - boundary.timestamp())
        time.sleep(POLL_S)
    if len(seen) < monitors:
        print(f"{monitors - len(seen)} misses not seen within a minute", file=sys.stderr)
    return list(seen.values())


def measure_burst(engine: object, boundary: datetime, monitors: int) -> list[float]:
    """Seconds from `boundary` until the first and until the last of the monitors' missed
    check-ins for it are visible (the count polled every 20 ms)."""
    expected = boundary - timedelta(minutes=1)
    query = select(func.count()).where(
        (monitor_checkin.c.status == int(CheckInStatus.MISSED))
        & (monitor_checkin.c.expected_time == expected)
    )
    first: float | None = None
    deadline = boundary.timestamp() + 60
    while time.time() < deadline:
        with engine.execution_options(readonly=True).connect() as conn:  # type: ignore[attr-defined]
            count = conn.execute(query).scalar_one()
        now = time.time() - boundary.timestamp()
        if count and first is None:
            first = now
        if count >= monitors:
            print(f"burst of {monitors}: first {first:.3f} s, last {now:.3f} s", file=sys.stderr)
            return [first if first is not None else now, now]
        time.sleep(POLL_S)
    print(f"burst: {monitors - count} misses not seen within a minute", file=sys.stderr)
    return [first if first is not None else 60.0, 60.0]


if __name__ == "__main__":
    main()
