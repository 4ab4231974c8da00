"""The embedded log, on real SQLite files: partitioning, order, offsets and timestamps,
committed offsets, consumer groups and their leases, seek/pause, trimming, the size
limit, refusing files that are not vigil logs, and arroyo's StreamProcessor on top."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from arroyo.backends.abstract import Consumer, Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.errors import ConsumerError, OffsetOutOfRange
from arroyo.processing.processor import StreamProcessor
from arroyo.processing.strategies import CommitOffsets, ProcessingStrategy, RunTask
from arroyo.processing.strategies.abstract import ProcessingStrategyFactory
from arroyo.types import BrokerValue, Commit, Message, Partition, Topic

from vigil.config import Settings
from vigil.streams.backend import LogError, MessageTooLarge
from vigil.streams.embedded.backend import EmbeddedBackend
from vigil.streams.embedded.consumer import EmbeddedConsumer
from vigil.streams.embedded.producer import EmbeddedProducer
from vigil.streams.embedded.storage import FORMAT_VERSION, SQLITE_MAGIC, messages_table
from vigil.streams.topics import Topic as VigilTopic

# An upper bound for waits that end as soon as their condition holds.
WAIT_S = 60.0
EPOCH = datetime(1970, 1, 1)

TOPIC = Topic(VigilTopic.INGEST_OCCURRENCES.value)  # 4 partitions
TICKS = Topic(VigilTopic.MONITORS_CLOCK_TICK.value)  # 1 partition


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", partitions=4)


@pytest.fixture
def backend(settings: Settings) -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(settings)
    backend.ensure_topics(["sink"])
    yield backend
    backend.close()


def consumer(settings: Settings, group: str, **tuning: float) -> EmbeddedConsumer:
    return EmbeddedConsumer(settings.log_path, group, settings.sqlite_busy_timeout_ms, **tuning)


def produce(
    producer: Producer[KafkaPayload],
    destination: Topic | Partition,
    payloads: Sequence[KafkaPayload],
) -> list[BrokerValue[KafkaPayload]]:
    futures = [producer.produce(destination, p) for p in payloads]
    return [f.result(timeout=WAIT_S) for f in futures]


def produce_closing(
    backend: EmbeddedBackend, destination: Topic | Partition, payloads: Sequence[KafkaPayload]
) -> list[BrokerValue[KafkaPayload]]:
    producer = backend.get_producer()
    try:
        return produce(producer, destination, payloads)
    finally:
        producer.close().result(timeout=WAIT_S)


def values(*texts: str, key: bytes | None = None) -> list[KafkaPayload]:
    return [KafkaPayload(key, t.encode(), []) for t in texts]


def consume(c: Consumer[KafkaPayload], count: int) -> list[BrokerValue[KafkaPayload]]:
    """The next `count` messages; fails if they do not come."""
    got: list[BrokerValue[KafkaPayload]] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages came"
        message = c.poll(0.5)
        if message is not None:
            got.append(message)
    return got


def drained(c: Consumer[KafkaPayload]) -> bool:
    """Whether the consumer has nothing more to read right now."""
    return c.poll(0.05) is None


def commit_position(c: Consumer[KafkaPayload]) -> None:
    c.stage_offsets(c.tell())
    c.commit_offsets()


def kept_offsets(settings: Settings, topic: Topic, partition: int = 0) -> list[int]:
    with sqlite3.connect(settings.log_path) as conn:
        [(partition_id,)] = conn.execute(
            "SELECT id FROM partitions WHERE topic = ? AND partition = ?", (topic.name, partition)
        ).fetchall()
        rows = conn.execute(
            f"SELECT offset FROM {messages_table(partition_id)} ORDER BY offset"
        ).fetchall()
    conn.close()
    return [r[0] for r in rows]


# --- partitioning, order, offsets, timestamps ------------------------------------------


def test_messages_of_one_key_go_to_its_partition_in_order(backend: EmbeddedBackend) -> None:
    keys = [f"monitor-{k}".encode() for k in range(40)]
    payloads = [KafkaPayload(key, f"{seq}".encode(), []) for seq in range(25) for key in keys]
    produced = produce_closing(backend, TOPIC, payloads)

    for value in produced:
        assert value.partition.index == zlib.crc32(value.payload.key or b"") % 4
    c = backend.get_consumer("g")
    c.subscribe([TOPIC])
    seen: dict[bytes, list[int]] = {}
    for message in consume(c, len(payloads)):
        seen.setdefault(message.payload.key or b"", []).append(int(message.payload.value))
    assert drained(c)
    assert seen == {key: list(range(25)) for key in keys}
    c.close()


def test_keyless_messages_and_explicit_partitions(backend: EmbeddedBackend) -> None:
    keyless = produce_closing(backend, TOPIC, values(*(str(i) for i in range(200))))
    assert {v.partition.index for v in keyless} <= {0, 1, 2, 3}
    assert len({v.partition.index for v in keyless}) > 1  # 4**-199: not all on one

    explicit = produce_closing(backend, Partition(TOPIC, 2), values("a", "b", key=b"k"))
    assert [v.partition.index for v in explicit] == [2, 2]

    with pytest.raises(LogError, match="no partition 7"):
        produce_closing(backend, Partition(TOPIC, 7), values("x"))
    with pytest.raises(LogError, match="does not exist"):
        produce_closing(backend, Topic("no-such-topic"), values("x"))


def test_offsets_are_gapless_and_timestamps_non_decreasing_per_partition(
    backend: EmbeddedBackend,
) -> None:
    producer = backend.get_producer()
    before_ms = time.time_ns() // 1_000_000
    produced: list[BrokerValue[KafkaPayload]] = []
    for round_ in range(5):  # several transactions
        batch = [KafkaPayload(f"k{i}".encode(), b"v", []) for i in range(round_ * 100, 400)]
        produced += produce(producer, TOPIC, batch)
    producer.close().result(timeout=WAIT_S)
    after = EPOCH + timedelta(milliseconds=time.time_ns() // 1_000_000)

    c = backend.get_consumer("g")
    c.subscribe([TOPIC])
    consumed = consume(c, len(produced))
    by_partition: dict[int, list[BrokerValue[KafkaPayload]]] = {}
    for message in consumed:
        by_partition.setdefault(message.partition.index, []).append(message)
    for messages in by_partition.values():
        assert [m.offset for m in messages] == list(range(len(messages)))
        stamps = [m.timestamp for m in messages]
        assert stamps == sorted(stamps)
        assert EPOCH + timedelta(milliseconds=before_ms) <= stamps[0]
        assert stamps[-1] <= after
    # What the producer was told is what the consumer reads.
    assert sorted((v.partition, v.offset, v.timestamp, v.payload) for v in produced) == sorted(
        (m.partition, m.offset, m.timestamp, m.payload) for m in consumed
    )
    c.close()


def test_timestamps_never_go_back_even_if_the_clock_does(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    # The partition last wrote at a time ahead of this clock (as after a clock step back).
    ahead_ms = time.time_ns() // 1_000_000 + 3_600_000
    with sqlite3.connect(settings.log_path) as conn:
        conn.execute(
            "UPDATE partitions SET last_timestamp = ? WHERE topic = ?", (ahead_ms, TICKS.name)
        )
    [value] = produce_closing(backend, TICKS, values("tick"))
    assert value.timestamp == EPOCH + timedelta(milliseconds=ahead_ms)


def test_headers_and_missing_keys_round_trip(backend: EmbeddedBackend) -> None:
    headers = [("reason", b"bad json"), ("original_partition", b"3"), ("reason", b"twice")]
    payloads = [KafkaPayload(None, b"no key", []), KafkaPayload(b"k", b"", headers)]
    produce_closing(backend, TICKS, payloads)
    c = backend.get_consumer("g")
    c.subscribe([TICKS])
    assert [m.payload for m in consume(c, 2)] == payloads
    c.close()


def test_close_writes_everything_produced_before_it(backend: EmbeddedBackend) -> None:
    # Closing at once races the writer for the batch; a few rounds give the race a chance.
    for round_ in range(20):
        producer = backend.get_producer()
        futures = [
            producer.produce(TICKS, KafkaPayload(None, f"{round_}:{i}".encode(), []))
            for i in range(3)
        ]
        producer.close().result(timeout=WAIT_S)
        assert all(f.done() for f in futures)
        assert [f.result(0).offset for f in futures] == [round_ * 3 + i for i in range(3)]
        with pytest.raises(RuntimeError, match="closed"):
            producer.produce(TICKS, KafkaPayload(None, b"late", []))
    c = backend.get_consumer("g")
    c.subscribe([TICKS])
    assert [m.payload.value for m in consume(c, 60)] == [
        f"{r}:{i}".encode() for r in range(20) for i in range(3)
    ]
    assert drained(c)
    c.close()


def test_large_and_empty_messages_round_trip(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_message_bytes=2 * 1024 * 1024)
    backend = EmbeddedBackend(settings)
    backend.ensure_topics()
    large = [KafkaPayload(None, bytes([i]) * (1024 * 1024), []) for i in range(20)]
    empty = [KafkaPayload(None, b"", []) for _ in range(5)]
    produce_closing(backend, Partition(TOPIC, 0), large)
    produce_closing(backend, Partition(TOPIC, 1), empty)
    c = backend.get_consumer("g")
    c.subscribe([TOPIC])
    got = consume(c, 25)
    assert [m.payload for m in got if m.partition.index == 0] == large
    assert [m.payload for m in got if m.partition.index == 1] == empty
    assert drained(c)
    c.close()
    backend.close()


def test_a_failed_write_fails_its_futures_and_the_producer_goes_on(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    producer = EmbeddedProducer(settings.log_path, 1024, busy_timeout_ms=100)
    blocker = sqlite3.connect(settings.log_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
    failing = producer.produce(TICKS, KafkaPayload(None, b"lost", []))
    with pytest.raises(LogError, match="locked"):
        failing.result(timeout=WAIT_S)
    assert failing.done()
    blocker.execute("ROLLBACK")
    blocker.close()

    [written] = produce(producer, TICKS, values("kept"))
    producer.close().result(timeout=WAIT_S)
    assert written.offset == 0
    assert kept_offsets(settings, TICKS) == [0]


# --- committed offsets and groups ------------------------------------------------------


def test_committed_offsets_survive_closing_and_reopening(settings: Settings) -> None:
    first = EmbeddedBackend(settings)
    first.ensure_topics()
    produce_closing(first, TICKS, values(*(f"m{i}" for i in range(10))))
    c = first.get_consumer("g")
    c.subscribe([TICKS])
    consume(c, 6)
    commit_position(c)
    consume(c, 2)  # read but not committed
    c.close()
    first.close()

    again = EmbeddedBackend(settings)
    assert again.lag("g", TICKS.name) == {0: 4}
    c = again.get_consumer("g")
    assigned: list[Mapping[Partition, int]] = []
    c.subscribe([TICKS], on_assign=assigned.append)
    assert [m.payload.value for m in consume(c, 4)] == [b"m6", b"m7", b"m8", b"m9"]
    assert assigned == [{Partition(TICKS, 0): 6}]
    c.close()
    again.close()


def test_a_second_group_reads_from_the_start(backend: EmbeddedBackend) -> None:
    produce_closing(backend, TICKS, values("a", "b", "c"))
    one = backend.get_consumer("one")
    one.subscribe([TICKS])
    consume(one, 3)
    commit_position(one)
    one.close()

    two = backend.get_consumer("two")
    two.subscribe([TICKS])
    assert [m.offset for m in consume(two, 3)] == [0, 1, 2]
    assert drained(two)
    two.close()
    assert backend.lag("one", TICKS.name) == {0: 0}
    assert backend.lag("two", TICKS.name) == {0: 3}
    assert backend.lag("never-seen", TICKS.name) == {0: 3}


def test_commit_offsets_returns_what_it_committed_and_checks_partitions(
    backend: EmbeddedBackend,
) -> None:
    produce_closing(backend, TICKS, values("a", "b"))
    c = backend.get_consumer("g")
    c.subscribe([TICKS])
    consume(c, 1)
    c.stage_offsets({Partition(TICKS, 0): 1})
    assert c.commit_offsets() == {Partition(TICKS, 0): 1}
    assert c.commit_offsets() == {}
    c.stage_offsets({Partition(TOPIC, 0): 1})
    with pytest.raises(ConsumerError, match="unassigned"):
        c.commit_offsets()
    c.close()
    with pytest.raises(RuntimeError, match="closed"):
        c.poll(0)
    assert c.closed


def test_a_member_is_assigned_every_partition_of_its_topics(backend: EmbeddedBackend) -> None:
    produce_closing(backend, TICKS, values("tick"))
    produce_closing(backend, Partition(TOPIC, 3), values("occurrence"))
    c = backend.get_consumer("g")
    assigned: list[Mapping[Partition, int]] = []
    c.subscribe([TICKS, TOPIC], on_assign=assigned.append)
    got = {(m.partition, m.payload.value) for m in consume(c, 2)}
    assert got == {(Partition(TICKS, 0), b"tick"), (Partition(TOPIC, 3), b"occurrence")}
    assert assigned == [{Partition(TICKS, 0): 0, **{Partition(TOPIC, i): 0 for i in range(4)}}]
    c.close()


# --- seek, tell, pause, resume ---------------------------------------------------------


def test_seek_and_tell(backend: EmbeddedBackend) -> None:
    p0 = Partition(TOPIC, 0)
    produce_closing(backend, p0, values(*(f"m{i}" for i in range(10))))
    c = backend.get_consumer("g")
    c.subscribe([TOPIC])
    assert [m.offset for m in consume(c, 5)] == [0, 1, 2, 3, 4]
    assert c.tell() == {
        p0: 5,
        Partition(TOPIC, 1): 0,
        Partition(TOPIC, 2): 0,
        Partition(TOPIC, 3): 0,
    }

    c.seek({p0: 2})
    assert c.tell()[p0] == 2
    assert [m.offset for m in consume(c, 3)] == [2, 3, 4]
    c.seek({p0: 9})
    assert [m.offset for m in consume(c, 1)] == [9]
    assert drained(c)

    c.seek({p0: 11})  # beyond the end
    with pytest.raises(OffsetOutOfRange):
        c.poll(0.1)
    with pytest.raises(ConsumerError, match="unassigned"):
        c.seek({Partition(TICKS, 0): 0})
    with pytest.raises(ConsumerError, match="invalid"):
        c.seek({p0: -1})
    c.close()


def test_paused_partitions_are_not_read_until_resumed(backend: EmbeddedBackend) -> None:
    p0, p1 = Partition(TOPIC, 0), Partition(TOPIC, 1)
    produce_closing(backend, p0, values(*(f"a{i}" for i in range(5))))
    produce_closing(backend, p1, values(*(f"b{i}" for i in range(5))))
    c = backend.get_consumer("g")
    c.subscribe([TOPIC])
    first = consume(c, 1)[0]  # the consumer has read ahead in both partitions
    other = p1 if first.partition == p0 else p0

    c.pause([other])
    assert c.paused() == [other]
    rest = consume(c, 4)
    assert {m.partition for m in rest} == {first.partition}
    assert drained(c)
    assert c.tell()[other] == 0

    c.resume([other])
    assert c.paused() == []
    assert [(m.partition, m.offset) for m in consume(c, 5)] == [(other, i) for i in range(5)]
    with pytest.raises(ConsumerError, match="unassigned"):
        c.pause([Partition(TICKS, 0)])
    c.close()


# --- one active member per group -------------------------------------------------------


def test_a_second_member_waits_until_the_first_leaves(backend: EmbeddedBackend) -> None:
    produce_closing(backend, TICKS, values("a", "b", "c"))
    first = backend.get_consumer("g")
    revoked: list[Sequence[Partition]] = []
    first.subscribe([TICKS], on_revoke=revoked.append)
    consume(first, 1)
    commit_position(first)

    second = backend.get_consumer("g")
    assigned: list[Mapping[Partition, int]] = []
    second.subscribe([TICKS], on_assign=assigned.append)
    assert second.poll(0.2) is None
    assert assigned == []
    assert second.tell() == {}

    first.close()  # revokes its partitions and releases the lease
    assert revoked == [[Partition(TICKS, 0)]]
    assert [m.offset for m in consume(second, 2)] == [1, 2]
    assert assigned == [{Partition(TICKS, 0): 1}]
    assert second.member_id != first.member_id
    second.close()


def test_an_expired_lease_is_taken_over(settings: Settings, backend: EmbeddedBackend) -> None:
    produce_closing(backend, TICKS, values("a", "b", "c"))
    stuck = consumer(settings, "g", heartbeat_interval=0.0)
    revoked: list[Sequence[Partition]] = []

    def commit_on_revoke(partitions: Sequence[Partition]) -> None:
        revoked.append(partitions)
        stuck.stage_offsets({Partition(TICKS, 0): 3})
        stuck.commit_offsets()  # dropped: the lease is someone else's now

    stuck.subscribe([TICKS], on_revoke=commit_on_revoke)
    consume(stuck, 1)  # then it stops polling, though its process lives

    taker = consumer(settings, "g", lease_timeout=0.3)
    taker.subscribe([TICKS])
    assert [m.offset for m in consume(taker, 3)] == [0, 1, 2]
    taker.stage_offsets({Partition(TICKS, 0): 1})
    taker.commit_offsets()

    assert stuck.poll(0.1) is None  # finds its lease gone
    assert revoked == [[Partition(TICKS, 0)]]
    assert stuck.tell() == {}
    assert backend.lag("g", TICKS.name) == {0: 2}  # the taker's commit stands
    stuck.close()
    taker.close()


# The lease held by a SIGKILLed process is in tests/test_embedded_log_processes.py.


# --- trimming --------------------------------------------------------------------------


def test_trimming_keeps_what_any_group_still_needs(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    produce_closing(backend, TICKS, values(*(f"m{i}" for i in range(10))))
    ahead = consumer(settings, "ahead", trim_interval=0)
    behind = consumer(settings, "behind", trim_interval=0)
    idle = consumer(settings, "idle", trim_interval=0)
    for c in (ahead, behind, idle):
        c.subscribe([TICKS])

    consume(ahead, 8)
    commit_position(ahead)
    consume(behind, 3)
    commit_position(behind)
    # "idle" subscribed but never committed: everything is kept for it.
    assert kept_offsets(settings, TICKS) == list(range(10))

    consume(idle, 5)
    commit_position(idle)  # commits, then trims below min(8, 3, 5)
    assert kept_offsets(settings, TICKS) == list(range(3, 10))
    idle.close()  # a group that leaves is still waited for

    consume(behind, 7)
    commit_position(behind)
    assert kept_offsets(settings, TICKS) == list(range(5, 10))

    late = backend.get_consumer("late")  # a new group starts at the earliest message kept
    late.subscribe([TICKS])
    assert [m.offset for m in consume(late, 5)] == [5, 6, 7, 8, 9]
    for member in (ahead, behind, late):
        member.close()


def test_topics_no_group_reads_keep_everything(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    produce_closing(backend, TICKS, values("a", "b"))
    produce_closing(backend, Topic("sink-dlq"), values("bad", "worse"))
    c = consumer(settings, "g", trim_interval=0)
    c.subscribe([TICKS])
    consume(c, 2)
    commit_position(c)
    c.close()
    assert kept_offsets(settings, TICKS) == []
    assert kept_offsets(settings, Topic("sink-dlq")) == [0, 1]


# --- the size limit --------------------------------------------------------------------


def test_oversize_messages_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, max_message_bytes=100)
    backend = EmbeddedBackend(settings)
    backend.ensure_topics()
    producer = backend.get_producer()
    with pytest.raises(MessageTooLarge, match=r"101 bytes .* limit of 100 bytes") as refused:
        producer.produce(TICKS, KafkaPayload(b"0123456789", b"x" * 91, []))
    assert refused.value.topic == TICKS.name
    with pytest.raises(MessageTooLarge, match="101 bytes"):  # headers count
        producer.produce(TICKS, KafkaPayload(b"0123456789", b"x" * 80, [("h", b"y" * 10)]))
    [fits] = produce(producer, TICKS, [KafkaPayload(b"0123456789", b"x" * 90, [])])
    producer.close().result(timeout=WAIT_S)

    assert fits.offset == 0
    assert kept_offsets(settings, TICKS) == [0]
    backend.close()


# --- files that are not vigil logs -----------------------------------------------------


def test_a_second_connection_keeps_the_first_ones_locks(
    settings: Settings, backend: EmbeddedBackend
) -> None:
    # POSIX file locks are the process's: closing any descriptor of the file drops
    # them all, SQLite's included. Another process closing its connection then sees no
    # other user, checkpoints the log and deletes its WAL under the open connections,
    # whose writes go to the deleted file: lost to every new reader.
    producer = backend.get_producer()
    try:
        produce(producer, TICKS, values("before"))
        reader = backend.get_consumer("g")  # another connection, in this process
        outsider = subprocess.run(
            [sys.executable, "-c", _CLOSE_ONE_CONNECTION, str(settings.log_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert outsider.returncode == 0, outsider.stderr
        assert Path(f"{settings.log_path}-wal").exists()
        produce(producer, TICKS, values("after"))
        reader.close()
    finally:
        producer.close().result(timeout=WAIT_S)
    fresh = backend.get_consumer("fresh")
    fresh.subscribe([TICKS])
    assert [m.payload.value for m in consume(fresh, 2)] == [b"before", b"after"]
    fresh.close()


_CLOSE_ONE_CONNECTION = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("SELECT count(*) FROM topics").fetchall()
conn.close()
"""


