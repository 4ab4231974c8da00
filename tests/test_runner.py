"""The consumer runner, on both backends: at-least-once delivery applied effectively once,
order per key, resumption from committed offsets after SIGKILL, dead letters with a
reason, and a clean exit on SIGTERM."""

from __future__ import annotations

import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine, make_url, select, text
from sqlalchemy import exc as sa_exc

from tests.conftest import subprocess_env
from tests.support import sink_consumer
from tests.support.consumers import consumer_thread, wait_until
from tests.support.log_reader import headers_of, read_topic
from tests.support.sink_consumer import NAME, TOPIC, applied_count, sink, sink_calls
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.runner import is_transient, produce
from vigil.streams.topics import dlq_topic

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 120.0


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics([NAME])
    yield backend
    backend.close()


@pytest.fixture
def producer(log_backend: LogBackend) -> Iterator[Producer[KafkaPayload]]:
    made = log_backend.get_producer()
    yield made
    made.close().result(timeout=WAIT_S)


@pytest.fixture
def sink_db(engine: Engine) -> Iterator[Engine]:
    sink_consumer.sink_metadata.create_all(engine)
    yield engine
    sink_consumer.sink_metadata.drop_all(engine)


# --- helpers ---------------------------------------------------------------------------


def message(id_: str, key: str, seq: int, **extra: Any) -> bytes:
    return orjson.dumps({"id": id_, "key": key, "seq": seq, **extra})


def total_lag(settings: Settings, backend: LogBackend) -> int:
    return sum(backend.lag(settings.topic(NAME), settings.topic(TOPIC)).values())


def applied_and_calls(sink_db: Engine) -> tuple[list[str], list[tuple[int, int, bool]]]:
    """The sink's ids in order of first application, and each apply call's (size,
    messages already applied, single-message retry)."""
    with sink_db.connect() as conn:
        applied = list(conn.scalars(select(sink.c.id).order_by(sink.c.n)))
        calls = conn.execute(
            select(sink_calls.c.size, sink_calls.c.already_applied, sink_calls.c.single)
        )
        return applied, [(c.size, c.already_applied, c.single) for c in calls]


def sample(metric: str) -> float:
    return REGISTRY.get_sample_value(metric, {"consumer": NAME}) or 0.0


class ConsumerProcess:
    """`tests/support/sink_consumer.py` in a child process; its stdout lines in a queue."""

    def __init__(self, env: dict[str, str], stderr: IO[bytes]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.sink_consumer"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def next_line(self, prefix: str) -> str:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if not self.alive():
                    break
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"the consumer printed no {prefix!r} line")

    def drain(self) -> None:
        while not self.lines.empty():
            self.lines.get_nowait()

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(WAIT_S)


# --- tests -----------------------------------------------------------------------------

PRODUCERS = 4
PER_PRODUCER = 500
KEYS_PER_PRODUCER = 5  # 20 keys in all
BATCH = 100


