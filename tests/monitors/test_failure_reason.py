"""The failure reason text of a monitor-failure issue (B8.3), as a table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.monitors.enums import CheckInStatus
from vigil.monitors.failure_reason import NO_FAILURES, failure_reason

OK = CheckInStatus.OK
ERROR = CheckInStatus.ERROR
MISSED = CheckInStatus.MISSED
TIMEOUT = CheckInStatus.TIMEOUT
UNKNOWN = CheckInStatus.UNKNOWN
IN_PROGRESS = CheckInStatus.IN_PROGRESS


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([ERROR], "An error check-in was detected"),
        ([MISSED], "A missed check-in was detected"),
        ([TIMEOUT], "A timeout check-in was detected"),
        ([ERROR, MISSED, TIMEOUT], "1 error, 1 missed and 1 timeout check-ins detected"),
        ([MISSED, MISSED, MISSED], "3 missed check-ins detected"),
        ([ERROR, ERROR], "2 error check-ins detected"),
        ([TIMEOUT, ERROR], "1 timeout and 1 error check-ins detected"),
        (
            [MISSED, ERROR, MISSED, TIMEOUT, ERROR],
            "2 missed, 2 error and 1 timeout check-ins detected",
        ),
        # statuses that are not failures are ignored, also for the single phrasing
        ([OK, ERROR, IN_PROGRESS, UNKNOWN], "An error check-in was detected"),
        ([OK, MISSED, OK, MISSED], "2 missed check-ins detected"),
        # ints are accepted as they come from the database
        ([2, 4, 5], "1 error, 1 missed and 1 timeout check-ins detected"),
        ([], NO_FAILURES),
        ([OK, UNKNOWN], NO_FAILURES),
    ],
)
def test_failure_reason(statuses: list[CheckInStatus | int], expected: str) -> None:
    assert failure_reason(statuses) == expected


def test_failure_reason_accepts_any_iterable() -> None:
    assert failure_reason(iter([TIMEOUT, TIMEOUT])) == "2 timeout check-ins detected"


def test_an_int_that_is_no_status_is_refused() -> None:
    with pytest.raises(ValueError):
        failure_reason([9])


@given(st.lists(st.sampled_from(list(CheckInStatus)), min_size=1))
def test_failure_reason_counts_add_up(statuses: list[CheckInStatus]) -> None:
    failures = [s for s in statuses if s in (ERROR, MISSED, TIMEOUT)]
    text = failure_reason(statuses)
    if len(failures) == 0:
        assert text == NO_FAILURES
    elif len(failures) == 1:
        assert text.endswith("check-in was detected")
    else:
        assert text.endswith(" check-ins detected")
        numbers = [int(word) for word in text.replace(",", "").split() if word.isdigit()]
        assert sum(numbers) == len(failures)
