"""Reading a topic back from the log: with a consumer from the backend, or (`read_topic`)
without joining a consumer group on Kafka; and a message's headers."""

from __future__ import annotations

import time
import uuid

from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic

from vigil.config import Settings
from vigil.streams.backend import LogBackend

READ_TIMEOUT_S = 120.0


def read_messages(
    settings: Settings, backend: LogBackend, logical_topic: str, expect: int
) -> list[KafkaPayload]:
    """The first `expect` messages of the topic (in a new consumer group), in the order
    of each partition; fails if fewer arrive within READ_TIMEOUT_S."""
    name = settings.topic(logical_topic)
    consumer = backend.get_consumer(settings.topic(f"reader-{uuid.uuid4().hex[:12]}"))
    consumer.subscribe([Topic(name)])
    found: list[KafkaPayload] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    try:
        while len(found) < expect and time.monotonic() < deadline:
            value = consumer.poll(0.2)
            if value is not None:
                found.append(value.payload)
    finally:
        consumer.close()
    assert len(found) == expect, f"{name}: found {len(found)} of {expect} messages"
    return found


def read_topic(
    settings: Settings, backend: LogBackend, logical: str, expect: int
) -> list[KafkaPayload]:
    """The first `expect` messages of a topic, without joining a group on Kafka (there,
    each partition read from its beginning); elsewhere as `read_messages` reads them."""
    if not settings.uses_kafka:
        return read_messages(settings, backend, logical, expect)
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition
    from confluent_kafka import Consumer as ConfluentConsumer

    name = settings.topic(logical)
    found: list[KafkaPayload] = []
    deadline = time.monotonic() + READ_TIMEOUT_S
    reader = ConfluentConsumer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "group.id": "reader"}
    )
    count = backend.partition_count(name)
    reader.assign([TopicPartition(name, i, OFFSET_BEGINNING) for i in range(count)])
    try:
        while len(found) < expect and time.monotonic() < deadline:
            msg = reader.poll(0.2)
            if msg is not None and msg.error() is None:
                headers = list(msg.headers() or [])
                found.append(KafkaPayload(msg.key(), msg.value() or b"", headers))
    finally:
        reader.close()
    assert len(found) == expect, f"{name}: found {len(found)} of {expect} messages"
    return found


def headers_of(payload: KafkaPayload) -> dict[str, str]:
    return {k: v.decode() for k, v in payload.headers}
