"""Log lines for occurrences dropped by design (noise gate, creation quota, rate limit),
at most one a minute per project, type and reason with the count since the last.

These drops are the reference's behaviour and are counted in `vigil_issue_messages_total`,
but an operator whose accepted occurrences make no issue must be able to see why from
the logs too, without a flood of occurrences becoming a flood of lines."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("vigil.issues")

EVERY_S = 60.0
MAX_KEYS = 10_000


class DropLog:
    def __init__(self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic):
        self._every_s = every_s
        self._clock = clock
        self._lock = threading.Lock()
        # (reason, project, type slug) -> (time of the last line, drops not logged yet)
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def dropped(self, reason: str, project_id: int, type_slug: str, why: str) -> None:
        """Count one drop; log it (with those not logged since) unless a line for the
        same reason, project and type was logged less than `every_s` ago."""
        key = (reason, project_id, type_slug)
        now = self._clock()
        with self._lock:
            last, pending = self._seen.get(key, (None, 0))
            if last is not None and now - last < self._every_s:
                self._seen[key] = (last, pending + 1)
                return
            if len(self._seen) >= MAX_KEYS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        log.info(
            f"occurrence dropped: {why}",
            extra={
                "reason": reason,
                "project_id": project_id,
                "issue_type": type_slug,
                "dropped": pending + 1,
            },
        )


drops = DropLog()
