"""The `ingest-occurrences` consumer (spec A3, A6): occurrences and status changes from
the log become issues.

Batched mode (the default): a batch is split by (raw first fingerprint part, project);
the groups run concurrently on worker threads, each group serially, in log order
(`process_occurrence_group`). Single mode: every message on its own, in log order.

Each message is applied wholly or not at all. Batched mode's dedupe: an occurrence the
project has stored is skipped, and so is a status change whose id was applied in the
last 300 s (its id is recorded in the transaction that applies it). Batched mode
applies up to `CHUNK_MESSAGES` consecutive messages in one transaction;
if one of them fails, the chunk is rolled back and redone one message per transaction,
as single mode always does, so a bad message is still rejected alone. An occurrence
whose id is already stored is never applied twice, in either mode, so replaying a batch
after a crash changes nothing.

A message that cannot be applied (malformed, unknown project, missing event, an
unsupported status, ...) is returned to the runner as `Rejected`, which dead-letters it
with the reason; the rest of its group is still applied (unlike the reference, which
drops the rest of the group). A passing database outage is raised instead, so that the
runner retries the batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Message
from sqlalchemy import Connection, Engine

from vigil import metrics
from vigil.config import Settings
from vigil.db.engine import is_transient, make_engine
from vigil.issues import dedupe_store, gate_store
from vigil.issues.batching import (
    batch_key,
    deal_by_project,
    is_status_change_payload,
    prune_status_changes,
    prunes_status_changes,
    split_batch,
)
from vigil.issues.enums import PayloadType
from vigil.issues.errors import InvalidEventPayloadError
from vigil.issues.group_types import Quota
from vigil.issues.occurrence import IssueOccurrence
from vigil.issues.occurrence_processing import (
    DEFAULT_PROCESSING,
    GroupInfo,
    OccurrenceProcessing,
    process_occurrence_message,
)
from vigil.issues.projects import UnknownProjectError, memo_loader
from vigil.issues.quota import (
    RATE_LIMIT_ENABLED_OPTION,
    RATE_LIMIT_QUOTA_OPTION,
    occurrence_rate_limit,
)
from vigil.issues.status_change_processing import process_status_change_message
from vigil.issues.writes import ChunkWrites, IssueWrites
from vigil.options import get_option
from vigil.streams.codecs import decode_occurrence_message
from vigil.streams.runner import ConsumerDefinition, Rejected
from vigil.streams.topics import Topic
from vigil.uuid_text import parse_uuid_hex

log = logging.getLogger(__name__)

NAME = "ingest-occurrences"
POSTGRES_WORKERS = 4
CLEANUP_EVERY = timedelta(minutes=1)
# How long the rate-limit options read are used before they are read again: a change
# takes effect within this. Read every batch, the read cost about 2 % of a hot
# fingerprint's throughput on SQLite (a read transaction's start while the WAL grows).
OPTIONS_EVERY = timedelta(seconds=2)
CHUNK_MESSAGES = 500
"""How many consecutive messages share a transaction: a whole batch of the default size.
Most of a commit's cost on SQLite is the index pages it writes, and inserts keyed by
random ids (events, occurrences) dirty about one page each unless many share a
transaction: 100 to 500 a chunk gave 10-20 % more occurrences a second. A
chunk holds SQLite's write lock for about a tenth of a second."""

Clock = Callable[[], datetime]
ProcessedMessage = tuple[IssueOccurrence | None, GroupInfo | None]
"""What applying a message gave: (the occurrence, its group) for an occurrence, (None,
the group) for a status change that changed a group."""


def wall_clock() -> datetime:
    return datetime.now(UTC)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# Errors that mean "this payload is wrong", whatever part of processing noticed it.
_PAYLOAD_ERRORS = (KeyError, ValueError, TypeError, OverflowError, RecursionError)


