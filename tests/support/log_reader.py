"""Reading a topic back from the log, with a consumer from the backend."""

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
