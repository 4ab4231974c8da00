"""Consuming from the embedded log, as an arroyo `Consumer`."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from arroyo.backends.abstract import Consumer
from arroyo.backends.kafka import KafkaPayload
from arroyo.errors import ConsumerError, OffsetOutOfRange
from arroyo.types import BrokerValue, Partition, Topic

from vigil.streams.backend import LogError
from vigil.streams.embedded import leases, trimming
from vigil.streams.embedded.leases import Member
from vigil.streams.embedded.producer import EPOCH
from vigil.streams.embedded.storage import (
    decode_headers,
    log_error,
    messages_table,
    open_log,
    write_transaction,
)

log = logging.getLogger(__name__)

# How long poll() sleeps between looks at the log while it waits.
POLL_STEP_S = 0.025
# A member that has not renewed its lease for this long loses it to a waiting member.
# Leases are renewed by poll() and commit_offsets(), so this is also how long one batch
# may take before another member may take over (like Kafka's max.poll.interval.ms).
LEASE_TIMEOUT_S = 60.0
HEARTBEAT_INTERVAL_S = 2.0
# Trimming runs from commit_offsets, at most this often.
TRIM_INTERVAL_S = 5.0
# Read-ahead: messages and bytes fetched from one partition at a time.
FETCH_MESSAGES = 1000
FETCH_BYTES = 8 * 1024 * 1024
# Rows turned into messages at a time, until FETCH_BYTES: few at first, as rows may be
# large, then as many as fit.
FETCH_FIRST_STEP = 10
FETCH_STEP = 200


class _Chunk:
    """Messages read ahead from one partition; `next` is the next to deliver."""

    __slots__ = ("messages", "next", "partition")

    def __init__(self, partition: Partition, messages: list[BrokerValue[KafkaPayload]]) -> None:
        self.partition = partition
        self.messages = messages
        self.next = 0


@dataclass(frozen=True)
class _Subscription:
    topics: tuple[str, ...]
    on_assign: Callable[[Mapping[Partition, int]], None] | None
    on_revoke: Callable[[Sequence[Partition]], None] | None


class EmbeddedConsumer(Consumer[KafkaPayload]):
    """A member of consumer group `group` on the embedded log.

    Promises, beyond arroyo's `Consumer` contract:

    - One active member per group and topic. `subscribe` registers the group on the
      topics' partitions (trimming waits for it from then on) and asks for the group's
      lease; the assignment (every partition of the topics) is delivered by a later
      `poll`, through `on_assign`, once this member holds the lease. Until then `poll`
      returns None. A lease is free once released (`close`, `unsubscribe`), when its
      holder's process is gone from this host, or after `lease_timeout` without renewal.
      A member that finds its lease taken over has its partitions revoked (`on_revoke`)
      and waits to be assigned again.
    - Assigned partitions start at the group's committed offsets; a new group at the
      earliest message kept.
    - `commit_offsets` writes the staged offsets to the log file in one transaction,
      only while this member holds the lease (ConsumerError otherwise), and every
      `trim_interval` seconds trims the subscribed topics.
    - `poll(timeout)` waits in sleeps of `POLL_STEP_S`, never spinning; `timeout=None`
      waits until a message arrives, as Kafka's consumer does. Messages are read ahead
      in chunks, partition after partition.
    - `seek` to an offset no longer kept, or beyond the end, makes the next `poll` raise
      OffsetOutOfRange.
    """

    def __init__(
        self,
        path: Path,
        group: str,
        busy_timeout_ms: int,
        *,
        lease_timeout: float = LEASE_TIMEOUT_S,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
        trim_interval: float = TRIM_INTERVAL_S,
    ) -> None:
        self._path = path
        self._group = group
        self._conn = open_log(path, busy_timeout_ms)
        self._member = Member.new()
        self._lease_timeout = lease_timeout
        self._heartbeat_interval = heartbeat_interval
        self._trim_interval = trim_interval

        self._subscription: _Subscription | None = None
        self._ids: dict[Partition, int] = {}  # subscribed partitions -> partition row id
        # Working offsets (empty until assigned), except for a partition with a chunk
        # being delivered: its working offset is the chunk's next message's.
        self._offsets: dict[Partition, int] = {}
        self._chunks: deque[_Chunk] = deque()
        self._assigned = False
        self._paused: set[Partition] = set()
        self._staged: dict[Partition, int] = {}
        self._next_fetch = 0  # which partition a fetch starts with, in turn
        self._heartbeat_due = 0.0  # time.monotonic()
        self._last_trim = time.monotonic()
        self._losing_lease = False
        self._closed = False

    # --- subscription ---------------------------------------------------------------

    def subscribe(
        self,
        topics: Sequence[Topic],
        on_assign: Callable[[Mapping[Partition, int]], None] | None = None,
        on_revoke: Callable[[Sequence[Partition]], None] | None = None,
    ) -> None:
        self._check_open()
        if self._subscription is not None:
            self.unsubscribe()
        names = tuple(dict.fromkeys(t.name for t in topics))
        ids: dict[Partition, int] = {}
        try:
            with write_transaction(self._conn):
                for name in names:
                    rows = self._conn.execute(
                        "SELECT partition, id FROM partitions WHERE topic = ? ORDER BY partition",
                        (name,),
                    ).fetchall()
                    if not rows:
                        raise LogError(
                            f"topic {name!r} does not exist in the embedded log {self._path} "
                            "(vigil creates its topics at start: see ensure_topics)"
                        )
                    topic = Topic(name)
                    ids.update({Partition(topic, index): id_ for index, id_ in rows})
                    # Register the group: a new group starts at the earliest message kept.
                    self._conn.execute(
                        "INSERT OR IGNORE INTO committed_offsets "
                        "(group_name, topic, partition, offset) "
                        "SELECT ?, topic, partition, low_offset FROM partitions WHERE topic = ?",
                        (self._group, name),
                    )
        except sqlite3.Error as exc:
            raise log_error(self._path, f"subscribe group {self._group!r}", exc) from None
        self._subscription = _Subscription(names, on_assign, on_revoke)
        self._ids = ids
        self._staged.clear()

    def unsubscribe(self) -> None:
        self._check_open()
        if self._subscription is None:
            return
        self._revoke()
        self._release()
        self._subscription = None
        self._ids = {}

    def _try_assign(self, subscription: _Subscription) -> None:
        now = time.time()
        try:
            if not leases.try_acquire(
                self._conn,
                self._group,
                subscription.topics,
                self._member,
                now,
                self._lease_timeout,
            ):
                return
            offsets = self._starting_offsets()
        except sqlite3.Error as exc:
            raise log_error(self._path, f"join group {self._group!r}", exc) from None
        self._heartbeat_due = time.monotonic() + self._heartbeat_interval
        self._offsets = offsets
        self._chunks.clear()
        self._assigned = True
        self._paused.clear()
        self._staged.clear()
        log.info(
            "partitions assigned",
            extra={"group": self._group, "member": self._member.member_id, "log": "embedded"},
        )
        if subscription.on_assign is not None:
            subscription.on_assign(dict(offsets))

    def _starting_offsets(self) -> dict[Partition, int]:
        rows = self._conn.execute(
            "SELECT p.id, p.low_offset, p.next_offset, c.offset FROM partitions p "
            "LEFT JOIN committed_offsets c ON c.group_name = ? AND c.topic = p.topic "
            "AND c.partition = p.partition "
            f"WHERE p.id IN ({', '.join('?' * len(self._ids))})",
            (self._group, *self._ids.values()),
        ).fetchall()
        by_id = {id_: (low, high, committed) for id_, low, high, committed in rows}
        offsets = {}
        for partition, id_ in self._ids.items():
            low, high, committed = by_id[id_]
            # A commit can point past what is kept (moved back, then trimmed by the
            # other groups) or past the end; start at the nearest message, like Kafka's
            # auto.offset.reset=earliest.
            start = low if committed is None else min(max(committed, low), high)
            if committed is not None and start != committed:
                log.warning(
                    "committed offset out of range, reset",
                    extra={"group": self._group, "partition": str(partition), "to": start},
                )
            offsets[partition] = start
        return offsets

    def _revoke(self) -> None:
        if not self._assigned:
            return
        subscription = self._subscription
        partitions = list(self._offsets)
        if subscription is not None and subscription.on_revoke is not None:
            subscription.on_revoke(partitions)
        self._offsets = {}
        self._chunks.clear()
        self._assigned = False
        self._paused.clear()
        self._staged.clear()

    def _release(self) -> None:
        try:
            leases.release(self._conn, self._group, self._member)
        except sqlite3.Error as exc:
            # Not fatal: the lease frees itself once this process is gone.
            log.warning("cannot release lease", extra={"group": self._group, "error": str(exc)})

    def _heartbeat(self) -> None:
        assert self._subscription is not None
        now = time.time()
        try:
            held = leases.renew(
                self._conn, self._group, self._subscription.topics, self._member, now
            )
        except sqlite3.Error as exc:
            raise log_error(self._path, "renew the consumer lease", exc) from None
        if held:
            self._heartbeat_due = time.monotonic() + self._heartbeat_interval
            return
        log.warning(
            "lease taken over by another member, partitions revoked",
            extra={"group": self._group, "member": self._member.member_id},
        )
        # Whatever the revocation callback commits would overwrite the new holder's
        # offsets: commit_offsets drops it (the new holder re-reads from the last commit).
        self._losing_lease = True
        try:
            self._revoke()
        finally:
            self._losing_lease = False

    # --- reading --------------------------------------------------------------------

    def poll(self, timeout: float | None = None) -> BrokerValue[KafkaPayload] | None:
        if self._closed:
            raise RuntimeError("consumer is closed")
        deadline = None
        while True:
            subscription = self._subscription
            if subscription is not None:
                if not self._assigned:
                    self._try_assign(subscription)
                elif time.monotonic() >= self._heartbeat_due:
                    self._heartbeat()
                if self._assigned:
                    if not self._chunks:
                        self._fetch()
                    if self._chunks:
                        return self._next_message()
            now = time.monotonic()
            if deadline is None:
                deadline = now + (math.inf if timeout is None else timeout)
            if now >= deadline:
                return None
            time.sleep(min(POLL_STEP_S, deadline - now))

    def _next_message(self) -> BrokerValue[KafkaPayload]:
        chunk = self._chunks[0]
        message = chunk.messages[chunk.next]
        chunk.next += 1
        if chunk.next == len(chunk.messages):
            self._chunks.popleft()
            self._offsets[chunk.partition] = message.offset + 1
        return message

    def _fetch(self) -> None:
        """Read ahead from the partitions that are not paused, each from its working
        offset, starting with a different partition each time."""
        active = [p for p in self._offsets if p not in self._paused]
        if not active:
            return
        try:
            bounds = {
                id_: (low, high)
                for id_, low, high in self._conn.execute(
                    "SELECT id, low_offset, next_offset FROM partitions "
                    f"WHERE id IN ({', '.join('?' * len(active))})",
                    [self._ids[p] for p in active],
                )
            }
            start = self._next_fetch % len(active)
            self._next_fetch += 1
            for partition in active[start:] + active[:start]:
                id_ = self._ids[partition]
                offset = self._offsets[partition]
                low, high = bounds[id_]
                if offset < low or offset > high:
                    raise OffsetOutOfRange(
                        f"offset {offset} of {partition} is out of range: the log holds "
                        f"offsets {low} to {high - 1}"
                    )
                if offset < high:
                    messages = self._read(partition, id_, offset)
                    if messages:
                        self._chunks.append(_Chunk(partition, messages))
        except sqlite3.Error as exc:
            raise log_error(self._path, "read messages", exc) from None

    def _read(
        self, partition: Partition, partition_id: int, offset: int
    ) -> list[BrokerValue[KafkaPayload]]:
        """Up to FETCH_MESSAGES messages from `offset` on, and about FETCH_BYTES."""
        cursor = self._conn.execute(
            f"SELECT offset, key, value, headers, timestamp FROM {messages_table(partition_id)} "
            "WHERE offset >= ? ORDER BY offset LIMIT ?",
            (offset, FETCH_MESSAGES),
        )
        messages: list[BrokerValue[KafkaPayload]] = []
        stamps: dict[int, datetime] = {}  # the messages of one write share their timestamp
        size = 0
        step = FETCH_FIRST_STEP
        while size < FETCH_BYTES and (rows := cursor.fetchmany(step)):
            for ms in {row[4] for row in rows} - stamps.keys():
                stamps[ms] = EPOCH + timedelta(milliseconds=ms)
            messages += [
                BrokerValue(
                    KafkaPayload(key, value, [] if headers is None else decode_headers(headers)),
                    partition,
                    found,
                    stamps[ms],
                )
                for found, key, value, headers, ms in rows
            ]
            size += sum(len(row[2]) for row in rows)
            step = max(1, min(FETCH_STEP, (FETCH_BYTES - size) * len(messages) // max(size, 1)))
        cursor.close()
        # Offsets are unique and in order, so first and last tell whether any is missing.
        if messages and (
            messages[0].offset != offset or messages[-1].offset != offset + len(messages) - 1
        ):
            raise OffsetOutOfRange(f"offset {offset} of {partition} is no longer kept")
        return messages

    # --- flow control and positions ---------------------------------------------------

    def pause(self, partitions: Sequence[Partition]) -> None:
        self._check_open()
        self._check_assigned(partitions, "pause")
        self._settle(partitions)
        self._paused.update(partitions)

    def resume(self, partitions: Sequence[Partition]) -> None:
        self._check_open()
        self._check_assigned(partitions, "resume")
        self._paused.difference_update(partitions)

    def paused(self) -> Sequence[Partition]:
        self._check_open()
        return [*self._paused]

    def tell(self) -> Mapping[Partition, int]:
        self._check_open()
        offsets = dict(self._offsets)
        for chunk in self._chunks:
            offsets[chunk.partition] = chunk.messages[chunk.next].offset
        return offsets

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        self._check_open()
        self._check_assigned(offsets, "seek on")
        _check_offsets(offsets)
        self._settle(offsets)
        self._offsets.update(offsets)

    def _settle(self, partitions: Sequence[Partition] | Mapping[Partition, int]) -> None:
        """Drop the read-ahead of these partitions, keeping their working offsets."""
        gone = set(partitions)
        if any(chunk.partition in gone for chunk in self._chunks):
            for chunk in self._chunks:
                if chunk.partition in gone:
                    self._offsets[chunk.partition] = chunk.messages[chunk.next].offset
            self._chunks = deque(c for c in self._chunks if c.partition not in gone)

    def _check_assigned(
        self, partitions: Sequence[Partition] | Mapping[Partition, int], doing: str
    ) -> None:
        unassigned = set(partitions) - self._offsets.keys()
        if unassigned:
            raise ConsumerError(f"cannot {doing} unassigned partitions: {sorted(unassigned)}")

    # --- offsets --------------------------------------------------------------------

    def stage_offsets(self, offsets: Mapping[Partition, int]) -> None:
        self._staged.update(offsets)

    def commit_offsets(self) -> Mapping[Partition, int] | None:
        self._check_open()
        offsets = dict(self._staged)
        self._check_assigned(offsets, "commit offsets for")
        _check_offsets(offsets)
        if offsets and self._losing_lease:
            log.warning(
                "offsets not committed: the lease was taken over",
                extra={"group": self._group, "offsets": str(offsets)},
            )
            self._staged.clear()
            return {}
        if offsets:
            self._write_offsets(offsets)
        self._staged.clear()
        if (
            self._subscription is not None
            and time.monotonic() - self._last_trim >= self._trim_interval
        ):
            self._trim()
        return offsets

    def _write_offsets(self, offsets: Mapping[Partition, int]) -> None:
        assert self._subscription is not None
        now = time.time()
        try:
            with write_transaction(self._conn):
                # Committing renews the lease, and is refused without it.
                if not leases.renew_in_transaction(
                    self._conn, self._group, self._subscription.topics, self._member, now
                ):
                    self._heartbeat_due = 0.0  # the next poll revokes the partitions
                    raise ConsumerError(
                        f"cannot commit offsets of group {self._group!r}: another member "
                        "has taken over its lease"
                    )
                self._conn.executemany(
                    "INSERT INTO committed_offsets (group_name, topic, partition, offset) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (group_name, topic, partition) "
                    "DO UPDATE SET offset = excluded.offset",
                    [(self._group, p.topic.name, p.index, o) for p, o in offsets.items()],
                )
        except sqlite3.Error as exc:
            raise log_error(self._path, f"commit offsets of group {self._group!r}", exc) from None
        self._heartbeat_due = time.monotonic() + self._heartbeat_interval

    def _trim(self) -> None:
        self._last_trim = time.monotonic()
        assert self._subscription is not None
        for topic in self._subscription.topics:
            try:
                trimming.trim(self._conn, topic)
            except sqlite3.Error as exc:
                # Trimming can wait: a busy log is no reason to stop consuming.
                log.warning("cannot trim", extra={"topic": topic, "error": str(exc)})

    # --- lifecycle ------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        if self._closed:
            return
        try:
            if self._subscription is not None:
                self._revoke()
                self._release()
                self._subscription = None
        finally:
            self._closed = True
            self._conn.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def member_id(self) -> str:
        return self._member.member_id

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("consumer is closed")


def _check_offsets(offsets: Mapping[Partition, int]) -> None:
    negative = {p: o for p, o in offsets.items() if o < 0}
    if negative:
        raise ConsumerError(f"invalid offsets: {negative!r}")
