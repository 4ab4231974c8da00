"""Producing to the embedded log: validation in the caller's thread, group commit in a
writer thread."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import zlib
from concurrent.futures import Future
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from arroyo.backends.abstract import Producer, SimpleProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Partition, Topic

from vigil.streams.backend import LogError, MessageTooLarge
from vigil.streams.embedded.storage import encode_headers, log_error, open_log, write_transaction

T = TypeVar("T")

# Broker timestamps are naive UTC datetimes, as arroyo's Kafka consumer gives them.
EPOCH = datetime(1970, 1, 1)

# What may wait for the writer before produce() blocks. This bounds memory and the size
# of one transaction, hence how long other processes' writers wait for the write lock.
MAX_PENDING_MESSAGES = 10_000
MAX_PENDING_BYTES = 16 * 1024 * 1024

_INSERT = (
    "INSERT INTO messages (partition_id, offset, key, value, headers, timestamp) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class LogFuture(SimpleProducerFuture[T]):
    """The outcome of one `produce`: resolved when the transaction holding the message
    commits (or fails). `result()` waits on the batch's event; SimpleProducerFuture's own
    waits in 0.1 s sleeps. Cheaper to make than a `concurrent.futures.Future`, which
    matters at tens of thousands of messages a second."""

    def __init__(self, committed: threading.Event) -> None:
        super().__init__()
        self._committed = committed

    def result(self, timeout: float | None = None) -> T:
        if not self.done() and not self._committed.wait(timeout):
            raise TimeoutError("the embedded log has not acknowledged the message yet")
        if self.result_exception is not None:
            raise self.result_exception
        assert self.result_value is not None
        return self.result_value


_Result = LogFuture[BrokerValue[KafkaPayload]]
# partition row id, partition, payload, stored headers, future
_Item = tuple[int, Partition, KafkaPayload, bytes | None, _Result]


class _Batch:
    """Messages waiting for the writer; they commit together."""

    __slots__ = ("committed", "items", "size")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.size = 0
        self.committed = threading.Event()


class EmbeddedProducer(Producer[KafkaPayload]):
    """A producer writing to the embedded log file.

    `produce` checks the message in the caller's thread and returns at once: a message
    over `max_message_bytes` (key + value + header names and values) raises
    MessageTooLarge, an unknown topic or partition raises LogError, and nothing is
    written. A writer thread then commits everything waiting in one transaction and
    resolves the futures with the `BrokerValue` (partition, offset, broker timestamp).

    To a topic, a message with a key goes to partition `crc32(key) % partitions` (as
    librdkafka's `consistent_random`), one without a key (or with an empty one) to a
    random partition. Per partition, messages keep the order they were produced in,
    offsets are gapless and unique even with several producer processes on one file, and
    broker timestamps (write time, ms) never decrease. `close()` writes everything
    produced before it; its future resolves when that is done.
    """

    def __init__(self, path: Path, max_message_bytes: int, busy_timeout_ms: int) -> None:
        self._path = path
        self._limit = max_message_bytes
        self._conn = open_log(path, busy_timeout_ms)
        self._conn_lock = threading.Lock()  # the writer's transactions vs topic lookups
        self._topics: dict[str, list[tuple[Partition, int]]] = {}
        self._cond = threading.Condition()
        self._batch = _Batch()
        self._closing = False
        self._closed: Future[None] = Future()
        self._writer = threading.Thread(target=self._run, name="vigil-log-writer", daemon=True)
        self._writer.start()

    def produce(
        self, destination: Topic | Partition, payload: KafkaPayload
    ) -> LogFuture[BrokerValue[KafkaPayload]]:
        if self._closing:
            raise RuntimeError("producer is closed")
        topic = destination if isinstance(destination, Topic) else destination.topic
        partitions = self._partitions(topic.name)
        key = payload.key
        if isinstance(destination, Partition):
            index = destination.index
            if not 0 <= index < len(partitions):
                raise LogError(
                    f"topic {topic.name!r} has no partition {index} "
                    f"(it has {len(partitions)}) in the embedded log {self._path}"
                )
        elif key:
            index = zlib.crc32(key) % len(partitions)
        else:
            index = random.randrange(len(partitions))
        partition, partition_id = partitions[index]

        size = len(payload.value) + (len(key) if key else 0)
        headers = None
        if payload.headers:
            size += sum(len(name.encode()) + len(value) for name, value in payload.headers)
            headers = encode_headers(payload.headers)
        if size > self._limit:
            raise MessageTooLarge(topic.name, size, self._limit)

        with self._cond:
            batch = self._batch
            while len(batch.items) >= MAX_PENDING_MESSAGES or batch.size >= MAX_PENDING_BYTES:
                self._cond.wait()
                batch = self._batch
            if self._closing:
                raise RuntimeError("producer is closed")
            future: _Result = LogFuture(batch.committed)
            batch.items.append((partition_id, partition, payload, headers, future))
            batch.size += size
            if len(batch.items) == 1:
                self._cond.notify_all()
        return future

    def close(self) -> Future[None]:
        """Stop taking messages; the future resolves once all produced are written."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        return self._closed

    def _partitions(self, topic: str) -> list[tuple[Partition, int]]:
        partitions = self._topics.get(topic)
        if partitions is None:
            try:
                with self._conn_lock:
                    rows = self._conn.execute(
                        "SELECT partition, id FROM partitions WHERE topic = ? ORDER BY partition",
                        (topic,),
                    ).fetchall()
            except sqlite3.Error as exc:
                raise log_error(self._path, f"look up topic {topic!r}", exc) from None
            if not rows:
                raise LogError(
                    f"topic {topic!r} does not exist in the embedded log {self._path} "
                    "(vigil creates its topics at start: see ensure_topics)"
                )
            topic_ = Topic(topic)
            partitions = [(Partition(topic_, index), id_) for index, id_ in rows]
            self._topics[topic] = partitions
        return partitions

    # --- the writer thread ----------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._batch.items and not self._closing:
                        self._cond.wait()
                    batch = self._batch
                    if not batch.items:
                        break  # closing, and everything is written
                    self._batch = _Batch()
                    self._cond.notify_all()  # producers waiting for room may go on
                self._write(batch)
        finally:
            with self._conn_lock:
                self._conn.close()
            self._closed.set_result(None)

    def _write(self, batch: _Batch) -> None:
        try:
            with self._conn_lock:
                values = self._append(batch.items)
        except Exception as exc:
            error = exc if isinstance(exc, LogError) else log_error(self._path, "write", exc)
            for item in batch.items:
                item[4].set_exception(error)
        else:
            for item, value in zip(batch.items, values, strict=True):
                item[4].set_result(value)
        batch.committed.set()

    def _append(self, items: list[_Item]) -> list[BrokerValue[KafkaPayload]]:
        conn = self._conn
        with write_transaction(conn):
            # Read the clock under the write lock, so that time and offsets advance
            # together across processes; max() keeps a partition's timestamps from
            # going back if the wall clock does.
            now = time.time_ns() // 1_000_000
            ids = sorted({item[0] for item in items})
            marks = ", ".join("?" * len(ids))
            state: dict[int, list[int]] = {
                id_: [next_offset, max(now, last)]
                for id_, next_offset, last in conn.execute(
                    f"SELECT id, next_offset, last_timestamp FROM partitions WHERE id IN ({marks})",
                    ids,
                )
            }
            stamps = {id_: EPOCH + timedelta(milliseconds=s[1]) for id_, s in state.items()}
            rows = []
            values = []
            for partition_id, partition, payload, headers, _ in items:
                next_ = state[partition_id]
                offset = next_[0]
                next_[0] = offset + 1
                rows.append((partition_id, offset, payload.key, payload.value, headers, next_[1]))
                values.append(BrokerValue(payload, partition, offset, stamps[partition_id]))
            conn.executemany(_INSERT, rows)
            conn.executemany(
                "UPDATE partitions SET next_offset = ?, last_timestamp = ? WHERE id = ?",
                [(s[0], s[1], id_) for id_, s in state.items()],
            )
        return values
