"""What each clock consumer process holds: database engine, log backend and one
producer, made on first use; `send` + `wait` write messages and see them acknowledged."""

from __future__ import annotations

import logging
import threading
from typing import Final

from arroyo.backends.abstract import Producer, ProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue
from arroyo.types import Topic as LogTopic
from sqlalchemy import Engine

from vigil import metrics
from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.streams.backend import LogBackend, LogError, get_backend
from vigil.streams.runner import ACK_TIMEOUT_S

log = logging.getLogger(__name__)

# A tick arrives alone, once a minute, and its tasks in a burst right after it: waiting
# VIGIL_BATCH_TIME_MS for a fuller batch would only delay detection.
CLOCK_BATCH_TIME_MS: Final = 50

Sent = list[ProducerFuture[BrokerValue[KafkaPayload]]]


class Resources:
    """A consumer process's engine, backend and producer, made on first use."""

    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self.settings = settings
        self._backend = backend
        self._own_backend = backend is None
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._producer: Producer[KafkaPayload] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings)
        return self._engine

    @property
    def backend(self) -> LogBackend:
        with self._lock:
            if self._backend is None:
                self._backend = get_backend(self.settings)
            return self._backend

    @property
    def producer(self) -> Producer[KafkaPayload]:
        backend = self.backend
        with self._lock:
            if self._producer is None:
                self._producer = backend.get_producer()
            return self._producer

    def send(self, sent: Sent, topic: str, value: bytes, key: str | None) -> None:
        payload = KafkaPayload(None if key is None else key.encode("utf-8"), value, [])
        sent.append(self.producer.produce(LogTopic(self.settings.topic(topic)), payload))

    def wait(self, sent: Sent) -> None:
        """Block until the log acknowledged everything sent; LogError otherwise (the
        batch is then retried)."""
        for future in sent:
            try:
                value = future.result(timeout=ACK_TIMEOUT_S)
            except Exception as exc:
                raise LogError(f"message was not acknowledged: {exc}") from exc
            metrics.MESSAGES_PRODUCED.labels(value.partition.topic.name).inc()
        sent.clear()

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close().result(timeout=ACK_TIMEOUT_S)
            except Exception as exc:
                log.warning("clock producer did not close cleanly", extra={"error": str(exc)})
            self._producer = None
        if self._own_backend and self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