def test_an_empty_file_becomes_a_log(settings: Settings) -> None:
    settings.home.mkdir()
    settings.log_path.touch()
    backend = EmbeddedBackend(settings)
    backend.ensure_topics()
    backend.check()
    assert backend.partition_count(TOPIC.name) == 4
    backend.close()


def test_a_file_that_is_not_sqlite_is_refused(settings: Settings) -> None:
    settings.home.mkdir()
    content = b"these are somebody's notes, not a log\n" * 100
    settings.log_path.write_bytes(content)
    with pytest.raises(LogError, match="not a SQLite database") as refused:
        EmbeddedBackend(settings)
    assert str(settings.log_path) in str(refused.value)
    assert settings.log_path.read_bytes() == content


def test_a_damaged_sqlite_file_is_refused(settings: Settings) -> None:
    settings.home.mkdir()
    content = SQLITE_MAGIC + bytes(range(256)) * 16
    settings.log_path.write_bytes(content)
    with pytest.raises(LogError, match="damaged") as refused:
        EmbeddedBackend(settings)
    assert str(settings.log_path) in str(refused.value)
    assert settings.log_path.read_bytes() == content


def test_another_applications_sqlite_file_is_refused(settings: Settings) -> None:
    settings.home.mkdir()
    with sqlite3.connect(settings.log_path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total INTEGER)")
        conn.execute("INSERT INTO invoices VALUES (1, 100)")
    conn.close()
    content = settings.log_path.read_bytes()
    openings: list[Callable[[], object]] = [
        lambda: EmbeddedBackend(settings),
        lambda: consumer(settings, "g"),
        lambda: EmbeddedProducer(settings.log_path, 100, settings.sqlite_busy_timeout_ms),
    ]
    for opening in openings:
        with pytest.raises(LogError, match="not a vigil log") as refused:
            opening()
        assert "invoices" in str(refused.value)
        assert str(settings.log_path) in str(refused.value)
    assert settings.log_path.read_bytes() == content


