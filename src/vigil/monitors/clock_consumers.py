"""The clock's two consumers (B7.3) and the clock's sources (B7.1, B7.2).

- `monitors-clock-tick`: per tick, in order: the system-incident evaluation (B9), then
  `mark_missing` tasks, then `mark_timeout` tasks — or, while the decision is INCIDENT
  and `crons.system_incidents.use_decisions` is on, `mark_unknown` tasks — produced to
  `monitors-clock-tasks` keyed by monitor environment, so each environment's tasks stay
  in order.
- `monitors-clock-tasks`: runs the tasks up to TASKS_PER_TRANSACTION per transaction,
  each in a savepoint (as if alone); monitor-failure occurrences are written to the
  outbox (`vigil.streams.outbox`) in that transaction, and the batch is only committed
  once the outbox is flushed to the log.

The sources: `ClockTicker.batch_applied` (after each applied batch of `ingest-monitors`,
from its newest message per partition), `ClockTicker.idle_tick` (wall time, only while
every partition of `ingest-monitors` is caught up) and `ClockTicker.pulse` (a clock pulse
into every partition, on Kafka).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Message, Partition
from arroyo.types import Topic as LogTopic
from sqlalchemy import Connection, Engine

from vigil import metrics
from vigil.config import Settings
from vigil.db.engine import is_transient
from vigil.issues.produce import outbox_row
from vigil.monitors import clock_store, clock_tasks
from vigil.monitors.clock import as_datetime, idle_positions, minute_of
from vigil.monitors.clock_incident_occurrences import queued_messages
from vigil.monitors.clock_resources import CLOCK_BATCH_TIME_MS, Resources, Sent
from vigil.monitors.system_incidents import Decision
from vigil.options import get_option
from vigil.streams import outbox
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import (
    ClockPulse,
    ClockTask,
    ClockTick,
    decode_clock_task,
    decode_clock_tick,
    encode_clock_task,
    encode_clock_tick,
    encode_incident_occurrence,
    encode_monitor_message,
)
from vigil.streams.runner import ConsumerDefinition
from vigil.streams.topics import Topic

log = logging.getLogger(__name__)

TICK_CONSUMER: Final = "monitors-clock-tick"
TASKS_CONSUMER: Final = "monitors-clock-tasks"
INGEST_MONITORS_GROUP: Final = "ingest-monitors"
# Wall time is taken this much behind "now" when it moves an idle clock: a message the
# log stamped just before "now" may take a moment to become visible in the lag.
IDLE_GRACE_S: Final = 0.25

# --- the clock's sources ---------------------------------------------------------------


class ClockTicker:
    """Moves the clock (B7.2) and dispatches its ticks to `monitors-clock-tick`."""

    def __init__(
        self, settings: Settings, engine: Engine | None = None, backend: LogBackend | None = None
    ) -> None:
        self._res = Resources(settings, backend)
        self._engine = engine
        self._topics_ready = False

    @property
    def engine(self) -> Engine:
        return self._engine if self._engine is not None else self._res.engine

    def _backend(self) -> LogBackend:
        """The log, with the pipeline's topics made sure of once (the wall-time sources
        may run before any consumer created them)."""
        backend = self._res.backend
        if not self._topics_ready:
            backend.ensure_topics()
            self._topics_ready = True
        return backend

    def _dispatch(self, tick: int) -> None:
        sent: Sent = []
        self._res.send(sent, Topic.MONITORS_CLOCK_TICK, encode_clock_tick(ClockTick(tick)), None)
        self._res.wait(sent)
        metrics.CLOCK_TICKS.inc()
        metrics.CLOCK_LAST_TICK.set(tick)
        metrics.CLOCK_TICK_DELAY.set(max(0.0, time.time() - tick))

    def batch_applied(
        self, latest: Mapping[int, datetime], volume: Mapping[int, int] | None = None
    ) -> list[int]:
        """After a batch of `ingest-monitors` was applied: record its check-in volume per
        minute and move each partition to its newest message's minute; returns the
        minutes ticked."""
        return clock_store.try_clock_tick(self.engine, latest, self._dispatch, volume)

    def idle_tick(self, now: datetime | None = None) -> list[int]:
        """Wall time moves the clock when the log is idle: if the `ingest-monitors`
        consumer has applied everything in every partition, every partition moves to
        the current minute. The lag is read after `now`, so no message stamped before
        `now` is still waiting."""
        moment = (datetime.now(UTC) if now is None else now) - timedelta(seconds=IDLE_GRACE_S)
        settings = self._res.settings
        backend = self._backend()
        partitions = backend.partition_count(settings.topic(Topic.INGEST_MONITORS))
        lag = backend.lag(
            settings.topic(INGEST_MONITORS_GROUP), settings.topic(Topic.INGEST_MONITORS)
        )
        moved = idle_positions(partitions, moment.timestamp(), lag)
        if not moved:
            return []
        # Most calls find the minute already ticked: decide that without a write
        # transaction (on SQLite a write would queue behind every writer).
        with self.engine.execution_options(readonly=True).connect() as conn:
            last = clock_store.last_tick(conn)
        if last is not None and minute_of(moment.timestamp()) <= last:
            return []
        with self.engine.begin() as conn:
            due = clock_store.advance(conn, moved)
            for tick in due:
                self._dispatch(tick)
        return due

    def pulse(self) -> None:
        """B7.1: a clock pulse into every partition of `ingest-monitors`, so that each
        partition's clock advances without check-ins."""
        settings = self._res.settings
        topic = settings.topic(Topic.INGEST_MONITORS)
        count = self._backend().partition_count(topic)
        producer = self._res.producer
        value = encode_monitor_message(ClockPulse())
        futures = [
            producer.produce(Partition(LogTopic(topic), index), KafkaPayload(None, value, []))
            for index in range(count)
        ]
        self._res.wait(futures)

    def close(self) -> None:
        self._res.close()


