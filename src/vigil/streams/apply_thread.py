"""An arroyo step that applies one batch on a thread of its own while the consumer's
thread polls and decodes the next.

Applying a batch is mostly waiting: on PostgreSQL for the server's round trips, on
SQLite for its writes and commit (the GIL is released in both). Run in the consumer's
own thread, that wait also stopped the next batch from being read and decoded. Here at
most one batch is applied at a time, in the order given: `submit` waits for the batch
before it to be applied, passes that one on (to the commit step), then starts the new
one; a failed batch raises from `submit`, `poll` or `join` in the consumer's thread, as
arroyo's `RunTask` would. So a batch's offsets are still committed only after it, and
every batch before it, is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from arroyo.processing.strategies import ProcessingStrategy
from arroyo.types import FilteredPayload, Message

TIn = TypeVar("TIn")
TOut = TypeVar("TOut")


class ApplyInThread(ProcessingStrategy[TIn], Generic[TIn, TOut]):
    def __init__(
        self,
        function: Callable[[Message[TIn]], TOut],
        next_step: ProcessingStrategy[TOut | FilteredPayload],
        *,
        thread_name: str = "vigil-apply",
    ) -> None:
        self._function = function
        self._next_step = next_step
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._in_flight: tuple[Message[TIn], Future[TOut]] | None = None
        self._closed = False

    def _forward(self, wait: bool) -> None:
        # Pass the applied batch on; with `wait`, wait for it first. Raises what the
        # apply raised (the batch is then not passed on, so not committed).
        if self._in_flight is None:
            return
        message, future = self._in_flight
        if not wait and not future.done():
            return
        self._in_flight = None
        result = future.result()
        self._next_step.poll()
        self._next_step.submit(Message(message.value.replace(result)))

    def submit(self, message: Message[TIn]) -> None:
        assert not self._closed
        self._forward(wait=True)
        if isinstance(message.payload, FilteredPayload):
            # Nothing to apply: its offsets go on, after the batches before it.
            self._next_step.submit(message)  # type: ignore[arg-type]
            return
        self._in_flight = (message, self._executor.submit(self._function, message))

    def poll(self) -> None:
        self._forward(wait=False)
        self._next_step.poll()

    def join(self, timeout: float | None = None) -> None:
        # The batch in flight is always waited for: one still applying must not run
        # beside the next assignment's first batch.
        self._forward(wait=True)
        self._executor.shutdown(wait=True)
        self._next_step.close()
        self._next_step.join(timeout=timeout)

    def close(self) -> None:
        self._closed = True

    def terminate(self) -> None:
        # Waits for the batch in flight (which may be waiting out a database outage
        # until it ends or stop is asked): it must not still be applying beside the
        # next assignment's batches. The consumer's thread was held just as long when
        # it applied batches itself.
        self._closed = True
        self._in_flight = None
        self._executor.shutdown(wait=True)
        self._next_step.terminate()
