"""Embedded log throughput, beside a bare batched SQLite insert measured in the same run.

    .venv/bin/python benchmarks/log_throughput.py [--messages N] [--value-bytes B]

Phases, each on a fresh log file in a temporary directory:

- bare insert: the same rows the log stores (partition, offset, key, value, headers,
  timestamp; computed beforehand) inserted with `executemany` into a plain table, in
  transactions of the producer's largest group commit, with the log's pragmas;
- produce: N keyed messages through the producer, until `close()` says all are written;
- consume: one consumer reads them all and commits every `--commit-every` messages;
- end to end: a producer process and this process's consumer at the same time, from
  the first message produced to the last offset committed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic

from vigil.config import Settings
from vigil.streams.embedded.backend import EmbeddedBackend
from vigil.streams.embedded.producer import MAX_PENDING_MESSAGES

TOPIC = "ingest-monitors"
PARTITIONS = 4
KEYS = 1000


def payloads(count: int, value_bytes: int) -> list[KafkaPayload]:
    value = os.urandom(value_bytes // 2).hex().encode()[:value_bytes]
    return [KafkaPayload(f"monitor-{i % KEYS}".encode(), value, []) for i in range(count)]


def bare_insert(directory: Path, messages: list[KafkaPayload], batch: int) -> float:
    """Seconds to insert the log's rows into a plain table, `batch` rows a transaction."""
    conn = sqlite3.connect(directory / "bare.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE messages (partition_id INTEGER, offset INTEGER, key BLOB, value BLOB, "
        "headers BLOB, timestamp INTEGER)"
    )
    next_offset = [0] * PARTITIONS
    now = time.time_ns() // 1_000_000
    rows = []
    for m in messages:
        partition = zlib.crc32(m.key or b"") % PARTITIONS
        rows.append((partition + 1, next_offset[partition], m.key, m.value, None, now))
        next_offset[partition] += 1
    start = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)", rows[i : i + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def new_backend(directory: Path) -> EmbeddedBackend:
    backend = EmbeddedBackend(Settings(home=directory, partitions=PARTITIONS))
    backend.ensure_topics()
    return backend


def produce(backend: EmbeddedBackend, messages: list[KafkaPayload]) -> float:
    topic = Topic(TOPIC)
    start = time.perf_counter()
    producer = backend.get_producer()
    produce_one = producer.produce
    for m in messages:
        produce_one(topic, m)
    producer.close().result()
    return time.perf_counter() - start


def consume(backend: EmbeddedBackend, count: int, commit_every: int) -> float:
    start = time.perf_counter()
    consumer = backend.get_consumer("bench")
    consumer.subscribe([Topic(TOPIC)])
    poll = consumer.poll
    for n in range(1, count + 1):
        waited = 0
        while poll(1.0) is None:
            waited += 1
            if waited > 60:
                raise RuntimeError(f"message {n} of {count} did not come in a minute")
        if n % commit_every == 0 or n == count:
            consumer.stage_offsets(consumer.tell())
            consumer.commit_offsets()
    consumer.close()
    return time.perf_counter() - start


def _producer_process(directory: str, count: int, value_bytes: int) -> None:
    backend = EmbeddedBackend(Settings(home=Path(directory), partitions=PARTITIONS))
    produce(backend, payloads(count, value_bytes))


def end_to_end(directory: Path, count: int, value_bytes: int, commit_every: int) -> float:
    backend = new_backend(directory)
    child = multiprocessing.get_context("spawn").Process(
        target=_producer_process, args=(str(directory), count, value_bytes)
    )
    child.start()
    # The clock starts when the producer's first message is in (the child's start-up,
    # interpreter and imports, is not the log's cost).
    deadline = time.monotonic() + 60
    while not any(backend.lag("bench", TOPIC).values()):
        if time.monotonic() > deadline or not child.is_alive():
            raise RuntimeError("the producer process wrote nothing")
        time.sleep(0.001)
    elapsed = consume(backend, count, commit_every)
    child.join(60)
    backend.close()
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--commit-every", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs; medians are shown")
    args = parser.parse_args(argv)
    n = args.messages
    messages = payloads(n, args.value_bytes)

    runs: dict[str, list[float]] = {"bare": [], "produce": [], "consume": [], "e2e": []}
    for run in range(args.repeat):
        # Each run measures the baseline and the log back to back, so that both see
        # the same machine (others' load, page cache, CPU frequency).
        with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
            root = Path(tmp)
            (root / "bare").mkdir()
            runs["bare"].append(bare_insert(root / "bare", messages, MAX_PENDING_MESSAGES))
            backend = new_backend(root / "log")
            runs["produce"].append(produce(backend, messages))
            runs["consume"].append(consume(backend, n, args.commit_every))
            backend.close()
            runs["e2e"].append(end_to_end(root / "e2e", n, args.value_bytes, args.commit_every))
        print(f"run {run + 1}/{args.repeat} done", file=sys.stderr)

    def rate(name: str) -> str:
        seconds = statistics.median(runs[name])
        low, high = n / max(runs[name]), n / min(runs[name])
        return (
            f"{n / seconds:>9,.0f} msgs/s  {seconds * 1e6 / n:5.2f} µs/msg"
            f"   (runs: {low:,.0f} to {high:,.0f})"
        )

    def ratio(parts: list[str]) -> str:
        per_run = [sum(runs[p][i] for p in parts) / runs["bare"][i] for i in range(args.repeat)]
        return (
            f"{statistics.median(per_run):5.2f}x   (runs: {min(per_run):.2f} to {max(per_run):.2f})"
        )

    print(
        f"{n:,} messages, key ~11 bytes, value {args.value_bytes} bytes, {PARTITIONS} "
        f"partitions; {os.cpu_count()} CPUs, SQLite {sqlite3.sqlite_version}; "
        f"median of {args.repeat} runs"
    )
    print(f"bare insert (executemany, {MAX_PENDING_MESSAGES:,}/txn) {rate('bare')}")
    print(f"log produce                            {rate('produce')}")
    print(f"log consume, commit every {args.commit_every:<6}       {rate('consume')}")
    print(f"log end to end (2 processes at once)   {rate('e2e')}")
    print(f"ratio produce / bare insert            {ratio(['produce'])}")
    print(f"ratio (produce + consume) / bare       {ratio(['produce', 'consume'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
