"""vigil's Kafka producer against a real broker: acknowledgements by future and by
callback, where each message landed, failures, closing; and the web's log writer when
the broker stops answering (a paused broker of the test's own)."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Partition, Topic
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.support.services import tansu_process
from vigil.config import Settings
from vigil.ingest.log_writer import KeyedValue, LogWriter
from vigil.streams.backend import LogError
from vigil.streams.kafka import KafkaBackend
from vigil.streams.kafka_producer import KafkaLogProducer
from vigil.streams.topics import Topic as VigilTopic

pytestmark = pytest.mark.kafka

WAIT_S = 30.0


@dataclass
class Acks:
    """What `produce_then` reported: each error (None: acknowledged) and its thread."""

    errors: list[BaseException | None] = field(default_factory=list)
    threads: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, error: BaseException | None) -> None:
        with self.lock:
            self.errors.append(error)
            self.threads.add(threading.get_ident())

    def wait_for(self, count: int) -> list[BaseException | None]:
        deadline = time.monotonic() + WAIT_S
        while len(self.errors) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.errors) == count, f"{len(self.errors)} of {count} acknowledgements"
        return list(self.errors)


def _topic(servers: str, partitions: int = 3) -> str:
    name = f"p{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=-1)])[
        name
    ].result()
    return name


Record = tuple[Any, Any, Any]  # key, value, headers


def _read(servers: str, topic: str, partition: int, offset: int, count: int) -> list[Record]:
    consumer = ConfluentConsumer(
        {"bootstrap.servers": servers, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, partition, offset)])
    found: list[Record] = []
    deadline = time.monotonic() + WAIT_S
    try:
        while len(found) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                found.append((message.key(), message.value(), message.headers() or []))
    finally:
        consumer.close()
    return found


@pytest.fixture
def producer(kafka_bootstrap: str) -> Iterator[KafkaLogProducer]:
    made = KafkaLogProducer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    yield made
    made.close().result(timeout=WAIT_S)


def test_futures_say_where_each_message_was_written(
    kafka_bootstrap: str, producer: KafkaLogProducer
) -> None:
    topic = _topic(kafka_bootstrap)
    headed = KafkaPayload(b"k1", b"with headers", [("reason", b"r"), ("n", b"1")])
    first = producer.produce(Topic(topic), headed).result(timeout=WAIT_S)
    pinned = producer.produce(Partition(Topic(topic), 2), KafkaPayload(None, b"pinned", []))
    second = pinned.result(timeout=WAIT_S)

    assert first.payload == headed
    assert second.partition == Partition(Topic(topic), 2)
    found = _read(kafka_bootstrap, topic, first.partition.index, first.offset, 1)
    assert found == [(b"k1", b"with headers", [("reason", b"r"), ("n", b"1")])]
    assert _read(kafka_bootstrap, topic, 2, second.offset, 1) == [(None, b"pinned", [])]


def test_callbacks_acknowledge_every_message_on_the_producers_thread_in_order(
    kafka_bootstrap: str, producer: KafkaLogProducer
) -> None:
    topic = _topic(kafka_bootstrap, partitions=1)
    acks = Acks()
    for n in range(200):
        producer.produce_then(Topic(topic), KafkaPayload(b"k", str(n).encode(), []), acks)

    assert acks.wait_for(200) == [None] * 200
    assert threading.get_ident() not in acks.threads  # the producer's thread, not ours
    found = _read(kafka_bootstrap, topic, 0, 0, 200)
    assert [int(value) for _, value, _ in found] == list(range(200))


def test_close_returns_once_everything_produced_is_acknowledged(kafka_bootstrap: str) -> None:
    topic = _topic(kafka_bootstrap)
    producer = KafkaLogProducer({"bootstrap.servers": kafka_bootstrap})
    acks = Acks()
    futures = []
    for n in range(100):
        producer.produce_then(Topic(topic), KafkaPayload(b"k", b"%d" % n, []), acks)
        futures.append(producer.produce(Topic(topic), KafkaPayload(b"k", b"f%d" % n, [])))

    producer.close().result(timeout=WAIT_S)

    assert acks.errors == [None] * 100  # all of them, already
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(RuntimeError, match="closed"):
        producer.produce(Topic(topic), KafkaPayload(b"k", b"late", []))


def test_a_message_the_broker_never_acknowledges_fails_its_callback_and_future() -> None:
    with tansu_process() as (servers, broker):
        topic = _topic(servers)
        producer = KafkaLogProducer({"bootstrap.servers": servers, "message.timeout.ms": 1000})
        try:
            producer.produce(Topic(topic), KafkaPayload(b"k", b"warm", [])).result(WAIT_S)
            broker.send_signal(signal.SIGSTOP)
            acks = Acks()
            producer.produce_then(Topic(topic), KafkaPayload(b"k", b"lost", []), acks)
            future = producer.produce(Topic(topic), KafkaPayload(b"k", b"lost too", []))

            [error] = acks.wait_for(1)
            assert error is not None and "timed out" in str(error).lower()
            assert future.exception(timeout=WAIT_S) is not None
        finally:
            broker.send_signal(signal.SIGCONT)
            producer.close().result(timeout=WAIT_S)


def test_a_write_not_acknowledged_in_time_is_refused_and_the_next_ones_go_through() -> None:
    # The ingest endpoints answer 503 on this LogError: a client retries, and is not
    # left waiting on a broker that stopped answering.
    with tansu_process() as (servers, broker):
        settings = Settings(
            kafka_bootstrap_servers=servers,
            topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
            kafka_session_timeout_ms=6000,
        )
        backend = KafkaBackend(settings)
        writer = LogWriter(backend, settings, VigilTopic.INGEST_MONITORS, ack_timeout_s=1.0)
        writer.open()

        async def scenario() -> float:
            # A new producer's first messages may wait longer than that for the topic's
            # metadata and a producer id; then writes are produced on the loop.
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    await writer.write_async([KeyedValue(b"k", b"warm")])
                    await writer.write_async([KeyedValue(b"k", b"on the loop")])
                    break
                except LogError:
                    assert time.monotonic() < deadline, "the broker never acknowledged"
            broker.send_signal(signal.SIGSTOP)
            started = time.monotonic()
            try:
                with pytest.raises(LogError, match="not acknowledged within 1 s"):
                    await writer.write_async([KeyedValue(b"k", b"while paused")])
                return time.monotonic() - started
            finally:
                broker.send_signal(signal.SIGCONT)

        async def after() -> None:
            # Once the broker is back, writes are acknowledged again (in time, once it
            # has caught up with what waited for it).
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    await asyncio.gather(
                        *(
                            writer.write_async([KeyedValue(b"k", b"after %d" % n)])
                            for n in range(20)
                        )
                    )
                    return
                except LogError:
                    assert time.monotonic() < deadline, "writes were never acknowledged again"

        try:
            waited = asyncio.run(scenario())
            assert 1.0 <= waited < 5.0
            asyncio.run(after())
        finally:
            writer.close()
            backend.close()
