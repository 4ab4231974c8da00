"""The supervisor's restart delays."""

from __future__ import annotations

from vigil.serve.backoff import HEALTHY_AFTER, MAX_DELAY, Backoff


def test_delays_double_up_to_the_cap() -> None:
    b = Backoff()
    delays = [b.next_delay(ran_for=0.5) for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY, MAX_DELAY, MAX_DELAY]


def test_a_child_that_ran_long_starts_over() -> None:
    b = Backoff()
    for _ in range(4):
        b.next_delay(ran_for=1)
    assert b.next_delay(ran_for=HEALTHY_AFTER) == 1.0
    assert b.next_delay(ran_for=1) == 2.0
