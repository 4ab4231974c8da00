"""Occurrences end to end: produced to the log, applied by `vigil consumer
ingest-occurrences`, visible through the issues REST API.

    .venv/bin/python benchmarks/occurrence_throughput.py [--occurrences N]
        [--scenario hot --scenario distinct] [--database-url URL --kafka SERVERS]

For each scenario, in a fresh temporary home (the embedded default: SQLite + the embedded
log; or PostgreSQL + Kafka with `--database-url` and `--kafka`, under a fresh topic
prefix):

1. setup (not timed): migrate, one organization, project and API token; `vigil web` (a
   separate process, only to read the API);
2. produce: N occurrence messages (each with its embedded event, as crons and detectors
   send them) written to `ingest-occurrences` and acknowledged by the log, before any
   consumer runs — occurrences/s produced;
3. apply: `vigil consumer ingest-occurrences` started as its own process (the consumer
   a deployment runs, with its default settings) drains the backlog. The clock starts
   when the first group row appears (the process's start-up and imports are not the
   consumer's cost) and stops when the API, asked every 0.25 s, shows everything
   applied:
   - hot: one fingerprint, the issue's `count` (times seen) in
     `GET /api/0/organizations/{org}/issues/` equals N;
   - distinct: N fingerprints (dealt over the three crons types), the same list's
     `X-Hits` equals N;
   occurrences/s applied = (N - occurrences already applied when the clock started) /
   elapsed; peak resident memory of the consumer process, sampled every 50 ms;
4. baseline, the same database, same run: one row inserted per occurrence by a plain
   loop (one INSERT statement per row through SQLAlchemy, committed every 500 rows, the
   consumer's batch size) into a scratch table — the floor for "a row per occurrence".
   The ratio is applied/s ÷ baseline rows/s.

On a PostgreSQL server with autovacuum off, the benchmark runs autovacuum's ANALYZE
itself (`autoanalyze.py`): vigil warns about such a server, and without statistics the
consumer's lookups scan whole projects.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic as ArroyoTopic
from autoanalyze import autoanalyze
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, func, insert, select

from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.db.migrate import migrate
from vigil.db.tables import group
from vigil.streams.backend import get_backend
from vigil.streams.topics import Topic
from vigil.tenancy import store

START_TIMEOUT_S = 120.0
APPLY_TIMEOUT_S = 1800.0
# The crons types: no noise gate, and a creation quota of 60,000 new issues an hour each
# (per project and type): dealing distinct fingerprints over the three keeps 100,000
# new issues under it.
CRON_TYPES = (4001, 4002, 4003)
BASELINE_BATCH = 500


@dataclass
class Setup:
    settings: Settings
    env: dict[str, str]
    org_slug: str
    project_id: int
    token: str


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def setup(home: Path, database_url: str | None, kafka: str | None) -> Setup:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")}
    env.update(VIGIL_HOME=str(home), VIGIL_LOG_LEVEL="WARNING")
    settings = Settings(home=home)
    if database_url:
        env["VIGIL_DATABASE_URL"] = database_url
        settings = replace(settings, database_url=database_url)
    if kafka:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        env["VIGIL_KAFKA_BOOTSTRAP_SERVERS"] = kafka
        env["VIGIL_TOPIC_PREFIX"] = prefix
        settings = replace(settings, kafka_bootstrap_servers=kafka, topic_prefix=prefix)
    engine = make_engine(settings)
    migrate(engine)
    with engine.begin() as conn:
        org = store.create_organization(conn, f"bench-{uuid.uuid4().hex[:6]}")
        project = store.create_project(conn, org, "app")
        _, token = store.create_token(conn, org, "bench")
    engine.dispose()
    return Setup(settings, env, org.slug, project.id, token)


def occurrence(project_id: int, fingerprint: str, at: datetime, type_id: int) -> bytes:
    event_id = uuid.uuid4().hex
    return orjson.dumps(
        {
            "id": uuid.uuid4().hex,
            "project_id": project_id,
            "event_id": event_id,
            "fingerprint": [fingerprint],
            "issue_title": "Something broke",
            "subtitle": "it was bad",
            "resource_id": None,
            "evidence_data": {"k": "v"},
            "evidence_display": [{"name": "Reason", "value": "bad", "important": True}],
            "type": type_id,
            "detection_time": at.timestamp(),
            "level": "error",
            "culprit": "api/123",
            "payload_type": "occurrence",
            "event": {
                "event_id": event_id,
                "project_id": project_id,
                "platform": "python",
                "timestamp": at.isoformat(),
                "tags": {"server": "web-1"},
                "environment": "production",
            },
        }
    )


def produce(s: Setup, count: int, distinct: bool) -> float:
    """Seconds to write `count` occurrences and have the log acknowledge them all."""
    backend = get_backend(s.settings)
    backend.ensure_topics(["ingest-occurrences"])
    topic = ArroyoTopic(s.settings.topic(Topic.INGEST_OCCURRENCES))
    now = datetime.now(UTC)
    start = time.perf_counter()
    producer = backend.get_producer()
    futures = []
    for i in range(count):
        fingerprint = f"fp-{i}" if distinct else "hot"
        key = f"{fingerprint}-{s.project_id}".encode()
        type_id = CRON_TYPES[i % 3 if distinct else 0]
        value = occurrence(s.project_id, fingerprint, now, type_id)
        futures.append(producer.produce(topic, KafkaPayload(key, value, [])))
        if len(futures) >= 5000:
            for future in futures:
                future.result(timeout=120)
            futures.clear()
    for future in futures:
        future.result(timeout=120)
    producer.close().result()
    elapsed = time.perf_counter() - start
    backend.close()
    return elapsed


# --- processes -------------------------------------------------------------------------


@contextmanager
def process(args: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode not in (0, -signal.SIGINT, 130):
            print("\n".join(lines[-40:]), file=sys.stderr)


def rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class PeakMemory:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the API ---------------------------------------------------------------------------


def api_applied(base: str, s: Setup, distinct: bool) -> int:
    """What the issues API shows applied: the hot issue's count, or how many issues."""
    query = "query=&project=-1&statsPeriod=14d&limit=1" + ("" if distinct else "&sort=freq")
    request = urllib.request.Request(
        f"{base}/api/0/organizations/{s.org_slug}/issues/?{query}",
        headers={"Authorization": f"Bearer {s.token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        if distinct:
            return int(response.headers["X-Hits"])
        body: list[dict[str, Any]] = orjson.loads(response.read())
        return int(body[0]["count"]) if body else 0


def wait_for_api(base: str, s: Setup) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            api_applied(base, s, True)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("vigil web did not answer")


@dataclass
class Applied:
    seconds: float
    counted: int
    peak_rss: int


def apply(s: Setup, count: int, distinct: bool, base: str) -> Applied:
    engine = make_engine(s.settings)
    first_group = select(func.min(group.c.id))
    with (
        process(["consumer", "ingest-occurrences"], s.env) as consumer,
        PeakMemory(consumer.pid) as memory,
    ):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with engine.connect() as conn:
                if conn.execute(first_group).scalar() is not None:
                    break
            if consumer.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the consumer applied nothing")
            time.sleep(0.01)
        start = time.perf_counter()
        already = api_applied(base, s, distinct)
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while (seen := api_applied(base, s, distinct)) < count:
            if consumer.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"only {seen} of {count} applied")
            # Not more often: counting 100,000 issues is work for the server, which
            # shares the machine with the consumer (at most 0.25 s of the figure).
            time.sleep(0.25)
        elapsed = time.perf_counter() - start
    engine.dispose()
    return Applied(elapsed, count - already, memory.peak)


def baseline(s: Setup, count: int) -> float:
    """Seconds to insert `count` rows, one INSERT each, committed every 500."""
    metadata = MetaData()
    scratch = Table(
        f"bench_baseline_{uuid.uuid4().hex[:8]}",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("occurrence_id", String(32), nullable=False),
        Column("fingerprint", Text, nullable=False),
        Column("payload", Text, nullable=False),
    )
    engine = make_engine(s.settings)
    metadata.create_all(engine)
    statement = insert(scratch)
    start = time.perf_counter()
    for first in range(0, count, BASELINE_BATCH):
        with engine.begin() as conn:
            for i in range(first, min(first + BASELINE_BATCH, count)):
                conn.execute(
                    statement,
                    {"occurrence_id": uuid.uuid4().hex, "fingerprint": f"fp-{i}", "payload": "{}"},
                )
    elapsed = time.perf_counter() - start
    metadata.drop_all(engine)
    engine.dispose()
    return elapsed


# --- main ------------------------------------------------------------------------------


def run(scenario: str, count: int, database_url: str | None, kafka: str | None) -> list[str]:
    distinct = scenario == "distinct"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        s = setup(Path(tmp), database_url, kafka)
        with autoanalyze(database_url):
            produced = produce(s, count, distinct)
            port = _free_port()
            web_env = {**s.env, "VIGIL_BIND": f"127.0.0.1:{port}"}
            with process(["web"], web_env):
                base = f"http://127.0.0.1:{port}"
                wait_for_api(base, s)
                applied = apply(s, count, distinct, base)
        base_s = baseline(s, count)
    rate = applied.counted / applied.seconds
    base_rate = count / base_s
    label = "hot (1 fingerprint)" if distinct is False else f"distinct ({count:,} fingerprints)"
    return [
        f"{label:<32} {count:>9,} {count / produced:>12,.0f} {rate:>12,.0f} "
        f"{base_rate:>12,.0f} {rate / base_rate:>7.3f} {applied.peak_rss / 2**20:>9.0f}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--occurrences", type=int, default=100_000)
    parser.add_argument(
        "--scenario", action="append", choices=["hot", "distinct"], help="default: both"
    )
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument("--kafka", help="Kafka bootstrap servers (default: the embedded log)")
    args = parser.parse_args()
    scenarios = args.scenario or ["hot", "distinct"]
    backend = "PostgreSQL + Kafka" if args.database_url else "SQLite + embedded log"
    print(f"occurrences end to end, {backend}, consumer: `vigil consumer ingest-occurrences`")
    print(
        f"{'scenario':<32} {'messages':>9} {'produced/s':>12} {'applied/s':>12} "
        f"{'baseline/s':>12} {'ratio':>7} {'RSS MiB':>9}"
    )
    for scenario in scenarios:
        for line in run(scenario, args.occurrences, args.database_url, args.kafka):
            print(line, flush=True)


if __name__ == "__main__":
    main()
