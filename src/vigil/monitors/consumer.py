"""The `ingest-monitors` consumer (B4.2): check-ins from the log into the database.

Decode (msgpack, the check-in JSON inside it), then per batch either

- `process_serial`: the check-ins in log order (one worker), or
- batched-parallel: the check-ins are split by `processing_key` (arrival order kept),
  the key groups dealt to `VIGIL_CHECKIN_WORKERS` threads (`shares`), each thread
  applying its groups serially by `process_checkin_group`, different threads at once.

Clock pulses are decoded and otherwise ignored (the crons clock uses their timestamps).
A check-in that fails with an unexpected error (not a processing error) is logged, as
the reference does, and dead-lettered with the reason, rather than lost.

Monitor-failure occurrences and resolving status changes are written to the outbox
(`vigil.streams.outbox`) in the transaction that decided them; `apply` then flushes the
outbox to `ingest-occurrences` and returns (letting the runner commit the batch's offsets)
only after the log acknowledged every pending row. If the log refuses, `apply` raises and
the rows stay for the next flush (the next batch's, or `vigil periodic`'s), so an
occurrence whose check-in committed is never lost. One producer serves the whole
consumer process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Message
from sqlalchemy import Engine

from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.monitors.checkin_processing import (
    CheckinProcessing,
    DroppedCheckin,
    process_checkin,
    process_checkins,
)
from vigil.monitors.checkin_rate_limit import MinuteRateLimiter
from vigil.monitors.clock import minute_counts
from vigil.monitors.clock_consumers import ClockTicker
from vigil.monitors.processing_errors import CheckinItem
from vigil.monitors.slugs import processing_key
from vigil.options import CRONS_DISABLE_CHECKIN, get_option, killswitch_organizations
from vigil.streams import outbox
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.codecs import (
    CheckInMessage,
    ClockPulse,
    decode_monitor_message,
)
from vigil.streams.runner import ACK_TIMEOUT_S, ConsumerDefinition, Rejected
from vigil.streams.topics import Topic

log = logging.getLogger(__name__)

NAME: Final = "ingest-monitors"
# How long an operator's killswitch change may take to reach a running consumer.
KILLSWITCH_CACHE_S: Final = 5.0
# VIGIL_CHECKIN_WORKERS=0 means this many on PostgreSQL (SQLite: 1).
POSTGRES_WORKERS: Final = 4


# --- decoding ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodedCheckIn:
    """A check-in message and its JSON payload, both checked at decode time so that a
    message whose payload is not a JSON object is dead-lettered, not dropped."""

    message: CheckInMessage
    payload: dict[str, Any]

    def message_map(self) -> dict[str, Any]:
        """The message as Relay wrote it (what a processing error shows)."""
        m = self.message
        return {
            "message_type": "check_in",
            "payload": m.payload,
            "start_time": m.start_time,
            "project_id": m.project_id,
            "sdk": m.sdk,
            "retention_days": m.retention_days,
        }


MonitorItem = ClockPulse | DecodedCheckIn


def decode(raw: KafkaPayload) -> MonitorItem:
    """An `ingest-monitors` message; CodecError (⇒ dead letter) if it is not one."""
    message = decode_monitor_message(raw.value)
    if isinstance(message, ClockPulse):
        return message
    return DecodedCheckIn(message, message.payload_json())


def log_time(message: Message[Any]) -> datetime:
    """The message's log timestamp (aware UTC); the log gives naive UTC."""
    ts = message.timestamp
    if ts is None:  # only messages not from a log (never in the runner)
        return datetime.now(UTC)
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def partition_of(message: Message[Any]) -> int:
    value = message.value
    return value.partition.index if isinstance(value, BrokerValue) else 0


def checkin_item(message: Message[MonitorItem]) -> CheckinItem | None:
    """The check-in of a message with its log time and partition; None for a pulse."""
    decoded = message.payload
    if isinstance(decoded, ClockPulse):
        return None
    return CheckinItem(
        log_time(message), partition_of(message), decoded.message_map(), decoded.payload
    )