def test_sigkill_mid_batch_then_restart_applies_every_message_once_in_key_order(
    stack: Settings, log_backend: LogBackend, sink_db: Engine, tmp_path: Path
) -> None:
    total = PRODUCERS * PER_PRODUCER
    env = {**subprocess_env(stack), "VIGIL_BATCH_SIZE": str(BATCH)}
    errors = (tmp_path / "stderr.log").open("wb")
    first = ConsumerProcess({**env, "SINK_DELAY_MS": "300"}, errors)
    producers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.keyed_producer",
                str(i),
                str(PER_PRODUCER),
                str(KEYS_PER_PRODUCER),
            ],
            cwd=ROOT,
            env=env,
            stderr=errors,
        )
        for i in range(PRODUCERS)
    ]
    assert [p.wait(WAIT_S) for p in producers] == [0] * PRODUCERS

    # Kill while a batch is in its transaction, once a few batches are committed.
    wait_until(lambda: applied_count(sink_db) >= 3 * BATCH, "three batches", first.alive)
    first.drain()
    first.next_line("applying")
    time.sleep(0.1)  # into the batch's transaction (it sleeps 300 ms before committing)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    applied_before_restart = applied_count(sink_db)
    assert applied_before_restart < total

    second = ConsumerProcess(env, errors)
    wait_until(lambda: applied_count(sink_db) == total, "every message", second.alive)
    assert second.stop(signal.SIGTERM) == 0

    with sink_db.connect() as conn:
        rows = conn.execute(select(sink.c.id, sink.c.key, sink.c.seq).order_by(sink.c.n)).all()
        calls = conn.execute(
            select(sink_calls.c.size, sink_calls.c.already_applied).where(
                sink_calls.c.pid == second.proc.pid
            )
        ).all()
    # Every message applied exactly once (the sink is keyed by message id).
    expected = {f"p{p}-{i}" for p in range(PRODUCERS) for i in range(PER_PRODUCER)}
    assert len(rows) == total
    assert {r.id for r in rows} == expected
    # In the order of first application, each key's sequence numbers run 0, 1, 2, ...
    by_key: dict[str, list[int]] = {}
    for r in rows:
        by_key.setdefault(r.key, []).append(r.seq)
    assert len(by_key) == PRODUCERS * KEYS_PER_PRODUCER
    per_key = PER_PRODUCER // KEYS_PER_PRODUCER
    assert all(seqs == list(range(per_key)) for seqs in by_key.values())
    # The restarted consumer resumed from the committed offsets: it saw only what was
    # left plus at most the one batch in flight at the kill, not the whole log again.
    seen_again = sum(c.already_applied for c in calls)
    assert seen_again <= BATCH
    assert sum(c.size for c in calls) == total - applied_before_restart + seen_again
    assert total_lag(stack, log_backend) == 0


def test_undecodable_message_goes_to_dead_letter_topic_with_reason_and_consumer_goes_on(
    stack: Settings, log_backend: LogBackend, producer: Producer[KafkaPayload], sink_db: Engine
) -> None:
    # As large as the limit allows (key, value and headers): the dead-lettered copy,
    # which adds headers, must still be accepted.
    garbage_value = b"\x00 not json".ljust(stack.max_message_bytes - len("kh1"), b".")
    produce(producer, stack, TOPIC, message("m0", "k", 0), key="k")
    garbage = produce(producer, stack, TOPIC, garbage_value, key="k", headers=[("h", b"1")])
    produce(producer, stack, TOPIC, message("m1", "k", 1), key="k")
    dead_before = sample("vigil_dead_lettered_total")

    with consumer_thread(sink_consumer.definition(sink_db), stack) as alive:
        wait_until(lambda: applied_count(sink_db) == 2, "the valid messages", alive)
        wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)

    [dead] = read_topic(stack, log_backend, dlq_topic(NAME), expect=1)
    assert dead.key == b"k"
    assert dead.value == garbage_value
    headers = headers_of(dead)
    assert headers["h"] == "1"
    assert headers["reason"].startswith("CodecError: not JSON")
    assert headers["consumer"] == NAME
    assert headers["original_topic"] == stack.topic(TOPIC)
    assert headers["original_partition"] == str(garbage.partition.index)
    assert headers["original_offset"] == str(garbage.offset)
    assert sample("vigil_dead_lettered_total") == dead_before + 1


def test_poison_message_is_dead_lettered_and_the_rest_of_its_batch_applied(
    stack: Settings, log_backend: LogBackend, producer: Producer[KafkaPayload], sink_db: Engine
) -> None:
    for i in range(5):
        extra = {"poison": True} if i == 2 else {}
        produce(producer, stack, TOPIC, message(f"m{i}", "k", i, **extra), key="k")
    errors_before = sample("vigil_consumer_errors_total")
    # A long batch window, so that the five messages make one batch.
    settings = replace(stack, batch_time_ms=1000)

    with consumer_thread(sink_consumer.definition(sink_db), settings) as alive:
        wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)

    with sink_db.connect() as conn:
        applied = conn.scalars(select(sink.c.id).order_by(sink.c.n)).all()
        singles = conn.scalars(select(sink_calls.c.single)).all()
    assert applied == ["m0", "m1", "m3", "m4"]
    assert singles == [True] * 4  # the batch failed, then went one message at a time
    [dead] = read_topic(stack, log_backend, dlq_topic(NAME), expect=1)
    assert orjson.loads(dead.value)["id"] == "m2"
    assert headers_of(dead)["reason"] == "RuntimeError: poison message m2"
    # the failed batch and the failed message
    assert sample("vigil_consumer_errors_total") == errors_before + 2


