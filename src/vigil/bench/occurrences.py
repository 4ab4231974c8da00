"""`vigil bench occurrences`: occurrences end to end, produced to the log, applied by
`vigil consumer ingest-occurrences`, visible through the issues REST API.

    vigil bench occurrences [--occurrences N] [--scenario hot --scenario distinct]
        [--database-url URL] [--kafka SERVERS]

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
itself (`vigil.bench.autoanalyze`): vigil warns about such a server, and without statistics the
consumer's lookups scan whole projects.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic as ArroyoTopic
from sqlalchemy import Column, Integer, MetaData, String, Table, Text, func, insert, select

from vigil.bench import BenchError
from vigil.bench.autoanalyze import autoanalyze
from vigil.bench.backends import (
    add_backend_arguments,
    backend_label,
    checked_database_url,
    child_env,
)
from vigil.bench.processes import PeakMemory, free_port, vigil_process
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
SCENARIOS = ("hot", "distinct")
# Distinct fingerprints are new issues, dealt over the three crons types: past 60,000 an
# hour each, the creation quota would drop them.
MAX_OCCURRENCES = 180_000
# Fewer applied after the clock started than this, and the figure is not given.
MIN_COUNTED = 1_000


@dataclass
class Setup:
    settings: Settings
    env: dict[str, str]
    org_slug: str
    project_id: int
    token: str


def setup(home: Path, database_url: str | None, kafka: str | None) -> Setup:
    env = child_env(home, database_url, kafka)
    settings = Settings(home=home)
    if database_url:
        settings = replace(settings, database_url=database_url)
    if kafka:
        settings = replace(
            settings, kafka_bootstrap_servers=kafka, topic_prefix=env["VIGIL_TOPIC_PREFIX"]
        )
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
    raise BenchError("vigil web did not answer")


@dataclass
class Applied:
    seconds: float
    counted: int
    peak_rss: int


def apply(s: Setup, count: int, distinct: bool, base: str) -> Applied:
    engine = make_engine(s.settings)
    # This run's project only: on a database given, an earlier scenario's groups are there.
    first_group = select(func.min(group.c.id)).where(group.c.project_id == s.project_id)
    with (
        vigil_process(["consumer", "ingest-occurrences"], s.env) as consumer,
        PeakMemory(consumer.pid) as memory,
    ):
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with engine.connect() as conn:
                if conn.execute(first_group).scalar() is not None:
                    break
            if consumer.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"the consumer applied nothing:\n{consumer.output()}")
            time.sleep(0.01)
        start = time.perf_counter()
        already = api_applied(base, s, distinct)
        deadline = time.monotonic() + APPLY_TIMEOUT_S
        while (seen := api_applied(base, s, distinct)) < count:
            if consumer.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"only {seen} of {count} applied:\n{consumer.output()}")
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


def run(scenario: str, count: int, database_url: str | None, kafka: str | None) -> str:
    """One scenario in a fresh temporary home; its row of the table."""
    distinct = scenario == "distinct"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        s = setup(Path(tmp), database_url, kafka)
        with autoanalyze(database_url):
            progress(f"{scenario}: producing {count:,} occurrences …")
            produced = produce(s, count, distinct)
            port = free_port()
            web_env = {**s.env, "VIGIL_BIND": f"127.0.0.1:{port}"}
            with vigil_process(["web"], web_env):
                base = f"http://127.0.0.1:{port}"
                wait_for_api(base, s)
                progress(f"{scenario}: applying them (vigil consumer ingest-occurrences) …")
                applied = apply(s, count, distinct, base)
        progress(f"{scenario}: the baseline, {count:,} rows …")
        base_s = baseline(s, count)
    base_rate = count / base_s
    label = "hot (1 fingerprint)" if distinct is False else f"distinct ({count:,} fingerprints)"
    if applied.counted < MIN_COUNTED:
        # Applied before the first look: a few batches measure start-up, not throughput.
        rate_text, ratio_text = "too few", "-"
    else:
        rate = applied.counted / applied.seconds
        rate_text, ratio_text = f"{rate:,.0f}", f"{rate / base_rate:.3f}"
    return (
        f"{label:<32} {count:>9,} {count / produced:>12,.0f} {rate_text:>12} "
        f"{base_rate:>12,.0f} {ratio_text:>7} {applied.peak_rss / 2**20:>9.0f}"
    )


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--occurrences", type=int, default=100_000, help="per scenario (default: 100,000)"
    )
    parser.add_argument(
        "--scenario", action="append", choices=SCENARIOS, help="repeat for both (default: both)"
    )
    add_backend_arguments(parser)


def command(args: argparse.Namespace) -> int:
    """`vigil bench occurrences`: each scenario, then its row of the table."""
    if not 1 <= args.occurrences <= MAX_OCCURRENCES:
        raise BenchError(f"--occurrences must be from 1 to {MAX_OCCURRENCES:,}")
    database_url = checked_database_url(args.database_url)
    scenarios: Sequence[str] = args.scenario or SCENARIOS
    rows = [run(scenario, args.occurrences, database_url, args.kafka) for scenario in scenarios]
    print(
        f"occurrences end to end, {backend_label(database_url, args.kafka)}, "
        "consumer: `vigil consumer ingest-occurrences`"
    )
    print(
        f"{'scenario':<32} {'messages':>9} {'produced/s':>12} {'applied/s':>12} "
        f"{'baseline/s':>12} {'ratio':>7} {'RSS MiB':>9}"
    )
    print("\n".join(rows), flush=True)
    if any("too few" in row for row in rows):
        print(
            f"(too few: under {MIN_COUNTED:,} were applied after the first was seen; "
            "give more --occurrences)"
        )
    return 0