def _process_message(
    conn: Connection,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
    writes: IssueWrites | None = None,
) -> ProcessedMessage | None:
    """Apply one decoded message in the caller's transaction (spec A3): a status change
    (A5), an occurrence (A3.1-A3.4), or, for any other payload_type, nothing (counted).
    None when nothing resulted. A malformed payload raises InvalidEventPayloadError;
    UnknownProjectError, EventLookupError, EventPayloadValidationError and
    UnsupportedStatusError propagate, as do database errors. `writes`: how occurrences
    read and write rows (default: at once)."""
    kind = payload.get("payload_type", PayloadType.OCCURRENCE)
    try:
        if kind == PayloadType.STATUS_CHANGE:
            if isinstance(writes, ChunkWrites):
                # Status changes read and write groups and hashes themselves: what the
                # chunk holds is written first, and groups are read again after.
                writes.flush()
                writes.forget_groups()
            grp = process_status_change_message(
                conn, payload, now=now, load=processing.load_project
            )
            if grp is None:
                return None
            return (None, GroupInfo(grp, is_new=False, is_regression=False))
        if kind == PayloadType.OCCURRENCE:
            result = process_occurrence_message(
                conn, payload, now=now, processing=processing, writes=writes
            )
            if result is None:
                return None
            return (result.occurrence, result.group_info)
    except _PAYLOAD_ERRORS as exc:
        raise InvalidEventPayloadError(_reason(exc)) from exc
    metrics.ISSUE_MESSAGES.labels("dropped_invalid_payload_type").inc()
    log.info("message with an unknown payload_type dropped", extra={"payload_type": str(kind)})
    return None


@dataclass(frozen=True)
class Failure:
    """A message of a group that was not applied: its position in the group as given,
    and why."""

    index: int
    reason: str


@dataclass(frozen=True)
class _DedupeTarget:
    """What a message is deduplicated by: its project and raw id, and for an occurrence
    the id it is stored under (None for a status change)."""

    project_id: int
    message_id: str
    occurrence_id: str | None


def _dedupe_target(payload: Mapping[str, Any]) -> _DedupeTarget | None:
    # None when the message lacks a usable project or id, or is of an unknown kind: no
    # dedupe (an occurrence whose id does not parse is rejected by its validation).
    message_id = payload.get("id")
    project_id = payload.get("project_id")
    kind = payload.get("payload_type", PayloadType.OCCURRENCE)
    if not isinstance(project_id, int) or isinstance(project_id, bool):
        return None
    if kind == PayloadType.OCCURRENCE:
        occurrence_id = parse_uuid_hex(message_id)
        if occurrence_id is None:
            return None
        return _DedupeTarget(project_id, str(message_id), occurrence_id)
    if kind != PayloadType.STATUS_CHANGE:
        return None
    if message_id is None or isinstance(message_id, dict | list):
        return None
    return _DedupeTarget(project_id, str(message_id), None)


def _already_applied(writes: IssueWrites, target: _DedupeTarget, now: datetime) -> bool:
    # An occurrence's own stored row is its record (any time since, not only within the
    # window): a second row per occurrence, keyed by a random id, was a tenth of the
    # consumer's writes. A status change stores nothing of its own: its id is recorded.
    if target.occurrence_id is not None:
        return writes.occurrence_exists(target.occurrence_id, target.project_id)
    return writes.was_processed(target.project_id, target.message_id, now)


def apply_one(
    engine: Engine,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
    dedupe: bool = True,
) -> ProcessedMessage | None:
    """Apply one message in its own transaction. With `dedupe`, an occurrence the
    project has stored, or a status change whose id was applied for its project within
    the window, is skipped, and a status change's id is recorded."""
    with engine.begin() as conn:
        return _apply_in(
            conn, payload, now=now, processing=processing, dedupe=dedupe, writes=IssueWrites(conn)
        )


def _apply_in(
    conn: Connection,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    processing: OccurrenceProcessing,
    dedupe: bool,
    writes: IssueWrites,
) -> ProcessedMessage | None:
    # One message in the caller's transaction, deduplicated by id (see apply_one).
    target = _dedupe_target(payload) if dedupe else None
    if target is not None and _already_applied(writes, target, now):
        metrics.ISSUE_MESSAGES.labels("duplicate").inc()
        return None
    result = _process_message(conn, payload, now=now, processing=processing, writes=writes)
    if target is not None and target.occurrence_id is None:
        writes.mark_processed(target.project_id, target.message_id, now)
    return result


def _apply_guarded(
    engine: Engine,
    index: int,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    processing: OccurrenceProcessing,
    dedupe: bool,
) -> Failure | None:
    try:
        apply_one(engine, payload, now=now, processing=processing, dedupe=dedupe)
    except Exception as exc:
        if is_transient(exc):
            raise
        outcome = "unknown_project" if isinstance(exc, UnknownProjectError) else "rejected"
        metrics.ISSUE_MESSAGES.labels(outcome).inc()
        if not isinstance(exc, InvalidEventPayloadError | UnknownProjectError):
            log.warning("occurrence message not applied", extra={"reason": _reason(exc)})
        return Failure(index, _reason(exc))
    return None