def test_sigterm_finishes_the_batch_commits_and_exits_zero(
    stack: Settings,
    log_backend: LogBackend,
    producer: Producer[KafkaPayload],
    sink_db: Engine,
    tmp_path: Path,
) -> None:
    for i in range(20):
        produce(producer, stack, TOPIC, message(f"m{i}", f"k{i % 4}", i // 4), key=f"k{i % 4}")
    errors = (tmp_path / "stderr.log").open("wb")
    env = {**subprocess_env(stack), "SINK_DELAY_MS": "1000", "VIGIL_BATCH_TIME_MS": "1000"}
    consumer = ConsumerProcess(env, errors)
    in_flight = int(consumer.next_line("applying").split()[2])

    assert consumer.stop(signal.SIGTERM) == 0

    applied = applied_count(sink_db)
    assert applied >= in_flight  # the batch in flight was finished, not abandoned
    assert total_lag(stack, log_backend) == 20 - applied  # and everything applied committed
    assert "consumer stopped" in (tmp_path / "stderr.log").read_text()


def test_lost_database_connection_is_retried_and_nothing_is_dead_lettered(
    stack: Settings,
    backend_name: str,
    log_backend: LogBackend,
    producer: Producer[KafkaPayload],
    sink_db: Engine,
) -> None:
    if backend_name != "kafka":
        pytest.skip("cuts a PostgreSQL connection from outside")
    for i in range(10):
        produce(producer, stack, TOPIC, message(f"m{i}", "k", i), key="k")
    errors_before = sample("vigil_consumer_errors_total")
    dead_before = sample("vigil_dead_lettered_total")

    def cut_a_transaction() -> bool:
        # The sink sleeps inside its transaction: end that session from the server side.
        with sink_db.connect() as conn:
            return bool(
                conn.scalar(
                    text(
                        "SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) "
                        "FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state = 'idle in transaction'"
                    )
                )
            )

    with consumer_thread(sink_consumer.definition(sink_db, delay_s=0.5), stack) as alive:
        wait_until(cut_a_transaction, "a transaction to cut", alive)
        wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)

    assert applied_count(sink_db) == 10
    assert sample("vigil_consumer_errors_total") > errors_before  # it did fail, and retry
    assert sample("vigil_dead_lettered_total") == dead_before


def test_unacknowledged_produce_after_commit_is_retried_whole_and_nothing_is_dead_lettered(
    stack: Settings, log_backend: LogBackend, producer: Producer[KafkaPayload], sink_db: Engine
) -> None:
    for i in range(5):
        produce(producer, stack, TOPIC, message(f"m{i}", "k", i), key="k")
    errors_before = sample("vigil_consumer_errors_total")
    dead_before = sample("vigil_dead_lettered_total")
    settings = replace(stack, batch_time_ms=1000)  # the five messages make one batch

    definition = sink_consumer.definition(sink_db, log_failures=2)
    with consumer_thread(definition, settings) as alive:
        wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)

    applied, calls = applied_and_calls(sink_db)
    assert applied == ["m0", "m1", "m2", "m3", "m4"]
    # the whole batch again each time (never one message at a time), idempotently
    assert calls == [(5, 0, False), (5, 5, False), (5, 5, False)]
    assert sample("vigil_consumer_errors_total") == errors_before + 2
    assert sample("vigil_dead_lettered_total") == dead_before


def test_apply_asking_to_retry_later_gets_the_whole_batch_again_and_nothing_dead_lettered(
    stack: Settings, log_backend: LogBackend, producer: Producer[KafkaPayload], sink_db: Engine
) -> None:
    for i in range(5):
        produce(producer, stack, TOPIC, message(f"m{i}", "k", i), key="k")
    dead_before = sample("vigil_dead_lettered_total")
    settings = replace(stack, batch_time_ms=1000)  # the five messages make one batch

    with consumer_thread(sink_consumer.definition(sink_db, retry_later=2), settings) as alive:
        wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)

    applied, calls = applied_and_calls(sink_db)
    assert applied == ["m0", "m1", "m2", "m3", "m4"]
    assert calls == [(5, 0, False)]  # applied once, as a whole
    assert sample("vigil_dead_lettered_total") == dead_before


