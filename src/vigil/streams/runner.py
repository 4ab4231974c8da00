"""How one named consumer runs: decode, batch, apply, then commit.

The pipeline is an arroyo `StreamProcessor` with three steps:

    decode each message  ->  batch (VIGIL_BATCH_SIZE / VIGIL_BATCH_TIME_MS)  ->  apply + commit

A batch is applied on a thread of its own (`apply_thread.ApplyInThread`), one batch at
a time and in order, while the consumer's thread reads and decodes the next one.

Promises, for every consumer:

- **At-least-once in, effectively-once out.** Offsets are committed only after `apply`
  returned for the whole batch, i.e. after the batch's database transaction(s). A crash
  at any point re-delivers at most the uncommitted batch; `apply` is idempotent.
- **Bad input never stops the consumer.** A message `decode` rejects goes to the
  consumer's dead-letter topic with the reason, and the consumer goes on. If `apply`
  fails for a reason other than a passing database outage, the batch's messages are
  applied one at a time and those that still fail are dead-lettered, with the exception
  as the reason; the others are applied. A dead-lettered message is acknowledged by the
  log before the offset past it is committed, so nothing is lost and no poison message
  can cause a crash loop.
- **A database or log outage is waited out.** Connection losses, lock timeouts,
  serialization conflicts, and a log that does not acknowledge what `apply` produces
  are retried with back-off, for as long as they last.
- **Graceful stop.** SIGTERM / SIGINT (or the `stop` event) finish the current batch,
  commit, close, and `run_consumer` returns normally.

Why not arroyo's own dead-letter path (`InvalidMessage` + `DlqPolicy`)? Behind a batching
step it commits the rejected message's offset as soon as the rejection passes the batch,
before the valid messages batched ahead of it are applied; a crash then would lose them.
Here the dead-lettering happens in the apply step, so the batch's single commit covers
both the applied and the dead-lettered messages.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from types import FrameType
from typing import Any, Generic, TypeVar

from arroyo.backends.abstract import Consumer, Producer, ProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.commit import IMMEDIATE
from arroyo.processing.processor import StreamProcessor
from arroyo.processing.strategies import (
    BatchStep,
    CommitOffsets,
    ProcessingStrategy,
    ProcessingStrategyFactory,
    RunTask,
)
from arroyo.processing.strategies.batching import ValuesBatch
from arroyo.types import BrokerValue, Commit, Message, Partition, Topic

from vigil import metrics
from vigil.config import Settings
from vigil.db.engine import is_transient
from vigil.streams.apply_thread import ApplyInThread
from vigil.streams.backend import LogBackend, LogError, MessageTooLarge, get_backend
from vigil.streams.codecs import CodecError
from vigil.streams.topics import dlq_topic

log = logging.getLogger(__name__)

T = TypeVar("T")

# Back-off between retries of a batch that met a passing database error.
RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 10.0
# How long to wait for the log to acknowledge a dead-lettered or produced message.
ACK_TIMEOUT_S = 30.0
# Dead-letter reasons are for people; keep them to a readable length.
MAX_REASON_CHARS = 1000
# Room for the dead-letter headers (the reason at most 4 bytes a character, the rest
# short) on top of the size limit the original message met.
DEAD_LETTER_HEADROOM_BYTES = 8 * 1024


@dataclass(frozen=True)
class ConsumerDefinition(Generic[T]):
    """One named consumer.

    - `name`: the consumer group, and the stem of the dead-letter topic
      (`topics.dlq_topic(name)`);
    - `topic`: the logical topic it reads (without the configured prefix);
    - `decode`: bytes on the wire to a typed value; raises `CodecError` for bad input
      (any exception sends the message to the dead-letter topic);
    - `apply`: applies a batch, in log order, in its own database transaction(s). It must
      be idempotent: after a crash a batch may be applied again. It may return the
      messages it rejected (`Rejected`, by position in the batch): those are
      dead-lettered with their reason and the rest of the batch counts as applied.
    - `max_batch_time_ms`: how long a batch may wait to fill, when this consumer needs
      less than `VIGIL_BATCH_TIME_MS` (the crons clock's consumers: a tick must not wait
      a second for company that will not come); None for the setting.
    - `min_batch_size`: the fewest messages a batch may hold before it is applied (when
      they are there to take), when this consumer needs more than `VIGIL_BATCH_SIZE`
      (the clock-tasks consumer: a burst of misses is applied in fewer, larger batches,
      each flushing its occurrences once); None for the setting.
    """

    name: str
    topic: str
    decode: Callable[[KafkaPayload], T]
    apply: Callable[[Sequence[Message[T]]], Sequence[Rejected] | None]
    max_batch_time_ms: int | None = None
    min_batch_size: int | None = None


@dataclass(frozen=True)
class Rejected:
    """A message `apply` did not apply and wants dead-lettered: its position in the
    batch it was given, and why."""

    index: int
    reason: str


class RetryLater(Exception):
    """Raised by `apply` that cannot apply its batch yet and has written nothing of it
    (e.g. it waits for a decision another consumer makes): the runner retries the batch
    with back-off, stop-aware, as it waits out an outage; nothing is dead-lettered."""


class StopRequested(Exception):
    """Stop was requested while a batch waited out a database outage: the batch is
    abandoned uncommitted (it will be delivered again)."""


# --- the stop signal -------------------------------------------------------------------


class _Stop:
    """Set from a signal handler, an external event, or both. The handler only flips a
    flag: `Event.set` takes a non-reentrant lock, which the interrupted main thread may
    be holding, so calling it from a signal handler could deadlock."""

    def __init__(self, external: threading.Event | None) -> None:
        self.external = external
        self.signalled = False

    def is_set(self) -> bool:
        return self.signalled or (self.external is not None and self.external.is_set())

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; return True (early) if stop was requested."""
        deadline = time.monotonic() + seconds
        while not self.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(remaining, 0.1))
        return True


