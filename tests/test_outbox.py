"""The transactional outbox on both backends: rows exist only if their transaction
committed, a flush produces them in id order once each and deletes them after the log's
acknowledgement, and a log that refuses a message (a real producer whose size limit the
message exceeds, or a closed producer) leaves it and everything after it for the next
flush; `vigil periodic`'s flush picks up what a writer left behind."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic as LogTopic
from sqlalchemy import Engine, select

from vigil.config import Settings
from vigil.db.tables import outbox as outbox_table
from vigil.streams import outbox
from vigil.streams.backend import LogBackend, LogError, get_backend
from vigil.streams.topics import Topic

TOPIC = Topic.INGEST_OCCURRENCES
KEY = b"one-key"  # one key: one partition, so the log's order is the produce order
WAIT_S = 120.0


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics()
    yield backend
    backend.close()


@pytest.fixture
def producer(log_backend: LogBackend) -> Iterator[Producer[KafkaPayload]]:
    made = log_backend.get_producer()
    yield made
    made.close().result(timeout=WAIT_S)


def read_all(
    settings: Settings, backend: LogBackend, producer: Producer[KafkaPayload]
) -> list[bytes]:
    """Every value on TOPIC under KEY, in log order: a sentinel is written last with the
    same key and everything before it is returned."""
    sentinel = f"sentinel-{uuid.uuid4().hex}".encode()
    name = settings.topic(TOPIC)
    producer.produce(LogTopic(name), KafkaPayload(KEY, sentinel, [])).result(timeout=WAIT_S)
    consumer = backend.get_consumer(settings.topic(f"reader-{uuid.uuid4().hex[:12]}"))
    consumer.subscribe([LogTopic(name)])
    found: list[bytes] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            value = consumer.poll(0.2)
            if value is None:
                continue
            if value.payload.value == sentinel:
                return [v for v in found if not v.startswith(b"sentinel-")]
            if value.payload.key == KEY:
                found.append(value.payload.value)
    finally:
        consumer.close()
    raise AssertionError("the sentinel never arrived")


def rows(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [bytes(r.value) for r in conn.execute(select(outbox_table).order_by("id"))]


def enqueue(engine: Engine, *values: bytes) -> None:
    with engine.begin() as conn:
        for value in values:
            outbox.enqueue(conn, TOPIC, KEY, value)


def test_a_rolled_back_transaction_leaves_no_row(engine: Engine) -> None:
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.enqueue(conn, TOPIC, KEY, b"never")
        raise RuntimeError("the decision rolled back")
    assert rows(engine) == []


def test_flush_produces_each_row_once_in_order_and_deletes_it(
    stack: Settings, engine: Engine, log_backend: LogBackend, producer: Producer[KafkaPayload]
) -> None:
    enqueue(engine, b"first", b"second")
    with engine.begin() as conn:
        outbox.enqueue_many(conn, [(TOPIC, KEY, b"third"), (TOPIC, KEY.decode(), b"fourth")])

    assert outbox.flush(engine, producer, stack) == 4
    assert rows(engine) == []
    assert outbox.flush(engine, producer, stack) == 0  # nothing is produced twice
    assert read_all(stack, log_backend, producer) == [b"first", b"second", b"third", b"fourth"]


def test_a_message_over_the_size_limit_is_parked_and_the_rest_go_on(
    stack: Settings, engine: Engine, log_backend: LogBackend, producer: Producer[KafkaPayload]
) -> None:
    big = b"x" * 2000
    enqueue(engine, b"small", big, b"after")
    # A real producer of this log whose limit the big message exceeds: refused before
    # anything is sent, the same at every try, as an over-limit occurrence would be.
    strict = get_backend(replace(stack, max_message_bytes=1000))
    refusing = strict.get_producer()
    try:
        assert outbox.flush(engine, refusing, stack) == 2  # one refused never stops the rest
        assert outbox.flush(engine, refusing, stack) == 0  # parked: the writer skips it
    finally:
        refusing.close().result(timeout=WAIT_S)
        strict.close()
    assert rows(engine) == [big]
    with engine.connect() as conn:
        (reason,) = conn.scalars(select(outbox_table.c.refused)).all()
    assert reason is not None and "exceeds the limit of 1000 bytes" in reason

    # `vigil periodic` tries parked rows again (the limit may have been raised)
    assert outbox.flush(engine, producer, stack) == 0
    assert outbox.flush(engine, producer, stack, include_refused=True) == 1
    assert rows(engine) == []
    assert read_all(stack, log_backend, producer) == [b"small", b"after", big]


def test_a_closed_producer_keeps_every_row(
    stack: Settings, engine: Engine, log_backend: LogBackend, producer: Producer[KafkaPayload]
) -> None:
    enqueue(engine, b"one", b"two")
    closed = log_backend.get_producer()
    closed.close().result(timeout=WAIT_S)
    with pytest.raises(LogError):
        outbox.flush(engine, closed, stack)
    assert rows(engine) == [b"one", b"two"]

    assert outbox.flush(engine, producer, stack) == 2
    assert read_all(stack, log_backend, producer) == [b"one", b"two"]


def test_the_periodic_flush_takes_only_rows_left_behind(
    stack: Settings, engine: Engine, log_backend: LogBackend, producer: Producer[KafkaPayload]
) -> None:
    enqueue(engine, b"left behind")
    job = outbox.PeriodicFlush(stack, log_backend)
    try:
        now = datetime.now(UTC)
        assert job(engine, now) == 0  # young: its writer flushes it
        later = now + outbox.PERIODIC_MIN_AGE + timedelta(seconds=1)
        assert job(engine, later) == 1
        assert job(engine, later) == 0
    finally:
        job.close()
    assert rows(engine) == []
    assert read_all(stack, log_backend, producer) == [b"left behind"]
