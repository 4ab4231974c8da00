"""The clock's pure rules (B7.2): which minutes tick, as tables of cases and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.monitors.clock import idle_positions, minute_of, slowest, ticks_due

T = 1_772_366_400  # 2026-03-01 12:00 UTC, a minute's start
M = 60


@pytest.mark.parametrize(
    ("ts", "expected"),
    [(T, T), (T + 0.5, T), (T + 59.999, T), (T + 60, T + M), (T - 0.001, T - M)],
)
def test_minute_of(ts: float, expected: int) -> None:
    assert minute_of(ts) == expected


@pytest.mark.parametrize(
    ("positions", "expected"),
    [({}, None), ({0: T}, T), ({0: T + M, 1: T, 2: T + 2 * M}, T)],
)
def test_slowest_partition(positions: dict[int, int], expected: int | None) -> None:
    assert slowest(positions) == expected


@pytest.mark.parametrize(
    ("slowest_position", "last", "expected"),
    [
        (None, None, []),  # nothing known yet
        (T, None, [T]),  # first tick ever: only the current minute
        (T, T, []),  # already ticked
        (T - M, T, []),  # never backwards
        (T + M, T, [T + M]),
        (T + 4 * M, T, [T + M, T + 2 * M, T + 3 * M, T + 4 * M]),  # back-filled in order
    ],
)
def test_ticks_due(slowest_position: int | None, last: int | None, expected: list[int]) -> None:
    assert ticks_due(slowest_position, last) == expected


@given(
    st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=50),
)
def test_any_sequence_of_positions_ticks_every_minute_once_in_order(moves: list[int]) -> None:
    """Whatever order the slowest partition moves in, the ticks dispatched are every
    minute from the first to the furthest reached, each once, increasing."""
    last: int | None = None
    ticked: list[int] = []
    for move in moves:
        due = ticks_due(T + move * M, last)
        ticked += due
        if due:
            last = due[-1]
    furthest = T + max(moves) * M
    assert ticked == list(range(T + moves[0] * M, furthest + 1, M))


@pytest.mark.parametrize(
    ("partitions", "lag", "expected"),
    [
        (2, {0: 0, 1: 0}, {0: T, 1: T}),
        (2, {0: 0, 1: 3}, {}),  # a message still waits in partition 1
        (2, {0: 0}, {}),  # partition 1's lag unknown
        (0, {}, {}),
    ],
)
def test_idle_positions_only_when_every_partition_is_caught_up(
    partitions: int, lag: dict[int, int], expected: dict[int, int]
) -> None:
    assert idle_positions(partitions, T + 42.5, lag) == expected