@contextmanager
def _stop_triggers(stop: _Stop, shutdown: Callable[[], None]) -> Iterator[None]:
    """Call `shutdown` on SIGTERM / SIGINT (when running in the main thread) and when the
    external stop event is set."""
    done = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.signalled = True
        shutdown()

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_signal)

    watcher = None
    if stop.external is not None:
        external = stop.external

        def watch() -> None:
            while not done.is_set():
                if external.wait(0.2):
                    shutdown()
                    return

        watcher = threading.Thread(target=watch, name="vigil-consumer-stop", daemon=True)
        watcher.start()
    try:
        yield
    finally:
        done.set()
        for restored, handler in previous.items():
            signal.signal(restored, handler)
        if watcher is not None:
            watcher.join()


# --- transient errors ------------------------------------------------------------------


def _is_outage(exc: BaseException) -> bool:
    """A passing outage of what `apply` writes to: the database, or the log it produces
    to (e.g. a flush of the outbox). Dead-lettering would not help — the dead-letter
    topic is on the same log — and would re-apply messages whose writes committed.
    A message over the size limit is no outage: it is refused the same way every time."""
    if isinstance(exc, RetryLater):
        return True
    if isinstance(exc, LogError):
        return not isinstance(exc, MessageTooLarge)
    return is_transient(exc)


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


# --- dead letters ----------------------------------------------------------------------


class DeadLetters:
    """Writes the messages a consumer could not process to its dead-letter topic.

    The copy keeps the original key, value and headers, and adds headers `reason`,
    `consumer`, `original_topic`, `original_partition` and `original_offset`."""

    def __init__(self, producer: Producer[KafkaPayload], topic: Topic, consumer: str) -> None:
        self._producer = producer
        self._topic = topic
        self._consumer = consumer

    def produce(
        self, value: BrokerValue[KafkaPayload], reason: str
    ) -> ProducerFuture[BrokerValue[KafkaPayload]]:
        original = value.payload
        headers = [
            *original.headers,
            ("reason", reason.encode("utf-8")),
            ("consumer", self._consumer.encode("utf-8")),
            ("original_topic", value.partition.topic.name.encode("utf-8")),
            ("original_partition", str(value.partition.index).encode("ascii")),
            ("original_offset", str(value.offset).encode("ascii")),
        ]
        future = self._producer.produce(
            self._topic, KafkaPayload(original.key, original.value, headers)
        )
        metrics.DEAD_LETTERED.labels(self._consumer).inc()
        log.warning(
            "message dead-lettered",
            extra={
                "consumer": self._consumer,
                "topic": value.partition.topic.name,
                "partition": value.partition.index,
                "offset": value.offset,
                "reason": reason,
            },
        )
        return future

    def wait(self, futures: Sequence[ProducerFuture[BrokerValue[KafkaPayload]]]) -> None:
        """Block until the log acknowledged every dead-lettered copy; LogError if one
        could not be written (the batch is then not committed)."""
        for future in futures:
            try:
                future.result(timeout=ACK_TIMEOUT_S)
            except Exception as exc:
                raise LogError(
                    f"cannot write to dead-letter topic {self._topic.name!r}: {exc}"
                ) from exc


# --- the steps -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Decoded(Generic[T]):
    raw: KafkaPayload  # kept to dead-letter the original should `apply` reject it
    value: T


