"""The embedded log as a `LogBackend`: topics, producers and consumers on one SQLite file."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from arroyo.backends.abstract import Consumer, Producer
from arroyo.backends.kafka import KafkaPayload

from vigil.config import Settings
from vigil.streams import topics
from vigil.streams.backend import LogError
from vigil.streams.embedded.consumer import EmbeddedConsumer
from vigil.streams.embedded.producer import EmbeddedProducer
from vigil.streams.embedded.storage import (
    create_partition,
    log_error,
    open_log,
    write_transaction,
)

log = logging.getLogger(__name__)


class EmbeddedBackend:
    """`LogBackend` on the embedded log at `settings.log_path`.

    Opening checks the file: LogError at once if it is not a vigil log this version can
    use (see `storage.open_log`). Topic names are the names in the log: callers pass
    them with the prefix applied (`settings.topic(name)`); only `ensure_topics`, which
    knows vigil's layout, applies it itself. Safe to use from several threads; each
    producer and consumer has a connection of its own.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._path = settings.log_path
        self._conn = open_log(self._path, settings.sqlite_busy_timeout_ms)
        self._lock = threading.Lock()

    def ensure_topics(self, consumer_names: Sequence[str] = ()) -> None:
        """Create the missing topics of `topics.layout` (and the dead-letter topics of
        these consumers). Idempotent. A topic that exists with another partition count
        keeps it (its messages are spread over those partitions), with a warning."""
        wanted = [
            (self._settings.topic(t.name), t.partitions)
            for t in topics.layout(self._settings.partitions, list(consumer_names))
        ]
        try:
            with self._lock, write_transaction(self._conn):
                existing = dict(self._conn.execute("SELECT name, partitions FROM topics"))
                for name, count in wanted:
                    have = existing.get(name)
                    if have is None:
                        self._conn.execute(
                            "INSERT INTO topics (name, partitions) VALUES (?, ?)", (name, count)
                        )
                        for index in range(count):
                            create_partition(self._conn, name, index)
                        log.info("topic created", extra={"topic": name, "partitions": count})
                    elif have != count:
                        log.warning(
                            "topic exists with another partition count; keeping it",
                            extra={"topic": name, "partitions": have, "configured": count},
                        )
        except sqlite3.Error as exc:
            raise log_error(self._path, "create topics", exc) from None

    def get_producer(self) -> Producer[KafkaPayload]:
        """A producer that refuses messages over `max_message_bytes` with MessageTooLarge."""
        return EmbeddedProducer(
            self._path, self._settings.max_message_bytes, self._settings.sqlite_busy_timeout_ms
        )

    def get_consumer(self, group: str) -> Consumer[KafkaPayload]:
        """A consumer in `group`: the group's committed offsets, or the earliest message
        kept for a new group; one active member per group and topic."""
        return EmbeddedConsumer(self._path, group, self._settings.sqlite_busy_timeout_ms)

    def partition_count(self, topic: str) -> int:
        row = self._query("SELECT partitions FROM topics WHERE name = ?", (topic,))
        if not row:
            raise LogError(f"topic {topic!r} does not exist in the embedded log {self._path}")
        return int(row[0][0])

    def lag(self, group: str, topic: str) -> Mapping[int, int]:
        """Messages of `topic` after `group`'s committed offset, per partition (all kept
        messages if the group has not subscribed yet)."""
        self.partition_count(topic)
        rows = self._query(
            "SELECT p.partition, p.next_offset - coalesce(c.offset, p.low_offset) "
            "FROM partitions p LEFT JOIN committed_offsets c "
            "ON c.group_name = ? AND c.topic = p.topic AND c.partition = p.partition "
            "WHERE p.topic = ? ORDER BY p.partition",
            (group, topic),
        )
        return {int(partition): max(int(lag), 0) for partition, lag in rows}

    def check(self) -> None:
        """Raise LogError unless the log file can be read."""
        self._query("SELECT count(*) FROM topics", ())

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise log_error(self._path, "read", exc) from None
