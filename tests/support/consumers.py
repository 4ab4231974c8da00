"""Consumers run for real in a thread of the test process (any definition, or the
`ingest-monitors` one), and waiting for what they write."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, select

from vigil.config import Settings
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.monitors.consumer import CheckinConsumer
from vigil.streams.runner import run_consumer

WAIT_S = 120.0


@contextmanager
def consumer_thread(
    definition: Any, settings: Settings, name: str = "test-consumer"
) -> Iterator[Callable[[], bool]]:
    """`run_consumer(definition)` in a thread of this process until the block ends;
    yields `alive()`. Fails if the consumer does not stop, or raises what it raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            run_consumer(definition, settings, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    try:
        yield thread.is_alive
    finally:
        stop.set()
        thread.join(WAIT_S)
    assert not thread.is_alive(), "the consumer did not stop"
    if errors:
        raise errors[0]


@contextmanager
def running(settings: Settings, workers: int = 1) -> Iterator[Callable[[], bool]]:
    """The `ingest-monitors` consumer in a thread of this process until the block ends;
    yields `alive()`."""
    consumer = CheckinConsumer(replace(settings, checkin_workers=workers))
    try:
        with consumer_thread(consumer.definition(), settings, "test-ingest-monitors") as alive:
            yield alive
    finally:
        consumer.close()


def wait_until(condition: Callable[[], bool], what: str, alive: Callable[[], bool]) -> None:
    """Returns once `condition()` holds; fails if `alive()` turns false or WAIT_S passes."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if not alive():
            raise AssertionError(f"the consumer stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def checkins(engine: Engine) -> dict[uuid.UUID, Any]:
    """Every check-in row, by GUID."""
    with engine.connect() as conn:
        return {r.guid: r for r in conn.execute(select(checkin_table))}
