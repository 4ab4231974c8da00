"""`vigil bench checkins`: check-ins end to end, real HTTP envelopes into a real
`vigil serve`, until applied.

    vigil bench checkins [--monitors N] [--checkins N] [--client sdk|curl]
        [--concurrency 16 --concurrency 64] [--database-url URL] [--kafka SERVERS]

Starts `vigil serve` in a fresh temporary home (the embedded default: SQLite + the embedded
log; or PostgreSQL + Kafka with `--database-url` and `--kafka`), then:

1. setup: one check-in with a `monitor_config` per monitor through the crons HTTP endpoint
   (it never answers 429: the project's envelope quota of 50 + 6 per monitor environment
   a minute would refuse most of them while no environment exists yet), so the check-ins
   themselves create the `--monitors` monitors (not timed);
2. per concurrency level, a baseline and the measurement under the same load:
   - baseline: `GET /_health/` (the same server, no I/O) — requests/s and latency;
   - check-ins: `POST /api/{project}/envelope/` with one `ok` check-in each, spread over
     the monitors — ingest requests/s, p50/p99 latency (answer received = durable in the
     log), and *applied* check-ins/s: from the first request sent to the last check-in
     row visible in the database (what the API reads); with `--client curl`, instead,
     `GET /api/{project}/cron/{slug}/{key}/?status=ok…` without a check-in id, as cron
     wrappers send them;
3. the peak resident memory of the whole `vigil serve` process tree, sampled every 50 ms.

The load generator is a small asyncio HTTP/1.1 client with keep-alive connections (one
per concurrent request) in this process, so it shares the machine's cores with the
server; the baseline pays the same cost, which is why results are given as ratios.
Each monitor gets at most 5 check-ins in the run, under the per-monitor-environment
limit of 6 a minute, so none is rate limited. On a PostgreSQL server with autovacuum
off, the benchmark runs autovacuum's ANALYZE itself (`vigil.bench.autoanalyze`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import create_engine, func, select

from vigil.bench import BenchError
from vigil.bench.autoanalyze import autoanalyze
from vigil.bench.backends import (
    add_backend_arguments,
    backend_label,
    checked_database_url,
    child_env,
)
from vigil.bench.processes import Child, PeakMemory, free_port, vigil_process
from vigil.db.tables import monitor, monitor_checkin

START_TIMEOUT_S = 120.0
APPLY_TIMEOUT_S = 600.0
MAX_MONITORS = 10_000
MAX_CONCURRENCY = 1_000


# --- the server ------------------------------------------------------------------------


@dataclass
class Server:
    child: Child
    host: str
    port: int
    project_id: int
    public_key: str
    database_url: str


@contextmanager
def serve(home: Path, database_url: str | None, kafka: str | None) -> Iterator[Server]:
    port = free_port()
    env = {**child_env(home, database_url, kafka), "VIGIL_BIND": f"127.0.0.1:{port}"}
    with vigil_process(["serve"], env) as child:
        dsn = _wait_for_dsn(child)
        match = re.fullmatch(r"http://([0-9a-f]{32})@[^/]+/(\d+)", dsn)
        if match is None:
            raise BenchError(f"vigil serve printed a DSN not of its own: {dsn}")
        url = database_url or f"sqlite:///{home / 'vigil.sqlite3'}"
        server = Server(child, "127.0.0.1", port, int(match.group(2)), match.group(1), url)
        _wait_healthy(server)
        yield server


def _wait_for_dsn(child: Child) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in child.lines:
            match = re.match(r"\s*DSN:\s+(\S+)", line)
            if match:
                return match.group(1)
        if child.process.poll() is not None:
            raise BenchError("vigil serve exited:\n" + child.output())
        time.sleep(0.05)
    raise BenchError("vigil serve printed no DSN:\n" + child.output())


def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    request = _get("/_health/", server)
    while time.monotonic() < deadline:
        try:
            latencies, _ = asyncio.run(load(server, [request], 1))
            if latencies:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError("vigil serve did not become healthy")


# --- requests --------------------------------------------------------------------------


def _get(path: str, server: Server) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n\r\n".encode()


def _envelope(server: Server, item: dict[str, object]) -> bytes:
    payload = orjson.dumps(item)
    body = b"{}\n" + orjson.dumps({"type": "check_in", "length": len(payload)}) + b"\n" + payload
    head = (
        f"POST /api/{server.project_id}/envelope/ HTTP/1.1\r\n"
        f"Host: {server.host}:{server.port}\r\n"
        f"X-Sentry-Auth: Sentry sentry_key={server.public_key}, sentry_version=7, "
        "sentry_client=vigil-bench/1\r\n"
        "Content-Type: application/x-sentry-envelope\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def cron_checkin(server: Server, slug: str) -> bytes:
    """A check-in with a `monitor_config` through the crons HTTP endpoint (JSON body),
    which counts toward the project's check-in quota but never refuses (B11): how the
    setup creates more monitors than a project without monitor environments may send
    envelopes for."""
    body = orjson.dumps(
        {
            "status": "ok",
            "duration": 0.5,
            "environment": "production",
            "monitor_config": {"schedule": {"type": "interval", "value": 1, "unit": "day"}},
        }
    )
    head = (
        f"POST /api/{server.project_id}/cron/{slug}/{server.public_key}/ HTTP/1.1\r\n"
        f"Host: {server.host}:{server.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def curl_checkin(server: Server, slug: str) -> bytes:
    """An `ok` check-in as a cron wrapper sends it with curl: the crons HTTP endpoint's
    GET form, without a check-in id (the nil id: it closes the environment's latest
    in-progress check-in, or is a new one)."""
    return _get(
        f"/api/{server.project_id}/cron/{slug}/{server.public_key}/"
        "?status=ok&duration=0.5&environment=production",
        server,
    )


def checkin(server: Server, slug: str, with_config: bool) -> bytes:
    item: dict[str, object] = {
        "check_in_id": uuid.uuid4().hex,
        "monitor_slug": slug,
        "status": "ok",
        "duration": 0.5,
        "environment": "production",
    }
    if with_config:
        item["monitor_config"] = {"schedule": {"type": "interval", "value": 1, "unit": "day"}}
    return _envelope(server, item)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    if match and int(match.group(1)):
        await reader.readexactly(int(match.group(1)))
    return status


async def load(
    server: Server, requests: list[bytes], concurrency: int
) -> tuple[list[float], float]:
    """Send every request, `concurrency` at a time on keep-alive connections. Returns
    the latency of each (seconds) and the wall time of the whole run. Any answer other
    than 2xx stops the run: a benchmark of failures measures nothing."""
    latencies: list[float] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection(server.host, server.port)
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                writer.write(request)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    raise BenchError(f"the server answered {status}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(requests)))))
    return latencies, time.perf_counter() - started


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- measuring -------------------------------------------------------------------------


def count_rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            target = monitor if table == "monitor" else monitor_checkin
            return int(conn.execute(select(func.count()).select_from(target)).scalar_one())
    finally:
        engine.dispose()


def wait_for_rows(database_url: str, table: str, expected: int) -> float:
    """Block until `table` has `expected` rows; the perf_counter time it was seen."""
    engine = create_engine(database_url)
    target = monitor if table == "monitor" else monitor_checkin
    deadline = time.monotonic() + APPLY_TIMEOUT_S
    try:
        while True:
            with engine.connect() as conn:
                count = int(conn.execute(select(func.count()).select_from(target)).scalar_one())
            if count >= expected:
                return time.perf_counter()
            if time.monotonic() > deadline:
                raise BenchError(f"only {count} of {expected} {table} rows after the timeout")
            time.sleep(0.02)
    finally:
        engine.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Row:
    label: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    applied_per_s: float | None = None


def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp,
        serve(Path(tmp), args.database_url, args.kafka) as server,
        autoanalyze(args.database_url),
    ):
        slugs = [f"bench-{i:06d}" for i in range(args.monitors)]
        progress(f"setup: {args.monitors:,} monitors created by their first check-in …")
        setup = [cron_checkin(server, slug) for slug in slugs]
        started = time.perf_counter()
        asyncio.run(load(server, setup, 32))
        took = wait_for_rows(server.database_url, "monitor", args.monitors) - started
        progress(f"  created in {took:.1f} s ({args.monitors / took:,.0f} monitors/s)")
        applied_so_far = count_rows(server.database_url, "monitor_checkin")
        with PeakMemory(server.child.pid) as memory:
            for concurrency in args.concurrency:
                health = [_get("/_health/", server)] * args.checkins
                latencies, elapsed = asyncio.run(load(server, health, concurrency))
                rows.append(
                    Row(
                        f"/_health/ (baseline), concurrency {concurrency}",
                        len(health) / elapsed,
                        pct(latencies, 0.5) * 1000,
                        pct(latencies, 0.99) * 1000,
                    )
                )
                batch = [
                    curl_checkin(server, slugs[i % len(slugs)])
                    if args.client == "curl"
                    else checkin(server, slugs[i % len(slugs)], with_config=False)
                    for i in range(args.checkins)
                ]
                started = time.perf_counter()
                latencies, elapsed = asyncio.run(load(server, batch, concurrency))
                applied_so_far += len(batch)
                done = wait_for_rows(server.database_url, "monitor_checkin", applied_so_far)
                label = "check-ins" if args.client == "sdk" else "check-ins by curl"
                rows.append(
                    Row(
                        f"{label}, concurrency {concurrency}",
                        len(batch) / elapsed,
                        pct(latencies, 0.5) * 1000,
                        pct(latencies, 0.99) * 1000,
                        len(batch) / (done - started),
                    )
                )
                progress(f"  concurrency {concurrency}: done")
        rows.append(Row(f"peak RSS of vigil serve: {memory.peak / 2**20:.0f} MB", 0, 0, 0))
    return rows


def report(rows: list[Row]) -> None:
    print()
    print(f"| {'':<44} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | {'applied/s':>9} |")
    print(f"|{'-' * 46}|{'-' * 11}:|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|")
    baseline: Row | None = None
    for row in rows:
        if row.requests_per_s == 0:
            print(f"\n{row.label}")
            continue
        applied = f"{row.applied_per_s:,.0f}" if row.applied_per_s is not None else ""
        print(
            f"| {row.label:<44} | {row.requests_per_s:>10,.0f} | {row.p50_ms:>7.1f} | "
            f"{row.p99_ms:>7.1f} | {applied:>9} |"
        )
        if row.applied_per_s is None:
            baseline = row
        elif baseline is not None:
            print(
                f"| {'  ratio ingest / baseline (requests/s)':<44} | "
                f"{row.requests_per_s / baseline.requests_per_s:>9.2f}x | "
                f"{row.p50_ms / baseline.p50_ms:>6.2f}x | {row.p99_ms / baseline.p99_ms:>6.2f}x | "
                f"{row.applied_per_s / baseline.requests_per_s:>8.2f}x |"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--monitors", type=int, default=10_000, help="default: 10,000")
    parser.add_argument(
        "--checkins", type=int, default=20_000, help="per concurrency level (default: 20,000)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        action="append",
        help="requests in flight; repeat for several levels (default: 16 and 64)",
    )
    parser.add_argument(
        "--client",
        choices=("sdk", "curl"),
        default="sdk",
        help="sdk: envelopes, each check-in with its own id (default); curl: the crons "
        "HTTP endpoint's GET form, without an id",
    )
    add_backend_arguments(parser)


def command(args: argparse.Namespace) -> int:
    """`vigil bench checkins`: the table, then the peak memory."""
    args.concurrency = args.concurrency or [16, 64]
    if not 1 <= args.monitors <= MAX_MONITORS:
        raise BenchError(f"--monitors must be from 1 to {MAX_MONITORS:,} (an organization's limit)")
    if args.checkins < 1 or not all(1 <= c <= MAX_CONCURRENCY for c in args.concurrency):
        raise BenchError(
            f"--checkins must be at least 1, --concurrency from 1 to {MAX_CONCURRENCY}"
        )
    if 1 + len(args.concurrency) * -(-args.checkins // args.monitors) > 6:
        raise BenchError(
            "that many check-ins per monitor would meet the limit of 6 a minute: "
            "more --monitors, or fewer --checkins"
        )
    args.database_url = checked_database_url(args.database_url)
    rows = run(args)
    print(f"check-ins end to end, {backend_label(args.database_url, args.kafka)}, `vigil serve`")
    report(rows)
    return 0