def test_a_log_of_a_newer_format_is_refused(settings: Settings) -> None:
    EmbeddedBackend(settings).close()
    with sqlite3.connect(settings.log_path) as conn:
        conn.execute(f"PRAGMA user_version = {FORMAT_VERSION + 1}")
    conn.close()
    with pytest.raises(LogError, match="newer") as refused:
        EmbeddedBackend(settings)
    assert str(settings.log_path) in str(refused.value)


# --- topics and the backend ------------------------------------------------------------


def test_ensure_topics_is_idempotent_and_keeps_existing_partition_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path, partitions=4, topic_prefix="a.")
    backend = EmbeddedBackend(settings)
    backend.ensure_topics(["sink"])
    backend.ensure_topics(["sink"])
    assert backend.partition_count("a.ingest-monitors") == 4
    assert backend.partition_count("a.monitors-clock-tick") == 1
    assert backend.partition_count("a.sink-dlq") == 1
    backend.close()

    more = EmbeddedBackend(Settings(home=tmp_path, partitions=8, topic_prefix="a."))
    with caplog.at_level(logging.WARNING):
        more.ensure_topics(["sink"])
    assert more.partition_count("a.ingest-monitors") == 4
    assert any(
        r.getMessage().startswith("topic exists with another partition count")
        for r in caplog.records
    )
    with pytest.raises(LogError, match="does not exist"):
        more.partition_count("ingest-monitors")
    more.check()
    more.close()


# --- arroyo's StreamProcessor on the embedded consumer -------------------------------


class _Collect(ProcessingStrategyFactory[KafkaPayload]):
    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        def record(message: Message[KafkaPayload]) -> None:
            self.seen.append(message.payload.value)

        return RunTask(record, CommitOffsets(commit))


def test_arroyo_stream_processor_consumes_and_commits(backend: EmbeddedBackend) -> None:
    payloads = [KafkaPayload(f"k{i % 7}".encode(), f"m{i}".encode(), []) for i in range(300)]
    produce_closing(backend, TOPIC, payloads)
    factory = _Collect()
    processor = StreamProcessor(backend.get_consumer("proc"), TOPIC, factory)
    runner = threading.Thread(target=processor.run)
    runner.start()
    deadline = time.monotonic() + WAIT_S
    while len(factory.seen) < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.05)
    processor.signal_shutdown()
    runner.join(WAIT_S)

    assert sorted(factory.seen) == sorted(p.value for p in payloads)
    assert backend.lag("proc", TOPIC.name) == {0: 0, 1: 0, 2: 0, 3: 0}  # committed at shutdown