# --- monitors-clock-tick -----------------------------------------------------------------


class ClockTickConsumer:
    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self._res = Resources(settings, backend)

    def definition(self) -> ConsumerDefinition[ClockTick]:
        return ConsumerDefinition(
            name=TICK_CONSUMER,
            topic=Topic.MONITORS_CLOCK_TICK,
            decode=lambda raw: decode_clock_tick(raw.value),
            apply=self.apply,
            max_batch_time_ms=CLOCK_BATCH_TIME_MS,
        )

    def apply(self, messages: Sequence[Message[ClockTick]]) -> None:
        sent: Sent = []
        for message in messages:
            self.process_tick(minute_of(message.payload.ts), sent)
        self._res.wait(sent)

    def process_tick(self, tick: int, sent: Sent) -> None:
        """B7.3 for one tick: evaluate, then dispatch the tasks."""
        at = as_datetime(tick)
        engine = self._res.engine
        decision = Decision.NORMAL
        use_decisions = False
        try:
            with engine.begin() as conn:
                options = clock_store.read_options(conn)
                use_decisions = options.use_decisions
                decision = clock_store.evaluate_tick(conn, tick, options).decision
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("system incident evaluation failed", extra={"tick": tick})
        metrics.CLOCK_DECISION.set(_DECISION_VALUES[decision])
        with engine.execution_options(readonly=True).connect() as conn:
            tasks = clock_tasks.dispatch_check_missing(conn, at)
            if use_decisions and decision == Decision.INCIDENT:
                tasks += clock_tasks.dispatch_mark_unknown(conn, at)
            else:
                tasks += clock_tasks.dispatch_check_timeout(conn, at)
        for task in tasks:
            self._res.send(
                sent,
                Topic.MONITORS_CLOCK_TASKS,
                encode_clock_task(task),
                str(task.monitor_environment_id),
            )

    def close(self) -> None:
        self._res.close()


_DECISION_VALUES: Final = {
    Decision.NORMAL: 0,
    Decision.ABNORMAL: 1,
    Decision.RECOVERING: 2,
    Decision.INCIDENT: 3,
}


# --- monitors-clock-tasks ----------------------------------------------------------------