def test_locked_database_is_waited_out_and_nothing_is_dead_lettered(
    stack: Settings,
    backend_name: str,
    log_backend: LogBackend,
    producer: Producer[KafkaPayload],
    sink_db: Engine,
) -> None:
    if backend_name != "embedded":
        pytest.skip("holds the SQLite write lock from outside")
    for i in range(10):
        produce(producer, stack, TOPIC, message(f"m{i}", "k", i), key="k")
    errors_before = sample("vigil_consumer_errors_total")
    dead_before = sample("vigil_dead_lettered_total")
    # The consumer gives up waiting for the lock after 50 ms, and then retries.
    impatient = make_engine(replace(stack, sqlite_busy_timeout_ms=50))
    holder = sqlite3.connect(
        make_url(stack.resolved_database_url).database or "", isolation_level=None
    )
    holder.execute("BEGIN IMMEDIATE")
    try:
        with consumer_thread(sink_consumer.definition(impatient), stack) as alive:
            wait_until(
                lambda: sample("vigil_consumer_errors_total") >= errors_before + 2,
                "a retry",
                alive,
            )
            holder.rollback()
            wait_until(lambda: total_lag(stack, log_backend) == 0, "the commit", alive)
    finally:
        holder.close()
        impatient.dispose()

    assert applied_count(sink_db) == 10
    assert sample("vigil_dead_lettered_total") == dead_before


def _operational(orig: Exception) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("UPDATE t SET x = 1", {}, orig)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_operational(sqlite3.OperationalError("database is locked")), True),
        (_operational(sqlite3.OperationalError("disk I/O error")), True),
        (_operational(sqlite3.OperationalError("no such table: t")), False),
        (_operational(sqlite3.OperationalError('near "x": syntax error')), False),
        (_operational(_PgError("40001")), True),  # serialization failure
        (_operational(_PgError("40P01")), True),  # deadlock
        (_operational(_PgError("08006")), True),  # connection failure
        (_operational(_PgError("57014")), False),  # statement timeout
        (sa_exc.DisconnectionError("gone"), True),
        (sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (ValueError("bad value"), False),
    ],
)
def test_is_transient_tells_a_database_outage_from_bad_data(
    error: Exception, transient: bool
) -> None:
    assert is_transient(error) is transient


def test_a_full_disk_is_an_outage(tmp_path: Path) -> None:
    # A real SQLITE_FULL: the database may grow no further (as on a full disk). Retried
    # once there is room, never dead-lettered as if the message were at fault.
    engine = create_engine(f"sqlite:///{tmp_path / 'small.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x BLOB)")
        with pytest.raises(sa_exc.OperationalError) as full, engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA max_page_count = 8")
            for _ in range(100):
                conn.exec_driver_sql("INSERT INTO t VALUES (zeroblob(4000))")
        assert "database or disk is full" in str(full.value)
        assert is_transient(full.value)
    finally:
        engine.dispose()


def test_a_consumer_may_take_larger_batches_than_the_setting(
    stack: Settings,
    log_backend: LogBackend,
    producer: Producer[KafkaPayload],
    sink_db: Engine,
) -> None:
    # The clock-tasks consumer's case: its min_batch_size wins over a smaller
    # VIGIL_BATCH_SIZE, and no batch is larger than it.
    for i in range(60):
        produce(producer, stack, TOPIC, message(f"m{i}", f"k{i % 4}", i // 4), key=f"k{i % 4}")
    settings = replace(stack, batch_size=10, batch_time_ms=5000)
    sizes: list[int] = []
    inner = sink_consumer.definition(sink_db)

    def apply(batch: Any) -> Any:
        sizes.append(len(batch))
        return inner.apply(batch)

    larger = replace(inner, apply=apply, min_batch_size=25)
    with consumer_thread(larger, settings) as alive:
        wait_until(lambda: applied_count(sink_db) == 60, "every message applied", alive)
    assert sum(sizes) == 60
    assert max(sizes) == 25  # more than the setting's 10, never more than asked