def process_occurrence_group(
    engine: Engine,
    items: Sequence[Mapping[str, Any]],
    *,
    clock: Clock = wall_clock,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
) -> list[Failure]:
    """Apply the messages of one (fingerprint, project) group serially (spec A6): with
    the organization's pruning feature (either spelling), only the last status change is
    kept and moved after the occurrences; each message is deduplicated by id; messages
    are applied in chunks (see `_apply_chunk`). A message that fails is returned as a
    Failure and the rest of the group is still applied. A passing database outage is raised."""
    return process_occurrence_groups(engine, [items], clock=clock, processing=processing)[0]


def process_occurrence_groups(
    engine: Engine,
    groups: Sequence[Sequence[Mapping[str, Any]]],
    *,
    clock: Clock = wall_clock,
    processing: OccurrenceProcessing = DEFAULT_PROCESSING,
) -> list[list[Failure]]:
    """Apply several (fingerprint, project) groups one after the other, each as
    `process_occurrence_group` does; a chunk may hold the end of one group and the start
    of the next (with many small groups, most of the cost was one transaction each).
    The failures of each group, by position in that group."""
    features: dict[int, frozenset[str]] = {}
    ordered = [
        (number, index, payload)
        for number, items in enumerate(groups)
        for index, payload in _group_order(engine, items, processing, features)
    ]
    failures: list[list[Failure]] = [[] for _ in groups]
    for start in range(0, len(ordered), CHUNK_MESSAGES):
        chunk = ordered[start : start + CHUNK_MESSAGES]
        flat = [(position, payload) for position, (_, _, payload) in enumerate(chunk)]
        for failure in _apply_chunk(engine, flat, clock=clock, processing=processing):
            number, index, _ = chunk[failure.index]
            failures[number].append(Failure(index, failure.reason))
    return failures


def _group_order(
    engine: Engine,
    items: Sequence[Mapping[str, Any]],
    processing: OccurrenceProcessing,
    features: dict[int, frozenset[str]],
) -> list[tuple[int, Mapping[str, Any]]]:
    # A group's messages as they are to be applied, with their positions (status changes
    # pruned with the organization's feature). `features`: the projects' features read
    # so far in this batch.
    if not items:
        return []
    indexed = list(enumerate(items))
    project_id = batch_key(items[0])[1]
    if project_id is not None and project_id not in features:
        try:
            with engine.execution_options(readonly=True).connect() as conn:
                features[project_id] = processing.load_project(conn, project_id).features
        except UnknownProjectError:
            # each message is dead-lettered with the reason on its own turn
            features[project_id] = frozenset()
    known = frozenset() if project_id is None else features[project_id]
    if prunes_status_changes(known):
        pruned = prune_status_changes(indexed, lambda item: is_status_change_payload(item[1]))
        if pruned.dropped:
            metrics.ISSUE_MESSAGES.labels("pruned_status_change").inc(pruned.dropped)
        indexed = pruned.items
    return indexed


class _ChunkFailed(Exception):
    """A message of a chunk could not be applied: the chunk is redone one by one."""


def _apply_chunk(
    engine: Engine,
    chunk: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    clock: Clock,
    processing: OccurrenceProcessing,
) -> list[Failure]:
    """Apply consecutive messages of a group in one transaction (each deduplicated by id,
    as `apply_one` does), reading and writing their rows set-wise (`ChunkWrites`): the
    per-message transaction, then the per-row statement, was most of a message's cost.
    If any message fails for a reason other than a passing outage, or a held write fails
    when it is made, nothing of the chunk is kept and its messages are applied again one
    per transaction, so that only the bad one is rejected and the rest are applied
    exactly as they would have been alone."""
    try:
        with engine.begin() as conn:
            writes = ChunkWrites(conn)
            try:
                writes.read_ahead(payload for _, payload in chunk)
                for _, payload in chunk:
                    _apply_in(
                        conn,
                        payload,
                        now=clock(),
                        processing=processing,
                        dedupe=True,
                        writes=writes,
                    )
                writes.flush()
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise _ChunkFailed from exc
        return []
    except _ChunkFailed:
        metrics.ISSUE_CHUNKS_REDONE.inc()
        failures = []
        for index, payload in chunk:
            failure = _apply_guarded(
                engine, index, payload, now=clock(), processing=processing, dedupe=True
            )
            if failure is not None:
                failures.append(failure)
        return failures