@dataclass(frozen=True, slots=True)
class _Undecodable:
    raw: KafkaPayload
    reason: str


_Item = _Decoded[T] | _Undecodable


class _Decode(Generic[T]):
    """Decode step. Never raises for bad input: the rejection travels with the message
    so that it is dead-lettered, and its offset committed, in order with its batch."""

    def __init__(self, definition: ConsumerDefinition[T]) -> None:
        self._definition = definition
        self._consumed = metrics.MESSAGES_CONSUMED.labels(definition.name)

    def __call__(self, message: Message[KafkaPayload]) -> _Item[T]:
        self._consumed.inc()
        payload = message.payload
        try:
            return _Decoded(payload, self._definition.decode(payload))
        except CodecError as exc:
            return _Undecodable(payload, _reason(exc))
        except Exception as exc:
            # A bug in the codec rather than bad input; still never a reason to stop.
            log.exception("decode failed unexpectedly", extra={"consumer": self._definition.name})
            return _Undecodable(payload, _reason(exc))


class _ApplyBatch(Generic[T]):
    """Apply step: dead-letters the undecodable messages, applies the others, and only
    returns (letting the batch's offsets be committed) when all of it is done."""

    def __init__(
        self, definition: ConsumerDefinition[T], dead_letters: DeadLetters, stop: _Stop
    ) -> None:
        self._definition = definition
        self._dead_letters = dead_letters
        self._stop = stop
        self._duration = metrics.BATCH_DURATION.labels(definition.name)
        self._errors = metrics.CONSUMER_ERRORS.labels(definition.name)

    def __call__(self, batch: Message[ValuesBatch[_Item[T]]]) -> None:
        started = time.monotonic()
        pending: list[ProducerFuture[BrokerValue[KafkaPayload]]] = []
        good: list[Message[T]] = []
        originals: list[BrokerValue[KafkaPayload]] = []
        for value in batch.payload:
            # BatchStep keeps the broker values it is given, so each element still knows
            # its partition, offset and timestamp.
            assert isinstance(value, BrokerValue)
            item = value.payload
            original = BrokerValue(item.raw, value.partition, value.offset, value.timestamp)
            if isinstance(item, _Undecodable):
                pending.append(self._dead_letters.produce(original, item.reason))
            else:
                good.append(Message(value.replace(item.value)))
                originals.append(original)
        if good:
            pending.extend(self._apply(good, originals))
        self._dead_letters.wait(pending)
        seconds = time.monotonic() - started
        self._duration.observe(seconds)
        log.debug(
            "batch applied",
            extra={
                "consumer": self._definition.name,
                "messages": len(batch.payload),
                "dead_lettered": len(pending),
                "seconds": round(seconds, 4),
            },
        )

    def _apply(
        self, good: list[Message[T]], originals: list[BrokerValue[KafkaPayload]]
    ) -> list[ProducerFuture[BrokerValue[KafkaPayload]]]:
        """Apply the batch; if that fails, apply its messages one at a time and
        dead-letter those that fail. Returns the dead-letter acknowledgements to await."""
        try:
            rejected = self._apply_with_retries(good)
            return [self._reject(originals[r.index], r.reason) for r in rejected]
        except StopRequested:
            raise
        except Exception as exc:
            self._errors.inc()
            log.warning(
                "apply failed",
                exc_info=True,
                extra={"consumer": self._definition.name, "messages": len(good)},
            )
            if len(good) == 1:
                return [self._dead_letters.produce(originals[0], _reason(exc))]
        # One at a time, in log order (so that order per key still holds), to find the
        # messages that fail and apply the others.
        pending = []
        for message, original in zip(good, originals, strict=True):
            try:
                rejected = self._apply_with_retries([message])
            except StopRequested:
                raise
            except Exception as exc:
                self._errors.inc()
                pending.append(self._dead_letters.produce(original, _reason(exc)))
            else:
                pending.extend(self._reject(original, r.reason) for r in rejected)
        return pending

    def _reject(
        self, original: BrokerValue[KafkaPayload], reason: str
    ) -> ProducerFuture[BrokerValue[KafkaPayload]]:
        reason = reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 1] + "…"
        return self._dead_letters.produce(original, reason)

    def _apply_with_retries(self, messages: Sequence[Message[T]]) -> Sequence[Rejected]:
        """`apply`, retried with back-off for as long as the database or the log is
        unavailable; returns what it rejected. Any other error is raised at once."""
        delay = RETRY_FIRST_DELAY_S
        attempt = 0
        while True:
            try:
                return self._definition.apply(messages) or ()
            except Exception as exc:
                if not _is_outage(exc):
                    raise
                attempt += 1
                self._errors.inc()
                log.warning(
                    "batch not applied yet (database or log unavailable, or asked to wait); "
                    "retrying",
                    extra={
                        "consumer": self._definition.name,
                        "messages": len(messages),
                        "attempt": attempt,
                        "retry_in_s": delay,
                        "error": _reason(exc),
                    },
                )
                if self._stop.sleep(delay):
                    raise StopRequested from exc
                delay = min(delay * 2, RETRY_MAX_DELAY_S)