class ClockTasksConsumer:
    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self._res = Resources(settings, backend)

    def definition(self) -> ConsumerDefinition[ClockTask]:
        return ConsumerDefinition(
            name=TASKS_CONSUMER,
            topic=Topic.MONITORS_CLOCK_TASKS,
            decode=lambda raw: decode_clock_task(raw.value),
            apply=self.apply,
            max_batch_time_ms=CLOCK_BATCH_TIME_MS,
            min_batch_size=TASKS_PER_BATCH,
        )

    def apply(self, messages: Sequence[Message[ClockTask]]) -> None:
        """Run the batch's tasks, then flush the outbox: returns (letting the batch
        commit) once every occurrence the tasks decided is acknowledged by the log."""
        with self._res.engine.execution_options(readonly=True).connect() as conn:
            queue = get_option(conn, clock_store.DISPATCH_OCCURRENCES, False) is True
        tasks = [message.payload for message in messages]
        try:
            for start in range(0, len(tasks), TASKS_PER_TRANSACTION):
                self.run_tasks(tasks[start : start + TASKS_PER_TRANSACTION], queue)
        finally:
            # What committed tasks decided is in the outbox: send it even if a later
            # chunk failed (LogError keeps the rows for the next flush).
            outbox.flush(self._res.engine, self._res.producer, self._res.settings)

    def run_tasks(self, tasks: Sequence[ClockTask], queue: bool = False) -> None:
        """Tasks in order, in one transaction, each as if alone: a task's writes are in
        a savepoint, so one that fails (other than by a passing database outage, which
        is raised and the whole chunk retried) is logged and skipped and leaves nothing
        behind (B7.3): one environment's broken schedule must not hold up the others.
        The `mark_missing` tasks' environments, monitors, active incidents and last OK
        times are read up front for the chunk (`clock_tasks.MissingChunk`).

        A task's occurrences go to the outbox in the transaction (for
        `ingest-occurrences`, or with `queue` — option
        `crons.dispatch_incident_occurrences_to_consumer` — as
        `monitors-incident-occurrences` messages, held there while the tick's decision
        is pending, B8.1), so a failure that committed always gets its occurrences."""
        rows: list[tuple[str, bytes | str | None, bytes]] = []
        with self._res.engine.begin() as conn:
            chunk = _prefetch(conn, tasks)
            for task in tasks:
                if chunk is not None and not queue and task.type == "mark_missing":
                    ts = datetime.fromtimestamp(task.ts, UTC)
                    try:
                        if chunk.defer(task.monitor_environment_id, ts):
                            continue
                    except Exception as exc:
                        _failed(task, exc)
                        chunk.forget(task.monitor_environment_id)
                        continue
                # What follows may read what the deferred misses write.
                rows += _flush(conn, chunk, queue)
                rows += _run_in_savepoint(conn, task, queue, chunk)
            rows += _flush(conn, chunk, queue)
            outbox.enqueue_many(conn, rows)

    def close(self) -> None:
        self._res.close()


# Clock tasks applied per transaction: bounds how long one chunk holds SQLite's write
# lock (as the ingest-monitors consumer's chunks of check-ins).
TASKS_PER_TRANSACTION: Final = 200
# Clock tasks per batch at least (more with a larger VIGIL_BATCH_SIZE): a burst of misses
# then flushes its occurrences, and commits its offsets, a few times instead of once
# per 500 tasks, and the occurrences reach ingest-occurrences (which competes for the
# cores and SQLite's write lock) in a few larger lumps. 10,000 misses at once were
# visible in 4.1-4.9 s under `vigil serve` instead of 5.4-6.1 s (BENCHMARKS.md).
TASKS_PER_BATCH: Final = 2000


def _prefetch(conn: Connection, tasks: Sequence[ClockTask]) -> clock_tasks.MissingChunk | None:
    """What the chunk's `mark_missing` tasks need, read (and locked) up front; None (each
    task reads its own) if there are none or that read fails."""
    missing = [t for t in tasks if t.type == "mark_missing"]
    try:
        with conn.begin_nested():
            # The chunk's check-ins (timeouts, unknowns) are locked before its
            # environments: the order the ingest-monitors consumer locks in, so the two
            # never wait on each other (PostgreSQL; SQLite's write transaction already
            # excludes other writers).
            clock_tasks.lock_checkins(
                conn, [t.checkin_id for t in tasks if t.checkin_id is not None]
            )
            if not missing:
                return None
            tick = datetime.fromtimestamp(max(t.ts for t in missing), UTC)
            return clock_tasks.MissingChunk.prefetch(
                conn, {t.monitor_environment_id for t in missing}, tick
            )
    except Exception as exc:
        if is_transient(exc):
            raise
        log.exception("clock tasks: reading the chunk up front failed")
        return None


