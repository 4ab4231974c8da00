"""The web process's writers to the log: one `LogWriter` per topic it writes
(`ingest-monitors` for check-ins, `ingest-occurrences` for the occurrences endpoint).

`write` returns only once the log acknowledged every message, so an answer of 2xx means
what was accepted is durable. It raises `MessageTooLarge` for a message over the limit
(before anything of it is written) and `LogError` when the log cannot take it, which the
endpoint answers with 413 and 503.

One producer serves the process. It is made at start (after creating any missing topic)
when the log is reachable, else on first use; after a failure to make one, requests fail
fast for `RETRY_AFTER_S` instead of each waiting on an unreachable log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload

from vigil.config import Settings
from vigil.streams.backend import LogBackend, LogError
from vigil.streams.runner import produce
from vigil.streams.topics import Topic

log = logging.getLogger(__name__)

# Clients wait up to 30 s (sentry-sdk) and sentry-cli blocks the job meanwhile: answer
# 503 well before that rather than keep them waiting on a log that is down.
ACK_TIMEOUT_S = 10.0
RETRY_AFTER_S = 1.0
CLOSE_TIMEOUT_S = 10.0


class LogWrite(Protocol):
    """One message to write: its key and encoded value."""

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True)
class KeyedValue:
    key: bytes | None
    value: bytes


class LogWriter:
    def __init__(
        self,
        backend: LogBackend,
        settings: Settings,
        topic: Topic,
        *,
        ack_timeout_s: float = ACK_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self._topic = topic
        self._ack_timeout_s = ack_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._producer: Producer[KafkaPayload] | None = None
        self._failed_at: float | None = None
        self._failure = ""

    def open(self) -> None:
        """Make the producer now if the log is reachable; log a warning if not (the
        process still serves, and ingest answers 503 until the log is back)."""
        try:
            self._get_producer()
        except LogError as exc:
            log.warning(
                "the log is not reachable yet; ingest answers 503", extra={"error": str(exc)}
            )

    def _get_producer(self) -> Producer[KafkaPayload]:
        with self._lock:
            if self._producer is not None:
                return self._producer
            now = self._clock()
            if self._failed_at is not None and now - self._failed_at < RETRY_AFTER_S:
                raise LogError(self._failure)
            try:
                # Fail fast when the log is unreachable; then, since `vigil web` may run
                # alone on a fresh install, make sure the topics exist.
                self._backend.check()
                self._backend.ensure_topics()
                self._producer = self._backend.get_producer()
            except LogError as exc:
                self._failed_at, self._failure = now, str(exc)
                raise
            self._failed_at = None
            return self._producer

    def write(self, writes: Sequence[LogWrite]) -> None:
        """Write the messages in order and wait for the log's acknowledgement of each."""
        producer = self._get_producer()
        for item in writes:
            produce(
                producer,
                self._settings,
                self._topic,
                item.value,
                item.key,
                timeout=self._ack_timeout_s,
            )

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close().result(timeout=CLOSE_TIMEOUT_S)
            except Exception as exc:  # closing at shutdown: report, do not mask the exit
                log.warning("closing the log producer failed", extra={"error": str(exc)})
