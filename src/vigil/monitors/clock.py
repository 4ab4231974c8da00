"""The crons clock (B7.2), pure: which minutes tick, given where each partition of
`ingest-monitors` is. No I/O; `clock_store` keeps the state and the once-only guarantee
in the database.

Time is event time: a partition's position is the minute of the latest message it
delivered (check-in or clock pulse). A minute ticks once the slowest known partition has
reached it, so a backlog being replayed never makes the clock run ahead of the check-ins
still waiting in it. Positions and ticks are epoch seconds of a minute's start.

When the log is idle (every partition caught up), wall time is as good as event time:
nothing that happened before "now" is still unprocessed, so the clock may move to the
current minute (`idle_positions`). This is how an install without clock pulses, or
without any check-ins, still notices a job that stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Final

MINUTE_S: Final = 60


def minute_of(ts: float) -> int:
    """The start of the minute `ts` (epoch seconds) falls in."""
    return int(ts // MINUTE_S) * MINUTE_S


def as_datetime(minute: int) -> datetime:
    return datetime.fromtimestamp(minute, UTC)


def slowest(positions: Mapping[int, int]) -> int | None:
    """The position of the slowest known partition; None before any is known."""
    return min(positions.values(), default=None)


def ticks_due(slowest_position: int | None, last_tick: int | None) -> list[int]:
    """The minutes to tick, in order, when the clock moves to `slowest_position`:
    nothing if it is not past the last tick (never backwards, never twice); the skipped
    minutes back-filled before it; the first tick ever only the current minute."""
    if slowest_position is None:
        return []
    if last_tick is None:
        return [slowest_position]
    if slowest_position <= last_tick:
        return []
    return list(range(last_tick + MINUTE_S, slowest_position + 1, MINUTE_S))


def idle_positions(partitions: int, now: float, lag: Mapping[int, int]) -> dict[int, int]:
    """Where wall time puts the partitions: each partition of `ingest-monitors` at the
    current minute — but only when the consumer has nothing left to apply in any of
    them (`lag` read *after* `now`, so every message stamped before `now` is applied).
    Empty when any partition still has messages (or its lag is unknown)."""
    if partitions <= 0 or any(lag.get(p, 1) != 0 for p in range(partitions)):
        return {}
    minute = minute_of(now)
    return dict.fromkeys(range(partitions), minute)


def minute_counts(times: Iterable[datetime]) -> dict[int, int]:
    """How many of `times` fall in each minute (the check-in volume of B9)."""
    counts: dict[int, int] = {}
    for moment in times:
        minute = minute_of(moment.timestamp())
        counts[minute] = counts.get(minute, 0) + 1
    return counts
