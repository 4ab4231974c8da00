"""The Kafka log against a real Kafka-protocol broker: topics, the size limit, lag, and
a clear error when the broker cannot be reached."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from tests.support.services import free_port
from vigil.config import Settings
from vigil.streams.backend import LogError, MessageTooLarge
from vigil.streams.kafka import KafkaBackend
from vigil.streams.runner import produce
from vigil.streams.topics import Topic as VigilTopic

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=3,
        max_message_bytes=1000,
        kafka_session_timeout_ms=6000,
    )


@pytest.fixture
def backend(settings: Settings) -> Iterator[KafkaBackend]:
    made = KafkaBackend(settings)
    yield made
    made.close()


def test_ensure_topics_creates_every_topic_with_its_partition_count_idempotently(
    settings: Settings, backend: KafkaBackend
) -> None:
    expected = {
        "ingest-monitors": 3,
        "ingest-occurrences": 3,
        "monitors-clock-tick": 1,
        "monitors-clock-tasks": 3,
        "monitors-incident-occurrences": 3,
        "alpha-dlq": 1,
        "beta-dlq": 1,
    }
    for _ in range(2):
        backend.ensure_topics(["alpha", "beta"])
        counts = {name: backend.partition_count(settings.topic(name)) for name in expected}
        assert counts == expected


def test_ensure_topics_refuses_a_clock_tick_topic_with_several_partitions(
    settings: Settings, backend: KafkaBackend
) -> None:
    tick = settings.topic(VigilTopic.MONITORS_CLOCK_TICK)
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(tick, num_partitions=2, replication_factor=-1)])[tick].result()

    with pytest.raises(LogError, match="has 2 partitions but must have exactly 1"):
        backend.ensure_topics()


def test_producer_refuses_a_message_over_the_limit_before_sending(
    settings: Settings, backend: KafkaBackend
) -> None:
    backend.ensure_topics()
    topic = settings.topic(VigilTopic.INGEST_OCCURRENCES)
    producer = backend.get_producer()
    try:
        with pytest.raises(MessageTooLarge, match=r"1001 bytes .* limit of 1000 bytes"):
            producer.produce(Topic(topic), KafkaPayload(b"key", b"x" * 998, []))
        # exactly at the limit (key + value) is accepted and acknowledged
        accepted = produce(producer, settings, VigilTopic.INGEST_OCCURRENCES, b"x" * 997, b"key")
    finally:
        producer.close().result(timeout=30)
    assert accepted.payload.value == b"x" * 997
    assert sum(backend.lag("nobody", topic).values()) == 1  # only the accepted one


def test_lag_counts_the_messages_a_group_has_not_committed(
    settings: Settings, backend: KafkaBackend
) -> None:
    backend.ensure_topics()
    topic = settings.topic(VigilTopic.INGEST_OCCURRENCES)
    group = settings.topic("lagging")
    producer = backend.get_producer()
    try:
        written = [
            produce(producer, settings, VigilTopic.INGEST_OCCURRENCES, b"{}", key=f"k{i % 2}")
            for i in range(5)
        ]
    finally:
        producer.close().result(timeout=30)
    per_partition = {p: 0 for p in range(3)}
    for value in written:
        per_partition[value.partition.index] += 1
    assert backend.lag(group, topic) == per_partition

    # The group commits past the first message (without joining, as an admin would).
    first = written[0]
    committer = ConfluentConsumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": group}
    )
    committer.commit(
        offsets=[TopicPartition(topic, first.partition.index, first.offset + 1)],
        asynchronous=False,
    )
    committer.close()
    per_partition[first.partition.index] -= 1
    assert backend.lag(group, topic) == per_partition


def test_check_raises_a_clear_error_when_the_broker_is_unreachable() -> None:
    address = f"127.0.0.1:{free_port()}"
    backend = KafkaBackend(Settings(kafka_bootstrap_servers=address))

    with pytest.raises(LogError, match=f"cannot reach the Kafka broker at {address}"):
        backend.check(timeout=1.0)
