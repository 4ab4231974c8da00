"""Monitor-failure occurrences of synthetic failures, held back while vigil is unsure
whether its own ingestion is failing (B8.1, B8.2).

With `crons.dispatch_incident_occurrences_to_consumer` on, a missed or timed-out run's
occurrences are not sent at once: the clock-tasks consumer writes one
`monitors-incident-occurrences` message per check-in of the failure window (keyed by
monitor environment), and this consumer sends each occurrence once the decision of the
tick that found the failure is known:

- `crons.system_incidents.use_decisions` on and the decision pending (ABNORMAL,
  RECOVERING): wait (back-pressure; the batch is not committed meanwhile);
- `use_decisions` on and the decision INCIDENT: nobody is paged for a failure that is
  probably vigil's own — a synthetic failed check-in becomes UNKNOWN, nothing is sent;
- otherwise the occurrence is built (B8.3) and sent to `ingest-occurrences`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from arroyo.types import Message
from sqlalchemy import Connection, and_, desc, select, update

from vigil.config import Settings
from vigil.db.tables import monitor_checkin as checkin_table
from vigil.db.tables import monitor_incident as incident_table
from vigil.issues.produce import enqueue_payload
from vigil.monitors import clock_store
from vigil.monitors.checkin_store import get_checkin
from vigil.monitors.clock import minute_of
from vigil.monitors.clock_resources import CLOCK_BATCH_TIME_MS, Resources
from vigil.monitors.enums import SYNTHETIC_TERMINAL_STATUSES, CheckInStatus
from vigil.monitors.incidents import failure_occurrence
from vigil.monitors.models import CheckIn
from vigil.monitors.store import get_monitor_by_id, get_monitor_environment_by_id
from vigil.monitors.system_incidents import Decision
from vigil.streams import outbox
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import IncidentOccurrence, decode_incident_occurrence
from vigil.streams.runner import ConsumerDefinition, RetryLater
from vigil.streams.topics import Topic

log = logging.getLogger(__name__)

NAME: Final = "monitors-incident-occurrences"


def failure_window(conn: Connection, failed: CheckIn, size: int) -> list[CheckIn]:
    """The failure window `mark_failed` produced `size` occurrences for: the failed
    check-in alone, or the environment's `size` latest check-ins up to it, oldest
    first (B6)."""
    if size <= 1:
        return [failed]
    rows = conn.execute(
        select(checkin_table.c.id)
        .where(
            and_(
                checkin_table.c.monitor_environment_id == failed.monitor_environment_id,
                checkin_table.c.date_added <= failed.date_added,
            )
        )
        .order_by(desc(checkin_table.c.date_added), desc(checkin_table.c.id))
        .limit(size)
    )
    window = [get_checkin(conn, row.id) for row in rows]
    return [c for c in reversed(window) if c is not None]


def queued_messages(
    conn: Connection,
    failed_checkin_id: int,
    payloads: Sequence[dict[str, Any]],
    received: datetime,
    tick: datetime,
) -> list[IncidentOccurrence]:
    """The `monitors-incident-occurrences` messages that stand for the occurrences
    `mark_failed` produced for a synthetic failure (one per check-in of its window)."""
    failed = get_checkin(conn, failed_checkin_id)
    if failed is None or not payloads:
        return []
    incident_id = int(payloads[0]["event"]["tags"]["monitor.incident"])
    window = failure_window(conn, failed, len(payloads))
    ids = [c.id for c in window]
    return [
        IncidentOccurrence(
            failed_checkin_id=checkin.id,
            previous_checkin_ids=ids,
            received_ts=int(received.timestamp()),
            clock_tick_ts=int(tick.timestamp()),
            incident_id=incident_id,
        )
        for checkin in window
    ]


Send = Callable[[dict[str, Any], str], None]


def process(conn: Connection, item: IncidentOccurrence, send: Send, use_decisions: bool) -> None:
    """Steps 2-4 of B8.2 for one message whose tick decision is not pending."""
    decision = clock_store.decision_at(conn, minute_of(item.clock_tick_ts))
    incident = (
        None
        if item.incident_id is None
        else conn.execute(
            select(incident_table).where(incident_table.c.id == item.incident_id)
        ).first()
    )
    if incident is None:
        log.info("missing_incident", extra={"incident_id": item.incident_id})
        return
    failed = get_checkin(conn, item.failed_checkin_id)
    previous = [get_checkin(conn, i) for i in item.previous_checkin_ids]
    window = [c for c in previous if c is not None]
    if failed is None or len(window) != len(previous):
        log.error("missing_check_ins", extra={"failed_checkin_id": item.failed_checkin_id})
        return
    if use_decisions and decision == Decision.INCIDENT:
        if failed.status in SYNTHETIC_TERMINAL_STATUSES:
            conn.execute(
                update(checkin_table)
                .where(checkin_table.c.id == failed.id)
                .values(status=int(CheckInStatus.UNKNOWN))
            )
        return
    monitor = get_monitor_by_id(conn, failed.monitor_id)
    env = get_monitor_environment_by_id(conn, failed.monitor_environment_id)
    if monitor is None or env is None:
        log.info("incident occurrence for a deleted monitor", extra={"incident": incident.id})
        return
    received = datetime.fromtimestamp(item.received_ts, UTC)
    payload = failure_occurrence(conn, monitor, env, incident, failed, window, received)
    send(payload, f"{incident.grouphash}-{monitor.project_id}")


class IncidentOccurrencesConsumer:
    def __init__(self, settings: Settings, backend: LogBackend | None = None) -> None:
        self._res = Resources(settings, backend)

    def definition(self) -> ConsumerDefinition[IncidentOccurrence]:
        return ConsumerDefinition(
            name=NAME,
            topic=Topic.MONITORS_INCIDENT_OCCURRENCES,
            decode=lambda raw: decode_incident_occurrence(raw.value),
            apply=self.apply,
            max_batch_time_ms=CLOCK_BATCH_TIME_MS,
        )

    def apply(self, messages: Sequence[Message[IncidentOccurrence]]) -> None:
        """Send (through the outbox, in the transaction that built it) each message's
        occurrence; returns once the log acknowledged them. While the decision of any
        message's tick is pending (and decisions are used), nothing of the batch is
        applied and `RetryLater` makes the runner try the batch again (back-pressure,
        B8.2 step 1), so a retry never sends an occurrence twice."""
        use_decisions = self._hold_while_pending([m.payload for m in messages])
        try:
            for message in messages:
                with self._res.engine.begin() as conn:

                    def send(payload: dict[str, Any], key: str) -> None:
                        enqueue_payload(conn, payload, key)

                    process(conn, message.payload, send, use_decisions)
        finally:
            outbox.flush(self._res.engine, self._res.producer, self._res.settings)

    def _hold_while_pending(self, items: Sequence[IncidentOccurrence]) -> bool:
        """`use_decisions`; RetryLater if a tick of `items` has a pending decision."""
        with self._res.engine.execution_options(readonly=True).connect() as conn:
            options = clock_store.read_options(conn)
            if not options.use_decisions:
                return False
            for tick in sorted({minute_of(item.clock_tick_ts) for item in items}):
                if clock_store.decision_at(conn, tick).is_pending:
                    log.info("incident occurrences held: decision pending", extra={"tick": tick})
                    raise RetryLater(f"the decision of tick {tick} is pending")
        return True

    def close(self) -> None:
        self._res.close()


def incident_occurrences(settings: Settings) -> ConsumerDefinition[IncidentOccurrence]:
    return IncidentOccurrencesConsumer(settings).definition()