class _PromptPoll(Consumer[KafkaPayload]):
    """A consumer whose `poll` waits at most `max_wait_s`. arroyo's run loop polls with
    a fixed one-second timeout and only closes a batch by time after a poll returns, so a
    lone message would otherwise wait up to a second past a short batch time."""

    def __init__(self, inner: Consumer[KafkaPayload], max_wait_s: float) -> None:
        self._inner = inner
        self._max_wait_s = max_wait_s

    def subscribe(
        self,
        topics: Sequence[Topic],
        on_assign: Callable[[Mapping[Partition, int]], None] | None = None,
        on_revoke: Callable[[Sequence[Partition]], None] | None = None,
    ) -> None:
        self._inner.subscribe(topics, on_assign, on_revoke)

    def unsubscribe(self) -> None:
        self._inner.unsubscribe()

    def poll(self, timeout: float | None = None) -> BrokerValue[KafkaPayload] | None:
        wait = self._max_wait_s if timeout is None else min(timeout, self._max_wait_s)
        return self._inner.poll(wait)

    def pause(self, partitions: Sequence[Partition]) -> None:
        self._inner.pause(partitions)

    def resume(self, partitions: Sequence[Partition]) -> None:
        self._inner.resume(partitions)

    def paused(self) -> Sequence[Partition]:
        return self._inner.paused()

    def tell(self) -> Mapping[Partition, int]:
        return self._inner.tell()

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        self._inner.seek(offsets)

    def stage_offsets(self, offsets: Mapping[Partition, int]) -> None:
        self._inner.stage_offsets(offsets)

    def commit_offsets(self) -> Mapping[Partition, int] | None:
        return self._inner.commit_offsets()

    def close(self, timeout: float | None = None) -> None:
        self._inner.close(timeout)

    @property
    def closed(self) -> bool:
        return self._inner.closed

    @property
    def member_id(self) -> str:
        return self._inner.member_id


def _batch_size(definition: ConsumerDefinition[Any], settings: Settings) -> int:
    if definition.min_batch_size is None:
        return settings.batch_size
    return max(definition.min_batch_size, settings.batch_size)


def _batch_time_ms(definition: ConsumerDefinition[Any], settings: Settings) -> int:
    if definition.max_batch_time_ms is None:
        return settings.batch_time_ms
    return min(definition.max_batch_time_ms, settings.batch_time_ms)


class _StrategyFactory(ProcessingStrategyFactory[KafkaPayload], Generic[T]):
    def __init__(
        self,
        definition: ConsumerDefinition[T],
        settings: Settings,
        dead_letters: DeadLetters,
        stop: _Stop,
    ) -> None:
        self._definition = definition
        self._settings = settings
        self._dead_letters = dead_letters
        self._stop = stop

    def create_with_partitions(
        self, commit: Commit, partitions: Mapping[Partition, int]
    ) -> ProcessingStrategy[KafkaPayload]:
        apply: ApplyInThread[ValuesBatch[_Item[T]], None] = ApplyInThread(
            _ApplyBatch(self._definition, self._dead_letters, self._stop),
            CommitOffsets(commit),
            thread_name=f"vigil-{self._definition.name}",
        )
        batch: BatchStep[_Item[T]] = BatchStep(
            max_batch_size=_batch_size(self._definition, self._settings),
            max_batch_time=_batch_time_ms(self._definition, self._settings) / 1000,
            next_step=apply,
        )
        return RunTask(_Decode(self._definition), batch)


# --- running ---------------------------------------------------------------------------


