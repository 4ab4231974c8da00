"""vigil's Kafka producer: arroyo's `Producer` interface over confluent-kafka, and a
leaner way to learn of acknowledgements for the web process's ingest path.

`produce` returns a future, as arroyo's own Kafka producer does. `produce_then` takes a
callback instead: at thousands of check-ins a second, making a future per message (a
condition variable and its lock), the result object it carries and the handoff to a
thread that waits on it were about a quarter of the CPU the web process spent writing a
check-in to Kafka (BENCHMARKS.md, issue 4, thirteenth round).

Delivery callbacks, of both kinds, run on the producer's polling thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Partition, Topic
from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, KafkaException, Message
from confluent_kafka import Producer as ConfluentProducer

from vigil.streams.backend import AckCallback, LogError

log = logging.getLogger(__name__)

# How long one poll waits for delivery reports: also how long `close` may take to notice.
POLL_S = 0.1

_Delivery = Callable[[KafkaError | None, Message], None]


class KafkaLogProducer(Producer[KafkaPayload]):
    def __init__(self, configuration: Mapping[str, Any]) -> None:
        self._producer = ConfluentProducer(dict(configuration))
        self._closing = threading.Event()
        self._closed: Future[None] = Future()
        self._poller = threading.Thread(target=self._poll, name="vigil-kafka-acks", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        try:
            while not self._closing.is_set():
                self._producer.poll(POLL_S)
            self._producer.flush()  # what is in flight is delivered, or fails, first
        except BaseException as exc:
            if not self._closing.is_set():
                log.exception("the Kafka producer stopped; nothing more is acknowledged")
            self._closed.set_exception(exc)
        else:
            self._closed.set_result(None)

    def _send(self, destination: Topic | Partition, payload: KafkaPayload, done: _Delivery) -> None:
        if self._closing.is_set():
            raise RuntimeError("producer has been closed")
        if self._closed.done():  # its polling thread died: nothing would be acknowledged
            raise LogError(f"the Kafka producer stopped: {self._closed.exception()}")
        options: dict[str, Any] = {"on_delivery": done}
        if payload.headers:
            options["headers"] = list(payload.headers)
        if isinstance(destination, Partition):
            options["partition"] = destination.index
            destination = destination.topic
        self._producer.produce(destination.name, payload.value, payload.key, **options)

    def produce(
        self, destination: Topic | Partition, payload: KafkaPayload
    ) -> Future[BrokerValue[KafkaPayload]]:
        future: Future[BrokerValue[KafkaPayload]] = Future()
        future.set_running_or_notify_cancel()

        def delivered(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                future.set_exception(KafkaException(error))
                return
            partition = Partition(Topic(message.topic() or ""), message.partition() or 0)
            future.set_result(
                BrokerValue(payload, partition, message.offset() or 0, _timestamp(message))
            )

        self._send(destination, payload, delivered)
        return future

    def produce_then(self, destination: Topic, payload: KafkaPayload, on_ack: AckCallback) -> None:
        """Produce `payload`; `on_ack(None)` once the broker acknowledged it, or
        `on_ack(error)` once it failed, on the polling thread (it must not block, and
        what it raises is logged and dropped)."""

        def delivered(error: KafkaError | None, _message: Message) -> None:
            try:
                on_ack(None if error is None else KafkaException(error))
            except Exception:
                log.exception("an acknowledgement callback failed")

        self._send(destination, payload, delivered)

    def close(self) -> Future[None]:
        """Stop once everything produced is delivered or failed (the future says when)."""
        self._closing.set()
        return self._closed


def _timestamp(message: Message) -> datetime:
    # Naive UTC, as arroyo's consumers give broker timestamps.
    kind, millis = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return datetime.now(UTC).replace(tzinfo=None)
    return datetime.fromtimestamp(millis / 1000, UTC).replace(tzinfo=None)
