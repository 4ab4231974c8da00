"""The crons clock's state in the database (B7.2, B9): partition positions, the last
tick, per-minute check-in volume, deviation and decision, and the system-incident start.

The once-only guarantee lives here: `advance` claims the minutes it returns with a
conditional UPDATE of the clock row on the value it read (or the insert of the first
row), so however many consumers race, each minute is handed to exactly one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Connection, Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from vigil.db.tables import monitor_clock as clock_table
from vigil.db.tables import monitor_clock_minute as minute_table
from vigil.db.tables import monitor_clock_partition as partition_table
from vigil.monitors import system_incidents
from vigil.monitors.clock import MINUTE_S, as_datetime, minute_of, slowest, ticks_due
from vigil.monitors.system_incidents import Decision, Evaluation, Options, Transition
from vigil.options import get_option

CLOCK_ID: Final = 1
# The reference keeps volumes, metrics and decisions 30 days; one more day of room.
KEEP_MINUTES_S: Final = 31 * 24 * 3600

COLLECT_METRICS: Final = "crons.system_incidents.collect_metrics"
COLLECT_METRICS_OLD: Final = "crons.tick_volume_anomaly_detection"
USE_DECISIONS: Final = "crons.system_incidents.use_decisions"
ANOMALY_THRESHOLD: Final = "crons.system_incidents.pct_deviation_anomaly_threshold"
INCIDENT_THRESHOLD: Final = "crons.system_incidents.pct_deviation_incident_threshold"
DECISION_WINDOW: Final = "crons.system_incidents.tick_decision_window"
DISPATCH_OCCURRENCES: Final = "crons.dispatch_incident_occurrences_to_consumer"


def _number(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


def read_options(conn: Connection) -> Options:
    """The system-incident options from the `option` table (defaults: off, -10, -30, 5).
    A value of the wrong type counts as unset: an operator's typo must not stop the
    clock."""
    defaults = Options()
    collect = get_option(conn, COLLECT_METRICS, None)
    if collect is None:
        collect = get_option(conn, COLLECT_METRICS_OLD, False)
    window = get_option(conn, DECISION_WINDOW, defaults.decision_window)
    return Options(
        collect_metrics=collect is True,
        use_decisions=get_option(conn, USE_DECISIONS, False) is True,
        anomaly_threshold=_number(
            get_option(conn, ANOMALY_THRESHOLD, None), defaults.anomaly_threshold
        ),
        incident_threshold=_number(
            get_option(conn, INCIDENT_THRESHOLD, None), defaults.incident_threshold
        ),
        decision_window=(
            window
            if isinstance(window, int) and not isinstance(window, bool) and window > 0
            else defaults.decision_window
        ),
    )


# --- the clock -------------------------------------------------------------------------


def _set_positions(conn: Connection, positions: Mapping[int, int], now: datetime) -> None:
    # In partition order, so that racing consumers lock the rows in the same order.
    for partition, position in sorted(positions.items()):
        changed = conn.execute(
            update(partition_table)
            .where(partition_table.c.partition_index == partition)
            .values(position=position, date_updated=now)
        ).rowcount
        if changed:
            continue
        try:
            with conn.begin_nested():
                conn.execute(
                    partition_table.insert().values(
                        partition_index=partition, position=position, date_updated=now
                    )
                )
        except IntegrityError:  # inserted meanwhile by another consumer
            conn.execute(
                update(partition_table)
                .where(partition_table.c.partition_index == partition)
                .values(position=position, date_updated=now)
            )


def positions(conn: Connection) -> dict[int, int]:
    rows = conn.execute(select(partition_table.c.partition_index, partition_table.c.position))
    return {row.partition_index: row.position for row in rows}


def last_tick(conn: Connection) -> int | None:
    return conn.execute(
        select(clock_table.c.last_tick).where(clock_table.c.id == CLOCK_ID)
    ).scalar_one_or_none()


def _claim(conn: Connection, seen: int | None, tick: int, now: datetime) -> bool:
    """Move the last tick from `seen` to `tick`; False if another consumer moved it
    first (the conditional UPDATE matched nothing, or the first row exists)."""
    if seen is None:
        try:
            with conn.begin_nested():
                conn.execute(
                    clock_table.insert().values(id=CLOCK_ID, last_tick=tick, date_updated=now)
                )
        except IntegrityError:
            return False
        return True
    changed = conn.execute(
        update(clock_table)
        .where((clock_table.c.id == CLOCK_ID) & (clock_table.c.last_tick == seen))
        .values(last_tick=tick, date_updated=now)
    ).rowcount
    return bool(changed == 1)


def advance(conn: Connection, moved: Mapping[int, int], now: datetime | None = None) -> list[int]:
    """Record the partitions' new positions (`moved`: {partition: minute}, overwriting,
    even backwards as the reference does) and claim the minutes that tick because of
    them, in order. Empty when nothing ticks or another consumer claimed them."""
    moment = datetime.now(UTC) if now is None else now
    _set_positions(conn, moved, moment)
    seen = last_tick(conn)
    due = ticks_due(slowest(positions(conn)), seen)
    if not due or not _claim(conn, seen, due[-1], moment):
        return []
    return due


def try_clock_tick(
    engine: Engine,
    latest: Mapping[int, datetime],
    dispatch: Callable[[int], None],
    volume: Mapping[int, int] | None = None,
    now: datetime | None = None,
) -> list[int]:
    """B7.2 for a batch: record its check-in `volume` ({minute: messages}, B9), move
    each partition to the minute of its newest message and dispatch
    (`dispatch(minute)`, which waits for the log's acknowledgement) every minute that
    ticks, in one transaction. The ticks are dispatched inside the transaction that
    claims them: a tick the log did not take is not claimed, and is dispatched again by
    the next call (those before it in the same call go out twice; ticks are idempotent
    downstream). Returns the minutes dispatched."""
    moved = {p: minute_of(ts.timestamp()) for p, ts in latest.items()}
    if not moved and not volume:
        return []
    with engine.begin() as conn:
        if volume:
            record_volume(conn, volume)
        due = advance(conn, moved, now) if moved else []
        for tick in due:
            dispatch(tick)
    return due


# --- volume, metrics and decisions (B9) --------------------------------------------------


def record_volume(conn: Connection, counts: Mapping[int, int]) -> None:
    """Add `counts` ({minute: messages}) to the minutes' check-in volume."""
    for minute, count in sorted(counts.items()):
        added = func.coalesce(minute_table.c.volume, 0) + count
        query = update(minute_table).where(minute_table.c.minute == minute).values(volume=added)
        if conn.execute(query).rowcount:
            continue
        try:
            with conn.begin_nested():
                conn.execute(minute_table.insert().values(minute=minute, volume=count))
        except IntegrityError:  # inserted meanwhile
            conn.execute(query)


def _set_minute(conn: Connection, minute: int, **values: object) -> None:
    changed = conn.execute(
        update(minute_table).where(minute_table.c.minute == minute).values(**values)
    ).rowcount
    if changed:
        return
    try:
        with conn.begin_nested():
            conn.execute(minute_table.insert().values(minute=minute, **values))
    except IntegrityError:
        conn.execute(update(minute_table).where(minute_table.c.minute == minute).values(**values))


def _column(conn: Connection, column: str, first: int, last: int) -> dict[int, object]:
    col = minute_table.c[column]
    rows = conn.execute(
        select(minute_table.c.minute, col).where(
            (minute_table.c.minute >= first) & (minute_table.c.minute <= last) & col.isnot(None)
        )
    )
    return {row[0]: row[1] for row in rows}


def _volumes(conn: Connection, minutes: list[int]) -> dict[int, int]:
    rows = conn.execute(
        select(minute_table.c.minute, minute_table.c.volume).where(
            minute_table.c.minute.in_(minutes) & minute_table.c.volume.isnot(None)
        )
    )
    return {row.minute: row.volume for row in rows}


def evaluate_tick(conn: Connection, tick: int, options: Options) -> Evaluation:
    """B9 at `tick`: store the previous minute's deviation, decide, store the decision
    and its back-fill, and note the system incident's start and end. With metrics off,
    NORMAL and nothing is stored."""
    at = as_datetime(tick)
    if not options.collect_metrics:
        return Evaluation(Decision.NORMAL, None, (), at)
    previous = tick - MINUTE_S
    history = [int(m.timestamp()) for m in system_incidents.history_minutes(as_datetime(previous))]
    volumes = _volumes(conn, [previous, *history])
    value = system_incidents.pct_deviation(
        volumes.get(previous), [volumes[m] for m in history if m in volumes]
    )
    if value is not None:
        _set_minute(conn, previous, pct_deviation=value)
    window_first = previous - MINUTE_S * (max(options.decision_window, 1) - 1)
    metrics = {
        as_datetime(m): float(v)  # type: ignore[arg-type]
        for m, v in _column(conn, "pct_deviation", window_first, previous).items()
    }
    backfill_first = previous - MINUTE_S * (system_incidents.BACKFILL_LIMIT_MINUTES - 1)
    stored = {
        as_datetime(m): Decision(str(v))
        for m, v in _column(conn, "decision", backfill_first, previous).items()
    }
    result = system_incidents.evaluate(at, metrics, stored, options)
    for minute in result.backfilled:
        _set_minute(conn, int(minute.timestamp()), decision=str(result.decision))
    _set_minute(conn, tick, decision=str(result.decision))
    if result.transition == Transition.INCIDENT_STARTED:
        conn.execute(
            update(clock_table)
            .where(clock_table.c.id == CLOCK_ID)
            .values(system_incident_start=int(result.at.timestamp()))
        )
    elif result.transition == Transition.INCIDENT_RECOVERED:
        _forget_incident_volume(conn, int(result.at.timestamp()))
    conn.execute(minute_table.delete().where(minute_table.c.minute < tick - KEEP_MINUTES_S))
    return result


def _forget_incident_volume(conn: Connection, end: int) -> None:
    """The volumes of the incident's minutes are not history to compare with later:
    clear them from (start - 1 minute) for (end - start)."""
    start = conn.execute(
        select(clock_table.c.system_incident_start).where(clock_table.c.id == CLOCK_ID)
    ).scalar_one_or_none()
    if start is None:
        return
    first = start - MINUTE_S
    conn.execute(
        update(minute_table)
        .where((minute_table.c.minute >= first) & (minute_table.c.minute < first + (end - start)))
        .values(volume=None)
    )


def decision_at(conn: Connection, minute: int) -> Decision:
    """The decision stored for a tick; NORMAL when none was."""
    value = conn.execute(
        select(minute_table.c.decision).where(minute_table.c.minute == minute)
    ).scalar_one_or_none()
    return Decision.NORMAL if value is None else Decision(value)


# --- what people see -------------------------------------------------------------------


@dataclass(frozen=True)
class ClockStatus:
    """The clock as the API and /metrics show it."""

    last_tick: datetime | None
    partitions: dict[int, datetime]
    decision: Decision | None
    system_incident_start: datetime | None

    def lag(self, now: datetime) -> timedelta | None:
        """How far the clock is behind `now` (None before the first tick)."""
        return None if self.last_tick is None else now - self.last_tick


def clock_status(conn: Connection) -> ClockStatus:
    row = conn.execute(select(clock_table).where(clock_table.c.id == CLOCK_ID)).first()
    tick = None if row is None else row.last_tick
    decision = None
    if tick is not None:
        value = conn.execute(
            select(minute_table.c.decision).where(minute_table.c.minute == tick)
        ).scalar_one_or_none()
        decision = None if value is None else Decision(value)
    start = None if row is None else row.system_incident_start
    return ClockStatus(
        last_tick=None if tick is None else as_datetime(tick),
        partitions={p: as_datetime(m) for p, m in sorted(positions(conn).items())},
        decision=decision,
        system_incident_start=None if start is None else as_datetime(start),
    )