def latest_timestamps(messages: Sequence[Message[MonitorItem]]) -> dict[int, datetime]:
    """{partition: the newest log timestamp of the batch's messages on it}, clock pulses
    included: what the crons clock (B7.2) ticks from, once per partition per batch."""
    latest: dict[int, datetime] = {}
    for message in messages:
        partition, ts = partition_of(message), log_time(message)
        if partition not in latest or ts > latest[partition]:
            latest[partition] = ts
    return latest


def group_by_key(items: Sequence[CheckinItem]) -> dict[str, list[CheckinItem]]:
    """The check-ins split by `processing_key`, each group in arrival order."""
    groups: dict[str, list[CheckinItem]] = {}
    for item in items:
        key = processing_key(
            int(item.message["project_id"]),
            str(item.payload.get("monitor_slug", "")),
            item.payload.get("environment"),
        )
        groups.setdefault(key, []).append(item)
    return groups


def shares(groups: Sequence[Sequence[CheckinItem]], workers: int) -> list[list[CheckinItem]]:
    """The key groups dealt to at most `workers` workers, largest first to the least
    loaded; each share is its groups one after the other, so every key's check-ins stay
    in order and in one worker (a share is applied like one key's group, in as few
    transactions as `process_checkins` allows)."""
    loads: list[list[CheckinItem]] = [[] for _ in range(max(1, min(workers, len(groups))))]
    for group in sorted(groups, key=len, reverse=True):
        min(loads, key=len).extend(group)
    return [share for share in loads if share]


# --- the two modes -------------------------------------------------------------------


def process_single(
    engine: Engine, message: Message[MonitorItem], processing: CheckinProcessing
) -> list[DroppedCheckin]:
    """Serial mode, one message: a clock pulse does nothing here; a check-in is applied.
    Returns the check-in if it was dropped (see `process_checkins`)."""
    item = checkin_item(message)
    return [] if item is None else process_checkin(engine, item, processing)