def run_consumer(
    definition: ConsumerDefinition[Any],
    settings: Settings,
    *,
    backend: LogBackend | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run `definition` until SIGTERM / SIGINT (main thread only) or until `stop` is set,
    then finish the current batch, commit, close and return.

    Makes sure the consumer's topic and dead-letter topic exist first. The consumer
    group is `settings.topic(definition.name)` (prefixed, so installs sharing a cluster
    keep their offsets apart). `backend` is the log to consume from (default:
    `get_backend(settings)`; one passed in is left open).

    Raises LogError if the log cannot be used; any other exception from the log or from
    writing dead letters ends the run with the batch in flight uncommitted, so a
    supervisor restarting it loses nothing.
    """
    topic = settings.topic(definition.topic)
    group = settings.topic(definition.name)
    fields = {"consumer": definition.name, "topic": topic, "group": group}
    stopper = _Stop(stop)
    processor: StreamProcessor[KafkaPayload] | None = None

    def shutdown() -> None:
        # arroyo only sets a flag here, which the run loop reads between batches.
        if processor is not None:
            processor.signal_shutdown()

    with ExitStack() as resources:
        # Catch the signals from the start, so that a stop during start-up is graceful.
        resources.enter_context(_stop_triggers(stopper, shutdown))
        log_backend = backend
        if log_backend is None:
            log_backend = get_backend(settings)
            resources.callback(log_backend.close)
        log_backend.ensure_topics([definition.name])
        # Dead letters get a producer of their own, whose size limit leaves room for the
        # headers they add: a message that fit its topic always fits the dead-letter topic.
        dlq_backend = get_backend(
            replace(
                settings,
                max_message_bytes=settings.max_message_bytes + DEAD_LETTER_HEADROOM_BYTES,
            )
        )
        resources.callback(dlq_backend.close)
        producer = dlq_backend.get_producer()
        resources.callback(_close_producer, producer, fields)
        dead_letters = DeadLetters(
            producer, Topic(settings.topic(dlq_topic(definition.name))), definition.name
        )
        consumer = log_backend.get_consumer(group)
        if definition.max_batch_time_ms is not None:
            consumer = _PromptPoll(consumer, _batch_time_ms(definition, settings) / 1000)
        try:
            processor = StreamProcessor(
                consumer,
                Topic(topic),
                _StrategyFactory(definition, settings, dead_letters, stopper),
                # Commit as soon as each batch is applied: a restart re-delivers at most
                # the batch that was in flight.
                commit_policy=IMMEDIATE,
            )
        except BaseException:
            consumer.close()
            raise
        if stopper.is_set():  # requested while starting
            processor.signal_shutdown()
        log.info(
            "consumer started",
            extra={
                **fields,
                "batch_size": _batch_size(definition, settings),
                "batch_time_ms": _batch_time_ms(definition, settings),
            },
        )
        try:
            processor.run()  # closes the consumer when it returns or raises
        except StopRequested:
            log.warning(
                "stopped while waiting for the database; the batch in flight was not "
                "committed and will be delivered again",
                extra=fields,
            )
    log.info("consumer stopped", extra=fields)


def _close_producer(producer: Producer[KafkaPayload], fields: Mapping[str, str]) -> None:
    # Everything this producer wrote was awaited before its batch committed; a failure
    # to close must not hide the reason the run ended.
    try:
        producer.close().result(timeout=ACK_TIMEOUT_S)
    except Exception as exc:
        log.warning(
            "dead-letter producer did not close cleanly", extra={**fields, "error": _reason(exc)}
        )


def produce(
    target: LogBackend | Producer[KafkaPayload],
    settings: Settings,
    topic: str,
    value: bytes,
    key: bytes | str | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
    *,
    timeout: float = ACK_TIMEOUT_S,
) -> BrokerValue[KafkaPayload]:
    """Produce one message to the logical `topic` and wait until the log acknowledged it.

    `target` is a producer (reuse one for many messages) or a backend (a producer is
    made for this message and closed). Raises MessageTooLarge, before anything is sent,
    for a message over the limit, and LogError if it is not acknowledged in `timeout`.
    """
    if isinstance(key, str):
        key = key.encode("utf-8")
    payload = KafkaPayload(key, value, list(headers))
    destination = Topic(settings.topic(topic))
    if isinstance(target, Producer):
        return _produce_and_wait(target, destination, payload, timeout)
    producer = target.get_producer()
    try:
        return _produce_and_wait(producer, destination, payload, timeout)
    finally:
        producer.close().result(timeout=timeout)


def _produce_and_wait(
    producer: Producer[KafkaPayload], destination: Topic, payload: KafkaPayload, timeout: float
) -> BrokerValue[KafkaPayload]:
    future = producer.produce(destination, payload)
    try:
        result = future.result(timeout=timeout)
    except TimeoutError:
        raise LogError(
            f"message to {destination.name!r} was not acknowledged within {timeout:g} s"
        ) from None
    except Exception as exc:
        raise LogError(f"message to {destination.name!r} was not acknowledged: {exc}") from exc
    metrics.MESSAGES_PRODUCED.labels(destination.name).inc()
    return result