OutboxRows = list[tuple[str, bytes | str | None, bytes]]


def _failed(task: ClockTask, exc: Exception) -> None:
    """A task that failed: raised again if the database is passing through an outage
    (the chunk is retried), else logged (the task is skipped)."""
    if is_transient(exc):
        raise exc
    log.exception(
        "clock task failed",
        extra={"type": task.type, "monitor_environment_id": task.monitor_environment_id},
    )


def _run_in_savepoint(
    conn: Connection, task: ClockTask, queue: bool, chunk: clock_tasks.MissingChunk | None
) -> OutboxRows:
    """One task as if alone: its writes are kept only if all of it succeeded."""
    try:
        with conn.begin_nested():
            return _run_one(conn, task, queue, chunk)
    except Exception as exc:
        _failed(task, exc)
        if chunk is not None:
            chunk.forget(task.monitor_environment_id)
        return []


def _flush(conn: Connection, chunk: clock_tasks.MissingChunk | None, queue: bool) -> OutboxRows:
    """Write the chunk's deferred misses; if that fails, run them one by one instead (so
    only the task that cannot be applied is skipped)."""
    if chunk is None or not chunk.pending:
        return []
    pending = chunk.pending_envs()
    try:
        with conn.begin_nested():
            produced = chunk.flush(conn)
    except Exception as exc:
        if is_transient(exc):
            raise
        log.exception("clock tasks: writing the chunk's misses failed; one by one instead")
        rows: OutboxRows = []
        for env_id, ts in pending:
            task = ClockTask("mark_missing", ts.timestamp(), env_id)
            rows += _run_in_savepoint(conn, task, queue, chunk)
        return rows
    return [outbox_row(p, k) for p, k in produced]


def _run_one(
    conn: Connection, task: ClockTask, queue: bool, chunk: clock_tasks.MissingChunk | None
) -> OutboxRows:
    """Run one task; the outbox rows of its occurrences."""
    ts = datetime.fromtimestamp(task.ts, UTC)
    produced: list[tuple[dict[str, Any], str]] = []

    def collect(payload: dict[str, Any], key: str) -> None:
        produced.append((payload, key))

    if chunk is not None and task.type != "mark_missing":
        chunk.forget(task.monitor_environment_id)  # it may change the environment
    failed_id = _run(conn, task, ts, collect, chunk)
    if queue and produced and failed_id is not None:
        payloads = [p for p, _ in produced]
        key = str(task.monitor_environment_id)
        return [
            (Topic.MONITORS_INCIDENT_OCCURRENCES, key, encode_incident_occurrence(i))
            for i in queued_messages(conn, failed_id, payloads, ts, ts)
        ]
    return [outbox_row(p, k) for p, k in produced]


def _run(
    conn: Connection,
    task: ClockTask,
    ts: datetime,
    produce: Callable[[dict[str, Any], str], None],
    chunk: clock_tasks.MissingChunk | None = None,
) -> int | None:
    """Run the task; the id of the check-in that failed, if one did."""
    if task.type == "mark_missing":
        return clock_tasks.mark_environment_missing(
            conn, task.monitor_environment_id, ts, produce, chunk
        )
    if task.type == "mark_timeout":
        assert task.checkin_id is not None
        if clock_tasks.mark_checkin_timeout(conn, task.checkin_id, ts, produce):
            return task.checkin_id
        return None
    if task.type == "mark_unknown":
        assert task.checkin_id is not None
        clock_tasks.mark_checkin_unknown(conn, task.checkin_id)
        return None
    log.error("unknown clock task type", extra={"type": task.type})  # the codec admits none
    return None


def clock_tick(settings: Settings) -> ConsumerDefinition[ClockTick]:
    return ClockTickConsumer(settings).definition()


def clock_tasks_consumer(settings: Settings) -> ConsumerDefinition[ClockTask]:
    return ClockTasksConsumer(settings).definition()
