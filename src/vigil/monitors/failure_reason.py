"""The "Failure reason" shown on a monitor-failure issue, from the statuses of the
check-ins that reached the failure threshold. No I/O."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from vigil.monitors.enums import CheckInStatus

# The statuses that count as failures, and how the reason names a single one.
_SINGLE: dict[CheckInStatus, str] = {
    CheckInStatus.ERROR: "An error check-in was detected",
    CheckInStatus.MISSED: "A missed check-in was detected",
    CheckInStatus.TIMEOUT: "A timeout check-in was detected",
}

# Never reached through mark_failed (its window always holds the failed check-in), but a
# pure function should say something sensible for any input.
NO_FAILURES = "No failed check-ins detected"


def failure_reason(statuses: Iterable[CheckInStatus | int]) -> str:
    """The failure reason for a window of check-in statuses (ints or enum members).

    Only ERROR, MISSED and TIMEOUT are counted; others are ignored. One counted check-in
    gives "An error check-in was detected" (missed / timeout alike); more give
    "{n} {status}, …, {n} {status} and {n} {status} check-ins detected" with the statuses
    in the order they first appear, e.g. "1 error, 1 missed and 1 timeout check-ins
    detected" or "3 missed check-ins detected".
    """
    counts: Counter[CheckInStatus] = Counter()  # insertion order = first appearance
    for value in statuses:
        status = CheckInStatus(value)
        if status in _SINGLE:
            counts[status] += 1
    total = sum(counts.values())
    if total == 0:
        return NO_FAILURES
    if total == 1:
        return _SINGLE[next(iter(counts))]
    parts = [f"{count} {status.label}" for status, count in counts.items()]
    listed = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"{listed} check-ins detected"