class OccurrenceConsumer:
    """The state one consumer process keeps between batches: the database engine and the
    worker threads, made on the first batch; `close()` releases them."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = wall_clock,
        processing: OccurrenceProcessing = DEFAULT_PROCESSING,
    ) -> None:
        self.settings = settings
        self.batched = settings.occurrence_mode == "batched"
        self.workers = settings.occurrence_workers or (
            POSTGRES_WORKERS if settings.resolved_database_url.startswith("postgresql") else 1
        )
        self._clock = clock
        self._base_processing = processing
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._last_cleanup: datetime | None = None
        self._options: tuple[datetime, Quota | None] | None = None

    def definition(self) -> ConsumerDefinition[dict[str, Any]]:
        return ConsumerDefinition(
            name=NAME, topic=Topic.INGEST_OCCURRENCES, decode=decode, apply=self.apply
        )

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(self.settings, pool_size=self.workers + 1)
            return self._engine

    def _batch_processing(self, engine: Engine) -> OccurrenceProcessing:
        # The rate-limit options may change at run time: read again every OPTIONS_EVERY
        # (without the write lock: on SQLite a plain connection waits for it).
        now = self._clock()
        if self._options is None or now - self._options[0] >= OPTIONS_EVERY:
            with engine.execution_options(readonly=True).connect() as conn:
                enabled = get_option(conn, RATE_LIMIT_ENABLED_OPTION, False)
                quota = get_option(conn, RATE_LIMIT_QUOTA_OPTION)
            self._options = (now, occurrence_rate_limit(enabled, quota))
        return replace(
            self._base_processing, rate_limit=self._options[1], load_project=memo_loader()
        )

    def apply(self, messages: Sequence[Message[dict[str, Any]]]) -> list[Rejected]:
        """Apply a batch; returns the messages to dead-letter, by position."""
        engine = self.engine
        processing = self._batch_processing(engine)
        payloads = [message.payload for message in messages]
        if not self.batched:
            rejected = []
            for index, payload in enumerate(payloads):
                failure = _apply_guarded(
                    engine,
                    index,
                    payload,
                    now=self._clock(),
                    processing=processing,
                    dedupe=False,
                )
                if failure is not None:
                    rejected.append(Rejected(failure.index, failure.reason))
            # Single mode uses the gates too: their expired rows go the same way.
            self._forget_expired(engine)
            return rejected
        groups = split_batch(list(enumerate(payloads)), lambda item: batch_key(item[1]))
        results = self._run_groups(engine, groups, processing)
        rejected = [
            Rejected(group[failure.index][0], failure.reason)
            for group, failures in zip(groups, results, strict=True)
            for failure in failures
        ]
        self._forget_expired(engine)
        return sorted(rejected, key=lambda r: r.index)

    def _forget_expired(self, engine: Engine) -> None:
        # The dedupe record every batch (its index makes that cheap); noise counters and
        # quota buckets, which take a scan, at most once a minute.
        now = self._clock()
        with engine.begin() as conn:
            dedupe_store.forget_expired(conn, now)
            if self._last_cleanup is None or now - self._last_cleanup >= CLEANUP_EVERY:
                gate_store.forget_expired(conn, now)
                self._last_cleanup = now

    def _run_groups(
        self,
        engine: Engine,
        groups: list[list[tuple[int, dict[str, Any]]]],
        processing: OccurrenceProcessing,
    ) -> list[list[Failure]]:
        if self.workers <= 1 or len(groups) <= 1:
            return process_occurrence_groups(
                engine,
                [[payload for _, payload in group] for group in groups],
                clock=self._clock,
                processing=processing,
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vigil-occurrences")
        shares = deal_by_project(groups, self.workers)

        def run_share(share: list[int]) -> list[list[Failure]]:
            return process_occurrence_groups(
                engine,
                [[payload for _, payload in groups[number]] for number in share],
                clock=self._clock,
                processing=processing,
            )

        futures = [self._pool.submit(run_share, share) for share in shares]
        # Wait for every share before raising: a retried batch must not run beside
        # groups still applying.
        wait(futures)
        results: list[list[Failure]] = [[] for _ in groups]
        for share, future in zip(shares, futures, strict=True):
            for number, failures in zip(share, future.result(), strict=True):
                results[number] = failures
        return results

    def close(self) -> None:
        """Release the worker threads and database connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


def decode(payload: KafkaPayload) -> dict[str, Any]:
    """A message's JSON object (CodecError for anything else: dead-lettered)."""
    return decode_occurrence_message(payload.value)


def ingest_occurrences(settings: Settings) -> ConsumerDefinition[dict[str, Any]]:
    """The registry's factory: a consumer whose resources live as long as the process."""
    return OccurrenceConsumer(settings).definition()
