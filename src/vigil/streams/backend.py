"""The one place that knows the embedded log from Kafka.

Everything else asks for a `LogBackend` and gets arroyo consumers and producers of
`KafkaPayload` (key, value, headers), whichever log is underneath.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from arroyo.backends.abstract import Consumer, Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Topic

from vigil.config import Settings


class LogError(Exception):
    """The log cannot be used (unreachable broker, corrupt or foreign log file, ...)."""


class MessageTooLarge(LogError):
    """A message over the configured size limit; refused before it is written."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(
            f"message of {size} bytes for topic {topic!r} exceeds the limit of {limit} bytes "
            "(VIGIL_MAX_MESSAGE_BYTES)"
        )
        self.topic = topic
        self.size = size
        self.limit = limit


def payload_size(payload: KafkaPayload) -> int:
    """What `max_message_bytes` limits: key, value, and header names and values (the
    same count as the embedded log's, so a message fits both logs or neither)."""
    size = len(payload.value) + (len(payload.key) if payload.key else 0)
    return size + sum(len(name.encode("utf-8")) + len(value) for name, value in payload.headers)


# Called with None once the log acknowledged a message, or with why it failed.
AckCallback = Callable[[BaseException | None], None]


@runtime_checkable
class AcksByCallback(Protocol):
    """A producer that can report acknowledgements by callback rather than by future
    (Kafka's; the embedded log's futures wait on their batch's commit instead)."""

    def produce_then(
        self,
        destination: Topic,
        payload: KafkaPayload,
        on_ack: AckCallback,
    ) -> None:
        """Produce; later, on the producer's thread, `on_ack(None)` once the log
        acknowledged the message or `on_ack(error)` if it failed."""


class LogBackend(Protocol):
    def ensure_topics(self, consumer_names: Sequence[str] = ()) -> None:
        """Create missing topics (and the dead-letter topics of these consumers)."""

    def get_producer(self) -> Producer[KafkaPayload]:
        """A producer that refuses messages over `max_message_bytes` with MessageTooLarge."""

    def get_consumer(self, group: str) -> Consumer[KafkaPayload]:
        """A consumer in `group`, starting from the group's committed offsets, or the
        earliest message for a new group."""

    def partition_count(self, topic: str) -> int: ...

    def lag(self, group: str, topic: str) -> Mapping[int, int]:
        """Messages not yet committed by `group`, per partition of `topic`."""

    def check(self) -> None:
        """Raise LogError if the log is not usable (for health checks)."""

    def close(self) -> None: ...


def get_backend(settings: Settings) -> LogBackend:
    if settings.uses_kafka:
        from vigil.streams.kafka import KafkaBackend

        return KafkaBackend(settings)
    from vigil.streams.embedded.backend import EmbeddedBackend

    return EmbeddedBackend(settings)
