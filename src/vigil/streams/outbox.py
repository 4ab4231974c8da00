"""A transactional outbox: messages decided inside a database transaction reach the log
even if producing them fails after that transaction committed.

- `enqueue(conn, topic, key, value)` writes the message to the `outbox` table in the
  caller's transaction: it exists exactly when the decision that made it committed.
- `flush(engine, producer, settings)` produces the pending rows in id order, waits for
  the log's acknowledgements and deletes the acknowledged rows. When the log does not
  take a message (unreachable, not acknowledged), flushing stops there (what follows it
  stays behind it, so order per key is kept), the rows stay for the next flush, and
  `LogError` is raised. A message the log refuses for good (over the size limit) is
  *parked* instead: kept with the reason in `refused`, logged and counted as a dead
  letter, and the flush goes on, so one such message never stops its writer. Parked
  rows are tried again by `vigil periodic` (`include_refused`), e.g. after the limit
  was raised.

Delivery is at least once: a flusher that dies between the acknowledgement and the
delete, or two flushers reading the same rows, produce a message twice. Consumers of
the topics written this way must be idempotent (`ingest-occurrences` is: occurrences and
status changes carry ids the issue platform deduplicates). Two flushers never lose a
message: each deletes only ids it produced, and ids are never reused.

Topics are logical names (`vigil.streams.topics.Topic`); the settings' prefix is applied
when the row is produced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from arroyo.backends.abstract import Producer, ProducerFuture
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue
from arroyo.types import Topic as LogTopic
from sqlalchemy import Connection, Engine, Row, delete, func, select, update

from vigil import metrics
from vigil.config import Settings
from vigil.db.tables import outbox
from vigil.streams.backend import LogBackend, LogError, MessageTooLarge, get_backend
from vigil.streams.runner import ACK_TIMEOUT_S

log = logging.getLogger(__name__)

# Rows produced (and awaited) per round of a flush.
FLUSH_BATCH: Final = 500


def enqueue(conn: Connection, topic: str, key: bytes | str | None, value: bytes) -> None:
    """Write one message for the logical `topic` in the caller's transaction."""
    if isinstance(key, str):
        key = key.encode("utf-8")
    conn.execute(
        outbox.insert().values(topic=topic, key=key, value=value, date_added=datetime.now(UTC))
    )


def enqueue_many(conn: Connection, rows: Sequence[tuple[str, bytes | str | None, bytes]]) -> None:
    """`enqueue` for several (topic, key, value) messages, kept in this order."""
    if not rows:
        return
    now = datetime.now(UTC)
    conn.execute(
        outbox.insert(),
        [
            {
                "topic": topic,
                "key": key.encode("utf-8") if isinstance(key, str) else key,
                "value": value,
                "date_added": now,
            }
            for topic, key, value in rows
        ],
    )


