"""`vigil periodic`: the jobs that run on a timer rather than on a message — the
deactivation of expired custom sampling rules, the unignoring of issues ignored for a
time once it is up, and, given the settings, the crons clock's wall-time sources
(`clock_jobs`), the outbox flush for rows a crashed writer left, data retention
(hourly, on a thread of its own) and the issue webhooks' deliveries (on a thread of
their own). Each job is harmless to run late, twice, or from several processes at once
(a webhook's receiver may then get a delivery twice, with the same Request-ID)."""

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

from vigil.config import Settings
from vigil.db.engine import is_transient
from vigil.issues.snooze_processing import expire_snoozes
from vigil.retention import EVERY_S as RETENTION_EVERY_S
from vigil.retention import Retention
from vigil.sampling import rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Callable[[Engine, datetime], object]


# How often issues ignored for a time are checked for that time having come.
SNOOZE_EXPIRY_S = 15.0

JOBS: tuple[Job, ...] = (
    Job("sampling-rule-expiry", rules.MAINTENANCE_INTERVAL_S, rules.run_maintenance),
    Job("issue-snooze-expiry", SNOOZE_EXPIRY_S, expire_snoozes),
)


# How often wall time may move an idle crons clock: a missed run is seen about this
# long after its minute (B7, "clock when the log is idle").
CLOCK_IDLE_TICK_S = 0.5
# Clock pulses into every partition of ingest-monitors (B7.1): under a steady load the
# log is rarely idle, and a partition without check-ins must not hold the clock back.
CLOCK_PULSE_S = 60.0


def clock_jobs(settings: Settings, engine: Engine) -> tuple[tuple[Job, ...], Callable[[], None]]:
    """The crons clock's timer jobs and the function that releases what they hold: the
    idle tick (wall time, only while ingest-monitors is caught up) and the clock
    pulses."""
    from vigil.monitors.clock_consumers import ClockTicker

    ticker = ClockTicker(settings, engine=engine)
    jobs = (
        Job("crons-clock-idle-tick", CLOCK_IDLE_TICK_S, lambda _e, now: ticker.idle_tick(now)),
        Job("crons-clock-pulse", CLOCK_PULSE_S, lambda _e, _now: ticker.pulse()),
    )
    return jobs, ticker.close


# How often the outbox is checked for rows a crashed writer left (vigil.streams.outbox).
OUTBOX_FLUSH_S = 10.0


def settings_jobs(
    settings: Settings, engine: Engine, *, background: bool = True
) -> tuple[tuple[Job, ...], Callable[[], None]]:
    """The jobs that need the settings (the crons clock's, the outbox flush, retention,
    webhooks)
    and the function that releases what they hold. Not `background`, retention runs
    in the caller's thread."""
    from vigil.streams.outbox import PeriodicFlush
    from vigil.webhooks.dispatcher import EVERY_S as WEBHOOKS_EVERY_S
    from vigil.webhooks.dispatcher import WebhookDispatcher

    clock, close_clock = clock_jobs(settings, engine)
    flush = PeriodicFlush(settings)
    retention = Retention(settings.retention_days, background=background)
    webhooks = WebhookDispatcher(settings, background=background)

    def close() -> None:
        try:
            flush.close()
        finally:
            close_clock()

    jobs = (
        *clock,
        Job("outbox-flush", OUTBOX_FLUSH_S, flush),
        Job("retention", RETENTION_EVERY_S, retention),
        Job("issue-webhooks", WEBHOOKS_EVERY_S, webhooks),
    )
    return jobs, close


def run_once(engine: Engine, now: datetime | None = None, settings: Settings | None = None) -> None:
    jobs, close = (
        settings_jobs(settings, engine, background=False)
        if settings is not None
        else ((), _nothing)
    )
    try:
        for job in JOBS + jobs:
            job.run(engine, now or datetime.now(UTC))
    finally:
        close()


def _nothing() -> None:
    pass


def run_forever(
    engine: Engine, stop: threading.Event | None = None, settings: Settings | None = None
) -> None:
    """Run every job now and then at its interval, until SIGTERM/SIGINT or `stop`.
    A failing job is logged and tried again at its next turn. With `settings`, the
    crons clock's jobs and the outbox flush run too."""
    extra, close = settings_jobs(settings, engine) if settings is not None else ((), _nothing)
    try:
        _run_forever(engine, JOBS + extra, stop)
    finally:
        close()


def _run_forever(engine: Engine, jobs: tuple[Job, ...], stop: threading.Event | None) -> None:
    stop = stop or threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
    due = dict.fromkeys((job.name for job in jobs), 0.0)  # monotonic deadlines
    while not stop.is_set():
        now = time.monotonic()
        for job in jobs:
            if now >= due[job.name]:
                try:
                    job.run(engine, datetime.now(UTC))
                except Exception as exc:
                    level = logging.WARNING if is_transient(exc) else logging.ERROR
                    log.log(level, "periodic job failed", exc_info=True, extra={"job": job.name})
                due[job.name] = now + job.every_s
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))
