"""Sliding-window quota arithmetic."""

from __future__ import annotations

import pytest

from vigil.issues.group_types import Quota
from vigil.issues.quota import (
    DEFAULT_OCCURRENCE_RATE_LIMIT,
    bucket_of,
    is_granted,
    occurrence_rate_limit,
    window_usage,
)

Q = Quota(window_seconds=3600, granularity_seconds=60, limit=5)


@pytest.mark.parametrize(("ts", "bucket"), [(0, 0), (59.9, 0), (60, 60), (3725.5, 3720)])
def test_bucket_of(ts: float, bucket: int) -> None:
    assert bucket_of(ts, Q) == bucket


@pytest.mark.parametrize(
    ("buckets", "ts", "used", "granted"),
    [
        ({}, 7200, 0, True),
        ({7200: 4}, 7230, 4, True),
        ({7200: 5}, 7230, 5, False),
        ({3600: 5}, 7200, 0, True),  # exactly one window old: out
        ({3660: 5}, 7200, 5, False),  # just inside
        ({3660: 2, 5000 // 60 * 60: 2, 7200: 1}, 7259, 5, False),
        ({7260: 9}, 7200, 0, True),  # a future bucket does not count
    ],
)
def test_window(buckets: dict[int, int], ts: float, used: int, granted: bool) -> None:
    assert window_usage(buckets, ts, Q) == used
    assert is_granted(buckets, ts, Q) is granted


def test_units() -> None:
    assert is_granted({0: 3}, 0, Q, units=2) is True
    assert is_granted({0: 3}, 0, Q, units=3) is False


@pytest.mark.parametrize(
    ("enabled", "quota", "expected"),
    [
        (False, {"limit": 1}, None),
        (None, None, None),
        ("true", None, None),  # only a real boolean turns it on
        (True, None, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (True, {"limit": 2}, Quota(3600, 60, 2)),
        (
            True,
            {"window_seconds": 60, "granularity_seconds": 10, "limit": 3},
            Quota(60, 10, 3),
        ),
        (True, {"limit": 0}, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (True, {"limit": "5"}, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (True, [1, 2], DEFAULT_OCCURRENCE_RATE_LIMIT),
        (True, {"window_seconds": 10**30}, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (
            True,
            {"window_seconds": 60, "granularity_seconds": 10**30},
            DEFAULT_OCCURRENCE_RATE_LIMIT,
        ),
        (True, {"window_seconds": 60, "granularity_seconds": 120}, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (True, {"limit": 2**63}, DEFAULT_OCCURRENCE_RATE_LIMIT),
        (
            True,
            {"window_seconds": 30 * 24 * 3600, "granularity_seconds": 3600},
            Quota(2592000, 3600, 1000),
        ),
    ],
)
def test_occurrence_rate_limit_from_options(
    enabled: object, quota: object, expected: Quota | None
) -> None:
    assert occurrence_rate_limit(enabled, quota) == expected