def pending(conn: Connection) -> int:
    """How many messages wait to be produced."""
    return int(conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def flush(
    engine: Engine,
    producer: Producer[KafkaPayload],
    settings: Settings,
    *,
    enqueued_before: datetime | None = None,
    include_refused: bool = False,
    timeout_s: float = ACK_TIMEOUT_S,
) -> int:
    """Produce every pending message (with `enqueued_before`, only those enqueued before
    it; parked ones only with `include_refused`) in id order, each acknowledged before
    its row is deleted; returns how many were produced. A message over the size limit
    is parked (see the module docstring) and the flush goes on. Raises LogError, after
    deleting the rows acknowledged before it, when the log does not take a message or
    does not acknowledge it in `timeout_s`; that row and the ones after it stay."""
    produced = 0
    last_id = 0
    while True:
        query = select(outbox).where(outbox.c.id > last_id).order_by(outbox.c.id).limit(FLUSH_BATCH)
        if enqueued_before is not None:
            query = query.where(outbox.c.date_added < enqueued_before)
        if not include_refused:
            query = query.where(outbox.c.refused.is_(None))
        with engine.connect().execution_options(readonly=True) as conn:
            rows = conn.execute(query).all()
        if not rows:
            return produced
        done, error = _produce_rows(producer, settings, rows, timeout_s)
        if done:
            with engine.begin() as conn:
                conn.execute(delete(outbox).where(outbox.c.id.in_(done)))
            produced += len(done)
        if error is not None:
            topic, exc, row_id = error
            if isinstance(exc, MessageTooLarge):
                _park(engine, row_id, topic, exc)
                last_id = row_id
                continue
        if error is not None:
            log.error(
                "outbox message not written; kept for the next flush",
                extra={"topic": error[0], "error": str(error[1]), "pending_from": error[2]},
            )
            raise LogError(
                f"message to {error[0]!r} was not acknowledged (kept in the outbox): {error[1]}"
            ) from error[1]
        if len(rows) < FLUSH_BATCH:
            return produced
        last_id = rows[-1].id


def _park(engine: Engine, row_id: int, topic: str, error: MessageTooLarge) -> None:
    """Keep a message the log refuses for good aside, with the reason, so the rows after
    it go on; an operator sees it in the log, the dead-letter count and the table."""
    with engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == row_id).values(refused=str(error)))
    metrics.DEAD_LETTERED.labels("outbox").inc()
    log.error(
        "outbox message refused by the log; parked in the outbox (vigil periodic retries it)",
        extra={"topic": topic, "error": str(error), "outbox_id": row_id},
    )


def _produce_rows(
    producer: Producer[KafkaPayload],
    settings: Settings,
    rows: Sequence[Row[Any]],
    timeout_s: float,
) -> tuple[list[int], tuple[str, Exception, int] | None]:
    """Produce `rows` in order: (ids acknowledged, in order, up to the first failure;
    (topic, error, id) of that failure or None)."""
    sent: list[tuple[int, str, ProducerFuture[BrokerValue[KafkaPayload]]]] = []
    error: tuple[str, Exception, int] | None = None
    for row in rows:
        topic = settings.topic(row.topic)
        try:
            future = producer.produce(
                LogTopic(topic),
                KafkaPayload(row.key, bytes(row.value), []),
            )
        except Exception as exc:
            error = (topic, exc, row.id)
            break
        sent.append((row.id, topic, future))
    done: list[int] = []
    for row_id, topic, future in sent:
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:
            # What came after it may have been written: it stays too and is written again
            # (at least once), after this one.
            return done, (topic, exc, row_id)
        metrics.MESSAGES_PRODUCED.labels(topic).inc()
        done.append(row_id)
    return done, error


# `vigil periodic` leaves the rows younger than this to the process that wrote them (its
# own flush follows at once), so that the two rarely produce the same row twice.
PERIODIC_MIN_AGE: Final = timedelta(seconds=30)


class PeriodicFlush:
    """The `vigil periodic` job: flushes what a crashed or stuck writer left behind (rows
    enqueued before `now - PERIODIC_MIN_AGE`), parked rows included (the size limit
    may have been raised since). Its producer is made on first use;
    `close()` releases it."""

    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self._settings = settings
        self._backend = backend
        self._own_backend = backend is None
        self._producer: Producer[KafkaPayload] | None = None

    def __call__(self, engine: Engine, now: datetime) -> int:
        if self._producer is None:
            if self._backend is None:
                self._backend = get_backend(self._settings)
            self._producer = self._backend.get_producer()
        return flush(
            engine,
            self._producer,
            self._settings,
            enqueued_before=now - PERIODIC_MIN_AGE,
            include_refused=True,
        )

    def close(self) -> None:
        if self._producer is not None:
            try:
                self._producer.close().result(timeout=ACK_TIMEOUT_S)
            except Exception as exc:
                log.warning("outbox producer did not close cleanly", extra={"error": str(exc)})
            self._producer = None
        if self._own_backend and self._backend is not None:
            self._backend.close()
            self._backend = None
