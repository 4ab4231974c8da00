"""The per-monitor-environment check-in rate limit (B4.3 step 2): the key and message
minute a check-in is counted under, and the limiter that counts them. No I/O: the counts
live in this process's memory (`MinuteRateLimiter` says why)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from vigil.monitors.processing_errors import CheckinItem
from vigil.monitors.slugs import processing_key

CHECKINS_PER_MINUTE: Final = 6


class RateLimiter(Protocol):
    def is_limited(self, key: str, minute: datetime) -> bool:
        """Count one check-in under `key`, the bucket of the message minute `minute`;
        True when it is over the limit."""


# How many minutes behind the newest one seen a bucket is kept.
RATE_LIMIT_HORIZON: Final = timedelta(minutes=2)


@dataclass
class MinuteRateLimiter:
    """The per-monitor-environment limit of step 2: `limit` check-ins per key and message
    minute (a new minute is a new bucket), counted in this process's memory.

    Memory stays bounded: when the message time reaches a new minute, the buckets more
    than RATE_LIMIT_HORIZON older than it are forgotten, since their minute is over.

    Why memory and not the database: `ingest-monitors` is partitioned by monitor
    environment, so every check-in of one key reaches one consumer process, which can
    count them alone; the count is only ever needed within one minute of message time.
    A restart (or a rebalance) forgets the counts: in that minute a monitor environment
    may get up to `limit` check-ins more through, which is harmless; nothing is lost.
    A bucket for a minute far behind the newest (a partition catching up while another
    is current) may be forgotten early in the same way.

    Safe to share between the threads of one consumer.
    """

    limit: int = CHECKINS_PER_MINUTE
    buckets: dict[datetime, dict[str, int]] = field(default_factory=dict)
    newest: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def is_limited(self, key: str, minute: datetime) -> bool:
        with self._lock:
            if self.newest is None or minute > self.newest:
                self.newest = minute
                floor = minute - RATE_LIMIT_HORIZON
                for over in [m for m in self.buckets if m < floor]:
                    del self.buckets[over]
            counts = self.buckets.setdefault(minute, {})
            counts[key] = counts.get(key, 0) + 1
            return counts[key] > self.limit


def message_minute(item: CheckinItem) -> datetime:
    """The minute of the message's log time (UTC): the rate limit's bucket."""
    return item.ts.astimezone(UTC).replace(second=0, microsecond=0)


def rate_limit_key(item: CheckinItem) -> str:
    """ "monitor-checkins:{processing_key}:{message minute, naive}" (B4.3 step 2)."""
    project_id = int(item.message["project_id"])
    minute = message_minute(item).replace(tzinfo=None)
    key = processing_key(
        project_id, str(item.payload.get("monitor_slug", "")), item.payload.get("environment")
    )
    return f"monitor-checkins:{key}:{minute:%Y-%m-%d %H:%M:%S}"