def process_serial(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> list[DroppedCheckin]:
    """Serial mode: the batch's check-ins (`checkin_item` of its messages, pulses left
    out) in log order, as `process_single` would apply them one by one, in as few
    transactions as `process_checkins` allows."""
    return process_checkins(engine, items, processing)


def process_checkin_group(
    engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
) -> list[DroppedCheckin]:
    """Check-ins applied one after the other in order: one processing key's group, or a
    worker's share of groups."""
    return process_checkins(engine, items, processing)


# --- the operator's killswitch ---------------------------------------------------------


class KillswitchCache:
    """The organizations whose check-ins are switched off (option
    `crons.organization.disable-check-in`), read at most every `ttl_s` seconds."""

    def __init__(
        self,
        engine: Engine,
        ttl_s: float = KILLSWITCH_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._clock = clock
        self._value: frozenset[int] = frozenset()
        self._read_at: float | None = None

    def get(self) -> frozenset[int]:
        now = self._clock()
        if self._read_at is None or now - self._read_at >= self._ttl_s:
            with self._engine.execution_options(readonly=True).connect() as conn:
                raw = get_option(conn, CRONS_DISABLE_CHECKIN, [])
            self._value = killswitch_organizations(raw)
            self._read_at = now
        return self._value


# --- the consumer ----------------------------------------------------------------------


class CheckinConsumer:
    """The state one consumer process keeps between batches: database engine, producer
    for occurrences, rate-limit counts, killswitch cache, worker threads. Made lazily on
    the first batch; `close()` releases them."""

    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self.settings = settings
        self.workers = settings.checkin_workers or (
            POSTGRES_WORKERS if settings.resolved_database_url.startswith("postgresql") else 1
        )
        self._backend = backend
        self._own_backend = backend is None
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._producer: Producer[KafkaPayload] | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._killswitch: KillswitchCache | None = None
        # one per process: keys are partitioned (see MinuteRateLimiter)
        self._rate_limiter = MinuteRateLimiter()
        self._ticker: ClockTicker | None = None

    def definition(self) -> ConsumerDefinition[MonitorItem]:
        return ConsumerDefinition(
            name=NAME, topic=Topic.INGEST_MONITORS, decode=decode, apply=self.apply
        )

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings, pool_size=self.workers + 1)
            self._killswitch = KillswitchCache(self._engine)
        return self._engine

    def _get_producer(self) -> Producer[KafkaPayload]:
        with self._lock:  # workers may ask at once
            if self._producer is None:
                if self._backend is None:
                    self._backend = get_backend(self.settings)
                self._producer = self._backend.get_producer()
            return self._producer

    def apply(self, messages: Sequence[Message[MonitorItem]]) -> list[Rejected]:
        """Apply a batch (see the module docstring); returns once the outbox is flushed,
        rows left by an earlier batch or process included, with the check-ins dropped for
        an unexpected error, for the runner to dead-letter."""
        engine = self.engine
        assert self._killswitch is not None
        processing = CheckinProcessing(
            killswitch=self._killswitch.get(),
            rate_limiter=self._rate_limiter,
            max_monitors=self.settings.max_monitors_per_org,
            max_environments=self.settings.max_environments_per_monitor,
        )
        positions: dict[int, int] = {}  # id(item) -> its message's index in the batch
        items: list[CheckinItem] = []
        for index, message in enumerate(messages):
            item = checkin_item(message)
            if item is not None:
                positions[id(item)] = index
                items.append(item)
        try:
            if self.workers <= 1:
                dropped = process_serial(engine, items, processing)
            else:
                dropped = self._process_parallel(engine, items, processing)
        except BaseException:
            # What committed groups decided is in the outbox: send it now if the log
            # takes it, without hiding why the batch failed.
            try:
                self.flush()
            except Exception:
                log.warning("outbox not flushed after a failed batch", exc_info=True)
            raise
        self.flush()
        # The one place where each partition's newest message time of the applied batch
        # is known (pulses included): the crons clock ticks from here.
        self.batch_applied(
            latest_timestamps(messages), minute_counts(log_time(m) for m in messages)
        )
        return [Rejected(positions[id(d.item)], d.reason) for d in dropped]

    def flush(self) -> int:
        """Produce the outbox's pending rows and wait for the log (LogError if it refuses;
        the rows stay). Returns how many were produced."""
        return outbox.flush(self.engine, self._get_producer(), self.settings)

    def batch_applied(self, latest: Mapping[int, datetime], volume: Mapping[int, int]) -> None:
        """Called after each applied batch with {partition: newest log timestamp} and
        the batch's messages per minute: records the volume (B9) and moves the crons
        clock (B7.2), dispatching the minutes that tick."""
        # As B4.2 says, a failure here is logged and ignored: the batch's check-ins are
        # applied and must not be applied (or dead-lettered) again for it, and the
        # next batch, or the idle clock, moves the positions on.
        try:
            if self._ticker is None:
                self._ticker = ClockTicker(self.settings, engine=self.engine)
            self._ticker.batch_applied(latest, volume)
        except Exception:
            log.exception("Failed to trigger monitor tasks")

    def _process_parallel(
        self, engine: Engine, items: Sequence[CheckinItem], processing: CheckinProcessing
    ) -> list[DroppedCheckin]:
        groups = group_by_key(items)
        if len(groups) <= 1:
            return [
                dropped
                for group in groups.values()
                for dropped in process_checkin_group(engine, group, processing)
            ]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vigil-checkins")
        futures: list[Future[list[DroppedCheckin]]] = [
            self._pool.submit(process_checkin_group, engine, share, processing)
            for share in shares(list(groups.values()), self.workers)
        ]
        # Wait for every group before raising: a retried batch must not run beside
        # groups still applying.
        wait(futures)
        return [dropped for future in futures for dropped in future.result()]

    def close(self) -> None:
        """Release the producer, worker threads and database connections."""
        if self._ticker is not None:
            self._ticker.close()
            self._ticker = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._producer is not None:
            try:
                self._producer.close().result(timeout=ACK_TIMEOUT_S)
            except Exception as exc:
                log.warning("occurrence producer did not close cleanly", extra={"error": str(exc)})
            self._producer = None
        if self._own_backend and self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def ingest_monitors(settings: Settings) -> ConsumerDefinition[MonitorItem]:
    """The registry's factory: a consumer whose resources live as long as the process."""
    return CheckinConsumer(settings).definition()
