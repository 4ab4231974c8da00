"""The apply step's own thread: a batch applies while the consumer's thread goes on, at
most one at a time and in order, and a batch is passed on to be committed only once it
(and every batch before it) is applied. The step is driven here as arroyo drives it;
the step after it records what it is given."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from arroyo.processing.strategies import ProcessingStrategy
from arroyo.types import BrokerValue, FilteredPayload, Message, Partition, Topic

from vigil.streams.apply_thread import ApplyInThread

PARTITION = Partition(Topic("t"), 0)
WAIT_S = 30.0


def batch(offset: int, value: str) -> Message[str]:
    return Message(BrokerValue(value, PARTITION, offset, datetime(2026, 1, 1)))


class Received(ProcessingStrategy[str | FilteredPayload]):
    """The next step: keeps what it is given, and whether it was joined."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.offsets: list[int] = []
        self.joined = False

    def submit(self, message: Message[str | FilteredPayload]) -> None:
        if isinstance(message.payload, str):
            self.values.append(message.payload)
        self.offsets.append(message.value.committable[PARTITION])

    def poll(self) -> None:
        pass

    def join(self, timeout: float | None = None) -> None:
        self.joined = True

    def close(self) -> None:
        pass

    def terminate(self) -> None:
        pass


class Gated:
    """An apply that waits for its batch's gate to open, noting the thread it ran on."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.threads: set[int] = set()
        self.order: list[str] = []

    def gate(self, value: str) -> threading.Event:
        return self.gates.setdefault(value, threading.Event())

    def began(self, value: str) -> threading.Event:
        # Made by whichever thread comes first: the test's or the apply's.
        return self.started.setdefault(value, threading.Event())

    def __call__(self, message: Message[str]) -> str:
        value = message.payload
        self.threads.add(threading.get_ident())
        self.order.append(value)
        self.began(value).set()
        assert self.gate(value).wait(WAIT_S), f"gate of {value} never opened"
        if value.startswith("bad"):
            raise RuntimeError(f"cannot apply {value}")
        return value.upper()


def test_a_batch_applies_on_another_thread_while_the_caller_goes_on() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(1, "a"))  # returns although "a" is still applying
    assert apply.began("a").wait(WAIT_S)
    step.poll()
    assert received.values == []  # not passed on (so not committed) before it is applied
    assert apply.threads and threading.get_ident() not in apply.threads
    apply.gate("a").set()
    step.join()
    assert received.values == ["A"]
    assert received.offsets == [2]
    assert received.joined


def test_the_next_batch_waits_for_the_one_before_and_both_pass_on_in_order() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(1, "a"))
    assert apply.began("a").wait(WAIT_S)

    submitted = threading.Event()

    def submit_second() -> None:
        step.submit(batch(2, "b"))
        submitted.set()

    second = threading.Thread(target=submit_second)
    second.start()
    # "b" is not started while "a" applies: one batch at a time.
    assert not submitted.wait(0.3)
    assert apply.order == ["a"]
    apply.gate("a").set()
    assert submitted.wait(WAIT_S)
    second.join()
    assert received.values == ["A"]  # "a" passed on before "b" started
    apply.gate("b").set()
    step.join()
    assert apply.order == ["a", "b"]
    assert received.values == ["A", "B"]
    assert received.offsets == [2, 3]


def test_poll_passes_on_a_batch_once_it_is_applied() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(5, "a"))
    apply.gate("a").set()
    for _ in range(int(WAIT_S / 0.01)):
        step.poll()
        if received.values:
            break
        threading.Event().wait(0.01)
    assert received.values == ["A"]
    assert received.offsets == [6]
    step.join()


def test_a_failed_batch_raises_in_the_caller_and_is_not_passed_on() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(1, "a"))
    apply.gate("a").set()
    apply.gate("bad").set()
    step.submit(batch(2, "bad"))
    with pytest.raises(RuntimeError, match="cannot apply bad"):
        step.join()
    assert received.values == ["A"]  # only what was applied can be committed
    step.terminate()


def test_join_waits_for_the_batch_in_flight_whatever_its_timeout() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(1, "a"))
    assert apply.began("a").wait(WAIT_S)
    threading.Timer(0.3, apply.gate("a").set).start()
    step.close()
    step.join(timeout=0)
    assert received.values == ["A"]


def test_a_filtered_message_is_passed_on_after_the_batch_before_it() -> None:
    apply, received = Gated(), Received()
    step = ApplyInThread(apply, received)
    step.submit(batch(1, "a"))
    apply.gate("a").set()
    filtered: Message[str] = Message(
        BrokerValue(FilteredPayload(), PARTITION, 2, datetime(2026, 1, 1))  # type: ignore[arg-type]
    )
    step.submit(filtered)
    assert received.offsets == [2, 3]  # "a" first, then the filtered one's offset
    assert received.values == ["A"]
    assert apply.order == ["a"]  # nothing applied for it
    step.join()
