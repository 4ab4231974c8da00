"""`vigil periodic`: the jobs that run on a timer rather than on a message — today the
deactivation of expired custom sampling rules. Each job is harmless to run late, twice,
or from several processes at once."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType

from sqlalchemy import Engine

from vigil.db.engine import is_transient
from vigil.sampling import rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Callable[[Engine, datetime], object]


JOBS: tuple[Job, ...] = (
    Job("sampling-rule-expiry", rules.MAINTENANCE_INTERVAL_S, rules.run_maintenance),
)


def run_once(engine: Engine, now: datetime | None = None) -> None:
    for job in JOBS:
        job.run(engine, now or datetime.now(UTC))


def run_forever(engine: Engine, stop: threading.Event | None = None) -> None:
    """Run every job now and then at its interval, until SIGTERM/SIGINT or `stop`.
    A failing job is logged and tried again at its next turn."""
    stop = stop or threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    due = dict.fromkeys((job.name for job in JOBS), 0.0)  # monotonic deadlines
    while not stop.is_set():
        now = time.monotonic()
        for job in JOBS:
            if now >= due[job.name]:
                try:
                    job.run(engine, datetime.now(UTC))
                except Exception as exc:
                    level = logging.WARNING if is_transient(exc) else logging.ERROR
                    log.log(level, "periodic job failed", exc_info=True, extra={"job": job.name})
                due[job.name] = now + job.every_s
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))
