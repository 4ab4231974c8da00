"""The Kafka log: arroyo's Kafka consumer, and vigil's producer (`kafka_producer`),
over confluent-kafka.

Names here are the names on the broker: callers pass topics and consumer groups with
the configured prefix already applied (`settings.topic(name)`); only `ensure_topics`,
which knows vigil's topic layout, applies the prefix itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

from arroyo.backends.abstract import Consumer, Producer, ProducerFuture
from arroyo.backends.kafka import (
    KafkaConsumer,
    KafkaPayload,
    build_kafka_configuration,
    build_kafka_consumer_configuration,
)
from arroyo.types import BrokerValue, Partition, Topic
from confluent_kafka import Consumer as ConfluentConsumer
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from vigil.config import Settings
from vigil.streams import topics
from vigil.streams.backend import AckCallback, LogError, MessageTooLarge, payload_size
from vigil.streams.kafka_producer import KafkaLogProducer

log = logging.getLogger(__name__)

# librdkafka logs through this logger instead of writing to stderr on its own.
_RDKAFKA_LOG = logging.getLogger("vigil.kafka.librdkafka")

CHECK_TIMEOUT_S = 5.0
ADMIN_TIMEOUT_S = 15.0

# Room on top of `max_message_bytes` for the record framing the broker counts too.
_FRAMING_HEADROOM = 64 * 1024


class LimitedProducer(Producer[KafkaPayload]):
    """A producer that refuses, with `MessageTooLarge` and before anything is sent,
    messages over the limit (see `payload_size`); acknowledgements by future or by
    callback (`AcksByCallback`)."""

    def __init__(self, inner: KafkaLogProducer, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    def produce(
        self, destination: Topic | Partition, payload: KafkaPayload
    ) -> ProducerFuture[BrokerValue[KafkaPayload]]:
        self._check(destination, payload)
        return self._inner.produce(destination, payload)

    def produce_then(self, destination: Topic, payload: KafkaPayload, on_ack: AckCallback) -> None:
        self._check(destination, payload)
        self._inner.produce_then(destination, payload, on_ack)

    def _check(self, destination: Topic | Partition, payload: KafkaPayload) -> None:
        size = payload_size(payload)
        if size > self._limit:
            name = destination.name if isinstance(destination, Topic) else destination.topic.name
            raise MessageTooLarge(name, size, self._limit)

    def close(self) -> Future[None]:
        return self._inner.close()


class KafkaBackend:
    """`LogBackend` on any Kafka-protocol broker (`VIGIL_KAFKA_BOOTSTRAP_SERVERS`).

    Consumers start at the group's committed offsets, or at the earliest message for a
    new group, and never commit on their own: offsets move only when the consumer runner
    commits them, after the batch's database transaction. Safe to use from several
    threads (the web process checks health and reads lag from worker threads).
    """

    def __init__(self, settings: Settings) -> None:
        if not settings.kafka_bootstrap_servers:
            raise LogError("the Kafka log needs VIGIL_KAFKA_BOOTSTRAP_SERVERS")
        self._settings = settings
        self._servers = settings.kafka_bootstrap_servers
        self._lock = threading.Lock()  # guards the lazily made clients below
        self._admin: AdminClient | None = None
        self._offset_readers: dict[str, ConfluentConsumer] = {}

    # --- configuration -------------------------------------------------------------

    def _common(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self._servers,
            "client.id": "vigil",
            "logger": _RDKAFKA_LOG,
        }

    def _admin_client(self) -> AdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient(self._common())
            return self._admin

    def _unreachable(self, exc: BaseException) -> LogError:
        return LogError(
            f"cannot reach the Kafka broker at {self._servers} "
            f"(VIGIL_KAFKA_BOOTSTRAP_SERVERS): {_describe(exc)}"
        )

    # --- LogBackend ----------------------------------------------------------------

    def check(self, timeout: float = CHECK_TIMEOUT_S) -> None:
        """Raise LogError unless the broker answers a metadata request within `timeout`."""
        try:
            self._admin_client().list_topics(timeout=timeout)
        except KafkaException as exc:
            raise self._unreachable(exc) from None

    def _existing_partitions(self, timeout: float = ADMIN_TIMEOUT_S) -> dict[str, int]:
        # Ask for every topic: a metadata request naming one topic may auto-create it.
        try:
            metadata = self._admin_client().list_topics(timeout=timeout)
        except KafkaException as exc:
            raise self._unreachable(exc) from None
        return {
            name: len(meta.partitions)
            for name, meta in metadata.topics.items()
            if meta.error is None
        }

    def ensure_topics(self, consumer_names: Sequence[str] = ()) -> None:
        """Create the topics vigil needs that are missing, with the partition counts of
        `topics.layout`. Idempotent, and safe when several processes race to create.

        Existing topics keep their partition count (with a warning if it differs), except
        that `monitors-clock-tick` must have exactly one partition (ticks are totally
        ordered): LogError if it has more."""
        wanted = {
            self._settings.topic(t.name): t.partitions
            for t in topics.layout(self._settings.partitions, list(consumer_names))
        }
        existing = self._existing_partitions(CHECK_TIMEOUT_S)
        # The broker's own limit (1 MB by default) must not refuse what vigil accepts.
        config = {"max.message.bytes": str(self._settings.max_message_bytes + _FRAMING_HEADROOM)}
        missing = [
            NewTopic(name, num_partitions=count, replication_factor=-1, config=config)
            for name, count in wanted.items()
            if name not in existing
        ]
        if missing:
            futures = self._admin_client().create_topics(
                missing, operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S
            )
            for name, future in futures.items():
                try:
                    future.result()
                except KafkaException as exc:
                    if _code(exc) != KafkaError.TOPIC_ALREADY_EXISTS:  # lost a race: fine
                        raise LogError(f"cannot create topic {name!r}: {_describe(exc)}") from None
                else:
                    log.info("topic created", extra={"topic": name, "partitions": wanted[name]})
            existing = self._existing_partitions()
        for name, count in wanted.items():
            have = existing.get(name)
            if have is not None and have != count:
                log.warning(
                    "topic exists with another partition count; keeping it",
                    extra={"topic": name, "partitions": have, "configured": count},
                )
        tick = self._settings.topic(topics.Topic.MONITORS_CLOCK_TICK)
        tick_partitions = existing.get(tick)
        if tick_partitions is not None and tick_partitions != 1:
            raise LogError(
                f"topic {tick!r} has {tick_partitions} partitions but must have exactly 1: "
                "clock ticks must be totally ordered. Delete it and let vigil recreate it, "
                "or use another VIGIL_TOPIC_PREFIX"
            )

    def get_producer(self) -> Producer[KafkaPayload]:
        """A producer that refuses messages over `max_message_bytes` with MessageTooLarge,
        before sending. Messages with the same key go to the same partition, in the order
        produced (an idempotent producer: retries never reorder)."""
        self.check()
        config = build_kafka_configuration(
            self._common(),
            override_params={
                "enable.idempotence": True,
                "message.max.bytes": self._settings.max_message_bytes + _FRAMING_HEADROOM,
            },
        )
        return LimitedProducer(KafkaLogProducer(config), self._settings.max_message_bytes)

    def get_consumer(self, group: str) -> Consumer[KafkaPayload]:
        """A consumer in `group`: starts at the group's committed offsets (earliest
        message for a new group); commits only when told to."""
        self.check()
        config = build_kafka_consumer_configuration(
            self._common(),
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            override_params={
                "session.timeout.ms": self._settings.kafka_session_timeout_ms,
                "heartbeat.interval.ms": max(self._settings.kafka_session_timeout_ms // 3, 100),
                "fetch.message.max.bytes": self._settings.max_message_bytes + _FRAMING_HEADROOM,
            },
        )
        # arroyo turns on librdkafka statistics for its own metrics, which vigil does not
        # collect; skip the per-second callback.
        config.pop("stats_cb", None)
        config["statistics.interval.ms"] = 0
        return KafkaConsumer(config)

    def partition_count(self, topic: str) -> int:
        count = self._existing_partitions().get(topic)
        if count is None:
            raise LogError(f"topic {topic!r} does not exist on {self._servers}")
        return count

    def lag(self, group: str, topic: str) -> Mapping[int, int]:
        """Messages of `topic` not yet committed by `group`, per partition: the high
        watermark minus the committed offset (minus the low watermark if the group has
        committed nothing). Reads offsets only; never joins the group."""
        count = self.partition_count(topic)
        reader = self._offset_reader(group)
        partitions = [TopicPartition(topic, i) for i in range(count)]
        try:
            committed = reader.committed(partitions, timeout=ADMIN_TIMEOUT_S)
            result: dict[int, int] = {}
            for tp in committed:
                low, high = reader.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=ADMIN_TIMEOUT_S
                )
                start = tp.offset if tp.offset >= 0 else low
                result[tp.partition] = max(high - start, 0)
        except KafkaException as exc:
            raise LogError(
                f"cannot read offsets of group {group!r} on topic {topic!r}: {_describe(exc)}"
            ) from None
        return result

    def _offset_reader(self, group: str) -> ConfluentConsumer:
        # A consumer that is never subscribed: it only asks the group coordinator for
        # committed offsets, so reading lag does not disturb the group.
        with self._lock:
            reader = self._offset_readers.get(group)
            if reader is None:
                reader = ConfluentConsumer(
                    {**self._common(), "group.id": group, "enable.auto.commit": False}
                )
                self._offset_readers[group] = reader
            return reader

    def close(self) -> None:
        with self._lock:
            readers = list(self._offset_readers.values())
            self._offset_readers.clear()
            self._admin = None
        for reader in readers:
            reader.close()


def _code(exc: KafkaException) -> int | None:
    err = exc.args[0] if exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


def _describe(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    if isinstance(err, KafkaError):
        return str(err.str())
    return str(exc)
