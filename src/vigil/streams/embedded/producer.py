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

from arroyo.backends.abstract import Producer, SimpleProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Partition, Topic

from vigil.streams.backend import LogError, MessageTooLarge
from vigil.streams.embedded.storage import (
    encode_headers,
    log_error,
    messages_table,
    open_log,
    write_transaction,
)

# Broker timestamps are naive UTC datetimes, as arroyo's Kafka consumer gives them.
EPOCH = datetime(1970, 1, 1)

# What may wait for the writer before produce() blocks. This bounds memory and the size
# of one transaction, hence how long other processes' writers wait for the write lock.
MAX_PENDING_MESSAGES = 10_000
MAX_PENDING_BYTES = 16 * 1024 * 1024

# A message as the writer inserts it: its place in the batch's run of its partition,
# key, value, stored headers.
_Row = tuple[int, bytes | None, bytes, bytes | None]


class _Batch:
    """Messages waiting for the writer, by partition row id; they commit together. After
    the commit, each partition's first offset and its timestamp (or the error)."""

    __slots__ = ("bases", "committed", "count", "error", "rows", "size", "stamps")

    def __init__(self) -> None:
        self.rows: dict[int, list[_Row]] = {}
        self.count = 0
        self.size = 0
        self.committed = threading.Event()
        self.bases: dict[int, int] = {}
        self.stamps: dict[int, datetime] = {}
        self.error: LogError | None = None


class LogFuture(SimpleProducerFuture[BrokerValue[KafkaPayload]]):
    """The outcome of one `produce`: done when the transaction holding the message has
    committed (or failed). Its offset is known from its batch's, so committing a batch
    costs nothing per message, and `result()` waits on the batch's event (where
    SimpleProducerFuture's own waits in 0.1 s sleeps). Cheaper to make than a
    `concurrent.futures.Future`, which matters at tens of thousands of messages a second.
    """

    def __init__(
        self,
        batch: _Batch,
        partition: Partition,
        partition_id: int,
        seq: int,
        payload: KafkaPayload,
    ) -> None:
        super().__init__()
        self._batch = batch
        self._partition = partition
        self._partition_id = partition_id
        self._seq = seq
        self._payload = payload

    def done(self) -> bool:
        return self._batch.committed.is_set()

    def result(self, timeout: float | None = None) -> BrokerValue[KafkaPayload]:
        if self.result_value is None:
            batch = self._batch
            if not batch.committed.wait(timeout):
                raise TimeoutError("the embedded log has not acknowledged the message yet")
            if batch.error is not None:
                raise batch.error
            self.result_value = BrokerValue(
                self._payload,
                self._partition,
                batch.bases[self._partition_id] + self._seq,
                batch.stamps[self._partition_id],
            )
        return self.result_value

    def set_result(self, result: BrokerValue[KafkaPayload]) -> None:
        raise RuntimeError("resolved by its batch only")

    def set_exception(self, exception: Exception) -> None:
        raise RuntimeError("resolved by its batch only")


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
        # `_lock` guards the batch being filled; `_wake` tells the writer it is not
        # empty (or that the producer closes); `_room` tells producers waiting on a full
        # batch that the writer took it.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Condition(self._lock)
        self._batch = _Batch()
        self._closing = False
        self._closed: Future[None] = Future()
        self._writer = threading.Thread(target=self._run, name="vigil-log-writer", daemon=True)
        self._writer.start()

    def produce(self, destination: Topic | Partition, payload: KafkaPayload) -> LogFuture:
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

        with self._lock:
            batch = self._batch
            while batch.count >= MAX_PENDING_MESSAGES or batch.size >= MAX_PENDING_BYTES:
                self._room.wait()
                batch = self._batch
            if self._closing:
                raise RuntimeError("producer is closed")
            rows = batch.rows.get(partition_id)
            if rows is None:
                rows = batch.rows[partition_id] = []
            seq = len(rows)
            rows.append((seq, key, payload.value, headers))
            batch.count += 1
            batch.size += size
            if batch.count == 1:
                self._wake.set()
        return LogFuture(batch, partition, partition_id, seq, payload)

    def close(self) -> Future[None]:
        """Stop taking messages; the future resolves once all produced are written."""
        with self._lock:
            self._closing = True
            self._wake.set()
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
                self._wake.wait()
                with self._lock:
                    batch = self._batch
                    if not batch.count:
                        if self._closing:
                            break  # everything produced is written
                        self._wake.clear()
                        continue
                    self._batch = _Batch()
                    if not self._closing:  # closing: go round again, to find nothing left
                        self._wake.clear()
                    self._room.notify_all()
                self._write(batch)
        finally:
            with self._conn_lock:
                self._conn.close()
            self._closed.set_result(None)

    def _write(self, batch: _Batch) -> None:
        try:
            with self._conn_lock:
                self._append(batch)
        except Exception as exc:
            batch.error = exc if isinstance(exc, LogError) else log_error(self._path, "write", exc)
        batch.rows = {}  # the futures keep their payloads; free the batch's copy
        batch.committed.set()

    def _append(self, batch: _Batch) -> None:
        conn = self._conn
        bases = {}
        stamps = {}
        with write_transaction(conn):
            # Read the clock under the write lock, so that time and offsets advance
            # together across processes; max() keeps a partition's timestamps from
            # going back if the wall clock does.
            now = time.time_ns() // 1_000_000
            ids = list(batch.rows)
            state = conn.execute(
                "SELECT id, next_offset, last_timestamp FROM partitions "
                f"WHERE id IN ({', '.join('?' * len(ids))})",
                ids,
            ).fetchall()
            updates = []
            for id_, base, last in state:
                rows = batch.rows[id_]
                stamp = max(now, last)
                # The batch's constants (first offset, timestamp) are
                # literals of the statement, so that each row is only its own fields
                # and the writer does no work per message. All are integers we made.
                conn.executemany(
                    f"INSERT INTO {messages_table(id_)} (offset, key, value, headers, timestamp) "
                    f"VALUES (? + {int(base)}, ?, ?, ?, {int(stamp)})",
                    rows,
                )
                updates.append((base + len(rows), stamp, id_))
                bases[id_] = base
                stamps[id_] = EPOCH + timedelta(milliseconds=stamp)
            conn.executemany(
                "UPDATE partitions SET next_offset = ?, last_timestamp = ? WHERE id = ?", updates
            )
        batch.bases = bases
        batch.stamps = stamps
