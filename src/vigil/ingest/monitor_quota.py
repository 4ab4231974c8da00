"""The project-level check-in quota of the envelope endpoint (B11). No I/O of its own.

A project may send `50 + 6 * (its number of monitor environments)` check-ins per 60 s
window. Over it, the envelope endpoint answers 429 with `X-Sentry-Rate-Limits` for the
`monitor` category only, so an SDK flooding the project backs off its check-ins and
nothing else. Below it nothing is refused at the edge: the per-monitor-environment limit
is the consumer's (processing error 14), and the crons HTTP endpoint only counts its
check-ins here, it never refuses them.

vigil adapts the reference's shared quota as a per-process window: each web process
counts on its own, so N processes admit up to N times the limit. A project's window
starts with its first counted check-in and lasts `window_s`. The number of monitor
environments is read through `environments` (the caller's database query) and
remembered for `environments_ttl_s`; since a consumer in another process creates them
(where the reference recomputes the limit at once), a refusal is only ever decided on a
count at most `refresh_s` old: a refused SDK stops sending check-ins for the window.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

log = logging.getLogger(__name__)

BASE_LIMIT: Final = 50
PER_ENVIRONMENT: Final = 6  # the reference's option crons.per_monitor_rate_limit
WINDOW_S: Final = 60.0
ENVIRONMENTS_TTL_S: Final = 60.0
REFRESH_S: Final = 1.0
MAX_PROJECTS: Final = 10_000
RATE_LIMITS_HEADER: Final = "X-Sentry-Rate-Limits"


def project_limit(environments: int) -> int:
    """How many check-ins a project with `environments` monitor environments may send
    per window."""
    return BASE_LIMIT + PER_ENVIRONMENT * max(environments, 0)


def rate_limits_value(retry_after_s: int) -> str:
    """The `X-Sentry-Rate-Limits` value blocking the `monitor` category of the project
    for `retry_after_s` seconds (format `<secs>:<categories>:<scope>`)."""
    return f"{retry_after_s}:monitor:project"


@dataclass(frozen=True)
class Verdict:
    """`MonitorQuota.admit`'s answer: None if admitted, else the seconds to wait."""

    retry_after: int | None


@dataclass
class _Window:
    start: float
    count: int


class MonitorQuota:
    """Check-ins per project and window, safe to use from many threads.

    `admit` counts and admits a batch of check-ins, or refuses all of it (the envelope
    endpoint); `record` counts without ever refusing (the crons HTTP endpoint). A
    failing `environments` lookup admits (the quota must not turn a database blip into
    refused check-ins)."""

    def __init__(
        self,
        environments: Callable[[int], int],
        *,
        window_s: float = WINDOW_S,
        environments_ttl_s: float = ENVIRONMENTS_TTL_S,
        refresh_s: float = REFRESH_S,
        max_projects: int = MAX_PROJECTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environments = environments
        self._window_s = window_s
        self._environments_ttl_s = environments_ttl_s
        self._refresh_s = refresh_s
        self._max_projects = max_projects
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: OrderedDict[int, _Window] = OrderedDict()
        self._limits: OrderedDict[int, tuple[float, int]] = OrderedDict()
        # Projects whose expired limit one caller is counting again (since when): the
        # others are judged on the expired one meanwhile, not sent to count it too.
        self._refreshing: dict[int, float] = {}

    def admit(self, project_id: int, quantity: int) -> int | None:
        """None if the project may send `quantity` more check-ins now (they are
        counted); else the whole seconds until its window ends (nothing counted)."""
        limit = self._limit(project_id)
        now = self._clock()
        with self._lock:
            retry_after = self._count(project_id, quantity, limit, now)
            if retry_after is None or not self._stale(project_id, now):
                return retry_after
        # Count the environments again before refusing: one may have been made since.
        limit = self._limit(project_id, fresh=True)
        now = self._clock()
        with self._lock:
            return self._count(project_id, quantity, limit, now)

    def _count(self, project_id: int, quantity: int, limit: int | None, now: float) -> int | None:
        window = self._window(project_id, now)
        if limit is not None and window.count + quantity > limit:
            return max(1, math.ceil(window.start + self._window_s - now))
        window.count += quantity
        return None

    def admit_if_known(self, project_id: int, quantity: int) -> Verdict | None:
        """`admit`'s verdict when the project's limit is remembered, without any lookup
        (so an event loop may call it); None, with nothing counted, when only `admit`
        can tell."""
        now = self._clock()
        with self._lock:
            cached = self._limits.get(project_id)
            if cached is None:
                return None
            if now - cached[0] >= self._environments_ttl_s:
                claimed = self._refreshing.get(project_id)
                if claimed is None or now - claimed >= self._environments_ttl_s:
                    self._refreshing[project_id] = now  # this caller's `admit` counts
                    return None
                # Judged on the expired limit meanwhile (a refusal, below, never is).
            window = self._windows.get(project_id)
            if (
                window is not None
                and now < window.start + self._window_s
                and window.count + quantity > cached[1]
                and self._stale(project_id, now)
            ):
                return None  # a refusal needs a fresh count
            return Verdict(self._count(project_id, quantity, cached[1], now))

    def record(self, project_id: int, quantity: int) -> None:
        """Counts `quantity` check-ins the caller accepts whatever the quota says."""
        now = self._clock()
        with self._lock:
            self._window(project_id, now).count += quantity

    def refund(self, project_id: int, quantity: int) -> None:
        """Uncounts `quantity` admitted check-ins that were not accepted after all (the
        log refused them), so a client retrying after a 503 is not also limited."""
        with self._lock:
            window = self._windows.get(project_id)
            if window is not None:
                window.count = max(0, window.count - quantity)

    def _window(self, project_id: int, now: float) -> _Window:
        window = self._windows.get(project_id)
        if window is None or now >= window.start + self._window_s:
            window = _Window(now, 0)
            self._windows[project_id] = window
            self._windows.move_to_end(project_id)
            while len(self._windows) > self._max_projects:
                self._windows.popitem(last=False)
        return window

    def _stale(self, project_id: int, now: float) -> bool:
        # the project's limit was counted more than `refresh_s` ago (or is unknown)
        cached = self._limits.get(project_id)
        return cached is None or now - cached[0] >= self._refresh_s

    def _limit(self, project_id: int, *, fresh: bool = False) -> int | None:
        now = self._clock()
        with self._lock:
            cached = self._limits.get(project_id)
            if not fresh and cached is not None and now - cached[0] < self._environments_ttl_s:
                return cached[1]
        try:
            limit = project_limit(self._environments(project_id))
        except Exception as exc:  # the lookup is the caller's I/O: any failure admits
            log.warning(
                "monitor quota: environments unknown, admitting",
                extra={"project_id": project_id, "error": str(exc)},
            )
            return None
        finally:
            with self._lock:
                self._refreshing.pop(project_id, None)
        with self._lock:
            self._limits[project_id] = (now, limit)
            self._limits.move_to_end(project_id)
            while len(self._limits) > self._max_projects:
                self._limits.popitem(last=False)
        return limit
