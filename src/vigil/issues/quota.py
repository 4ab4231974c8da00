"""Sliding-window quotas (issue-creation quota per type, the optional per-fingerprint
occurrence rate limit): the arithmetic only. The caller keeps per-bucket counts wherever
it likes (vigil: its database). No I/O."""

from __future__ import annotations

from collections.abc import Mapping

from vigil.issues.group_types import Quota


def bucket_of(timestamp: float, quota: Quota) -> int:
    """The bucket a moment falls in: epoch seconds floored to the granularity."""
    return int(timestamp // quota.granularity_seconds) * quota.granularity_seconds


def window_usage(buckets: Mapping[int, int], timestamp: float, quota: Quota) -> int:
    """Units used in the window that ends with the bucket of `timestamp`: the sum of the
    buckets (keyed by `bucket_of`) that start less than `window_seconds` before it."""
    current = bucket_of(timestamp, quota)
    oldest = current - quota.window_seconds
    return sum(count for start, count in buckets.items() if oldest < start <= current)


def fits(used: int, quota: Quota, units: int = 1) -> bool:
    """Whether `units` more fit in a window of which `used` are taken."""
    return used + units <= quota.limit


def is_granted(buckets: Mapping[int, int], timestamp: float, quota: Quota, units: int = 1) -> bool:
    """Whether `units` more fit in the window at `timestamp` (the caller then adds them to
    the bucket `bucket_of(timestamp)`)."""
    return fits(window_usage(buckets, timestamp, quota), quota, units)


RATE_LIMIT_ENABLED_OPTION = "issues.occurrence-consumer.rate-limit.enabled"
RATE_LIMIT_QUOTA_OPTION = "issues.occurrence-consumer.rate-limit.quota"
DEFAULT_OCCURRENCE_RATE_LIMIT = Quota(window_seconds=3600, granularity_seconds=60, limit=1000)
"""The per-fingerprint occurrence rate limit when the quota option is not set."""
MAX_WINDOW_SECONDS = 30 * 24 * 3600
MAX_LIMIT = 2**31 - 1


def occurrence_rate_limit(enabled: object, quota: object) -> Quota | None:
    """The per-fingerprint occurrence rate limit the two server options ask for: None
    (no limit) unless `enabled` is true; the quota from a {window_seconds,
    granularity_seconds, limit} object of positive integers (a window of at most 30
    days, a granularity no longer than it), else the default."""
    if enabled is not True:
        return None
    if not isinstance(quota, Mapping):
        return DEFAULT_OCCURRENCE_RATE_LIMIT
    values = {
        name: quota.get(name, getattr(DEFAULT_OCCURRENCE_RATE_LIMIT, name))
        for name in ("window_seconds", "granularity_seconds", "limit")
    }
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values.values()):
        return DEFAULT_OCCURRENCE_RATE_LIMIT
    # A window longer than the counters are kept, or one that overflows the database's
    # integers, would make every occurrence fail: such a setting is ignored, as others.
    if values["window_seconds"] > MAX_WINDOW_SECONDS or values["limit"] > MAX_LIMIT:
        return DEFAULT_OCCURRENCE_RATE_LIMIT
    if values["granularity_seconds"] > values["window_seconds"]:
        return DEFAULT_OCCURRENCE_RATE_LIMIT
    return Quota(**values)
