"""The web process's writers to the log: one `LogWriter` per topic it writes
(`ingest-monitors` for check-ins, `ingest-occurrences` for the occurrences endpoint).

`write` returns only once the log acknowledged every message, so an answer of 2xx means
what was accepted is durable. It raises `WriteTooLarge` (a `MessageTooLarge`) when any
message of the write is over the limit, before any of them is produced, so a write is
never refused after part of it was written; and `LogError` when the log cannot take it.
The endpoints answer these with 413 and 503 (`write_for_client` does it for them).
`check_sizes` is that size check on its own, for an endpoint that refuses before doing
anything else (counting a quota).

One producer serves the process. It is made at start (after creating any missing topic)
when the log is reachable, else on first use; after a failure to make one, requests fail
fast for `RETRY_AFTER_S` instead of each waiting on an unreachable log.

`write_async` is `write` for the event loop: it produces on the loop and awaits the
acknowledgement without holding a worker thread. Kafka's acknowledgements arrive as
callbacks on the producer's own thread; the embedded log's futures take no callbacks
(they wait on their batch's commit), so one waiter thread per writer waits on them in
order. Either way, the writes acknowledged before the loop next runs wake it once, not
once each (at thousands of writes a second, each wake-up is a system call and a turn of
the GIL between threads). A request that could block the loop (no producer yet, the
topic not looked up yet, or so much unacknowledged that the producer may make it wait
for room) takes a worker thread and `write` instead.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from arroyo.backends.abstract import Producer, ProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue
from arroyo.types import Topic as LogTopic
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from vigil import metrics
from vigil.config import Settings
from vigil.streams.backend import (
    AcksByCallback,
    LogBackend,
    LogError,
    MessageTooLarge,
    payload_size,
)
from vigil.streams.runner import produce
from vigil.streams.topics import Topic

log = logging.getLogger(__name__)

# Clients wait up to 30 s (sentry-sdk) and sentry-cli blocks the job meanwhile: answer
# 503 well before that rather than keep them waiting on a log that is down.
ACK_TIMEOUT_S = 10.0
RETRY_AFTER_S = 1.0
CLOSE_TIMEOUT_S = 10.0
# Unacknowledged messages (and bytes) `write_async` lets wait on the loop's behalf; well
# under what the embedded producer holds before `produce` blocks (10,000 messages,
# 16 MiB), so producing on the event loop never waits for room.
MAX_IN_FLIGHT_MESSAGES = 5_000
MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024

_Acks = list[ProducerFuture[BrokerValue[KafkaPayload]]]


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


class WriteTooLarge(MessageTooLarge):
    """A message of a write over the log's limit; nothing of the write was produced.
    `index` is the message's place in the write, for the caller to name it."""

    def __init__(self, topic: str, size: int, limit: int, index: int) -> None:
        super().__init__(topic, size, limit)
        self.index = index


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
        self._callbacks: AcksByCallback | None = None  # the producer, if it has them
        self._failed_at: float | None = None
        self._failure = ""
        self._destination = LogTopic(settings.topic(topic))
        # `write_async`'s state: whether a write went through (the producer knows the
        # topic), what is unacknowledged, and the waiter thread with its queue.
        self._warm = False
        # Not `_lock`, which is held while a producer is made (seconds, when the log is
        # unreachable): the event loop takes this one.
        self._flight_lock = threading.Lock()
        self._in_flight = 0
        self._in_flight_bytes = 0
        self._waiting: queue.SimpleQueue[tuple[_Pending, _Acks] | None] = queue.SimpleQueue()
        self._waiter: threading.Thread | None = None
        # Writes finished and not yet delivered to their loop, per loop.
        self._finished_lock = threading.Lock()
        self._finished: dict[asyncio.AbstractEventLoop, list[tuple[_Pending, LogError | None]]] = {}

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
                self._warm = False  # a new producer has yet to look the topic up
                producer = self._backend.get_producer()
                self._callbacks = producer if isinstance(producer, AcksByCallback) else None
                self._producer = producer
            except LogError as exc:
                self._failed_at, self._failure = now, str(exc)
                raise
            self._failed_at = None
            return self._producer

    def check_sizes(self, writes: Sequence[LogWrite]) -> None:
        """Raise `WriteTooLarge` for the first message over the limit the log's producers
        enforce (`max_message_bytes`, counted as they count it), writing nothing.

        The producers refuse one message at a time, after the ones before it were
        produced; checking every message first keeps a refused write wholly unwritten."""
        limit = self._settings.max_message_bytes
        for index, item in enumerate(writes):
            size = payload_size(KafkaPayload(item.key, item.value, []))
            if size > limit:
                raise WriteTooLarge(self._destination.name, size, limit, index)

    def write(self, writes: Sequence[LogWrite]) -> None:
        """Write the messages in order and wait for the log's acknowledgement of each;
        `WriteTooLarge`, with nothing written, if one of them is over the limit."""
        self.check_sizes(writes)
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
        self._warm = True

    async def write_async(self, writes: Sequence[LogWrite]) -> None:
        """`write`, awaited on the event loop: the same order, errors and guarantee
        (returns once the log acknowledged every message)."""
        self.check_sizes(writes)
        size = sum(len(item.value) + len(item.key or b"") for item in writes)
        producer = self._producer
        with self._flight_lock:
            on_loop = (
                producer is not None
                and self._warm
                and self._in_flight + len(writes) <= MAX_IN_FLIGHT_MESSAGES
                and self._in_flight_bytes + size <= MAX_IN_FLIGHT_BYTES
            )
            if on_loop:
                self._in_flight += len(writes)
                self._in_flight_bytes += size
        if producer is None or not on_loop:
            await run_in_threadpool(self.write, writes)
            return
        loop = asyncio.get_running_loop()
        deadline = self._clock() + self._ack_timeout_s
        pending = _Pending(len(writes), size, deadline, loop, loop.create_future())
        callbacks = self._callbacks  # Kafka's producer reports acknowledgements by callback
        acks: _Acks = []
        try:
            for item in writes:
                # LogError, as `write` (sizes were checked: the producer's own
                # MessageTooLarge cannot come after part of the write was produced).
                payload = KafkaPayload(item.key, item.value, [])
                if callbacks is not None:
                    callbacks.produce_then(
                        self._destination, payload, partial(self._acked, pending)
                    )
                else:
                    acks.append(producer.produce(self._destination, payload))
                pending.sent += 1
        except BaseException:
            pending.done.cancel()  # nobody awaits it; what was sent is still accounted
            raise
        finally:
            if callbacks is not None:
                # Nothing else watches the deadline on this path (the waiter does on the other).
                pending.timer = loop.call_later(self._ack_timeout_s, self._expire, pending)
                # The producing side's share, and the messages never sent.
                self._acked(pending, None, count=1 + pending.count - pending.sent)
            else:
                self._wait(pending, acks)
        await pending.done

    def _acked(self, pending: _Pending, error: BaseException | None, *, count: int = 1) -> None:
        """`count` acknowledgements (or a failure) of `pending`: one message's, on the
        producer's thread; or the producing side's, once it is done producing."""
        with self._finished_lock:
            pending.left -= count
            if pending.error is None and error is not None:
                pending.error = error
            if pending.left:
                return
        self._finish(pending, pending.error)

    def _wait(self, pending: _Pending, acks: _Acks) -> None:
        """Have the waiter thread finish `pending` once its messages are acknowledged
        (the embedded log's futures take no callbacks)."""
        if not acks:
            self._finish(pending, None)
            return
        with self._flight_lock:
            if self._waiter is None:
                self._waiter = threading.Thread(
                    target=self._wait_for_acks, name=f"vigil-acks-{self._topic}", daemon=True
                )
                self._waiter.start()
        self._waiting.put((pending, acks))

    def _wait_for_acks(self) -> None:
        """The waiter thread: finishes each write once its messages are acknowledged
        (they are, per partition, in the order produced), or failed."""
        while (item := self._waiting.get()) is not None:
            pending, acks = item
            error: Exception | None = None
            for ack in acks:
                try:
                    ack.result(timeout=max(0.0, pending.deadline - self._clock()))
                except TimeoutError:
                    error = TimeoutError(f"not within {self._ack_timeout_s:g} s")
                    break
                except Exception as exc:
                    error = exc
                    break
            self._finish(pending, error)

    def _finish(self, pending: _Pending, error: BaseException | None) -> None:
        """Every message of `pending` is acknowledged, or one failed: stop counting it in
        flight and hand it to its loop. A burst of writes finished before the loop runs
        wakes it once (`_deliver`), not once each."""
        with self._flight_lock:
            self._in_flight -= pending.count
            self._in_flight_bytes -= pending.size
        failure = None
        if error is not None:
            failure = LogError(
                f"message to {self._destination.name!r} was not acknowledged: {error}"
            )
        elif pending.sent:
            metrics.MESSAGES_PRODUCED.labels(self._destination.name).inc(pending.sent)
        with self._finished_lock:
            batch = self._finished.setdefault(pending.loop, [])
            batch.append((pending, failure))
            if len(batch) > 1:
                return  # the loop is already called to deliver this burst
        try:
            pending.loop.call_soon_threadsafe(self._deliver, pending.loop)
        except RuntimeError:  # a closed loop: nobody waits any more
            with self._finished_lock:
                self._finished.pop(pending.loop, None)

    def _deliver(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._finished_lock:
            batch = self._finished.pop(loop, [])
        for pending, failure in batch:
            if pending.timer is not None:
                pending.timer.cancel()
            _settle(pending.done, failure)

    def _expire(self, pending: _Pending) -> None:
        """No acknowledgement within the timeout: answer the client now (503); the
        write stays in flight until the producer acknowledges or fails it."""
        _settle(
            pending.done,
            LogError(
                f"message to {self._destination.name!r} was not acknowledged "
                f"within {self._ack_timeout_s:g} s"
            ),
        )

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
            self._callbacks = None
        with self._flight_lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._waiting.put(None)  # after every write in flight: they are settled first
            waiter.join(timeout=CLOSE_TIMEOUT_S)
        if producer is not None:
            try:
                producer.close().result(timeout=CLOSE_TIMEOUT_S)
            except Exception as exc:  # closing at shutdown: report, do not mask the exit
                log.warning("closing the log producer failed", extra={"error": str(exc)})


class _Pending:
    """One `write_async` awaiting its acknowledgements: `count` messages of `size`
    bytes in flight, of which `sent` were produced and `left` are unacknowledged; the
    first failure; the loop future to settle and the timer that fails it at `deadline`."""

    __slots__ = ("count", "deadline", "done", "error", "left", "loop", "sent", "size", "timer")

    def __init__(
        self,
        count: int,
        size: int,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
        done: asyncio.Future[None],
    ) -> None:
        self.count = count
        # One more than the messages: the producing side's share, so that acknowledgements
        # arriving while it still produces cannot finish the write early.
        self.left = count + 1
        self.size = size
        self.sent = 0
        self.error: BaseException | None = None
        self.deadline = deadline
        self.loop = loop
        self.done = done
        self.timer: asyncio.TimerHandle | None = None


def _settle(done: asyncio.Future[None], error: Exception | None) -> None:
    if done.done():  # the request was cancelled (its client went away)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


async def write_for_client(
    writer: LogWriter, writes: Sequence[LogWrite], *, what: str, project_id: int
) -> None:
    """`writer.write_async(writes)` for an endpoint, a refusal raised as the client's
    answer: 413 for a message over the limit, 503 (and a warning naming `what` was
    refused) when the log cannot take it; never a 500."""
    try:
        await writer.write_async(writes)
    except MessageTooLarge as exc:
        raise HTTPException(413, str(exc)) from None
    except LogError as exc:
        log.warning(
            f"{what} refused: the log is unavailable",
            extra={"project_id": project_id, "error": str(exc)},
        )
        raise HTTPException(503, "the log is unavailable; retry later") from None
