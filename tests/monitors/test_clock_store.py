"""The clock's state in the database (B7.2, B9) on both databases: positions, the
once-only tick across racing consumers, volume, deviation and decisions."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from vigil.config import Settings
from vigil.db.engine import make_engine
from vigil.db.tables import monitor_clock_minute as minute_table
from vigil.monitors import clock_store
from vigil.monitors.clock_store import advance, clock_status, evaluate_tick, record_volume
from vigil.monitors.system_incidents import Decision, Options, Transition
from vigil.options import set_option

T = 1_772_366_400  # 2026-03-01 12:00 UTC
M = 60
DAY = 86_400


def test_first_tick_is_only_the_current_minute(engine: Engine) -> None:
    with engine.begin() as conn:
        assert advance(conn, {0: T + 10 * M}) == [T + 10 * M]
        assert clock_store.last_tick(conn) == T + 10 * M


def test_the_slowest_partition_holds_the_clock_back(engine: Engine) -> None:
    """A backlog on one partition: the clock waits for it, then back-fills each
    minute once, in order."""
    with engine.begin() as conn:
        assert advance(conn, {0: T, 1: T}) == [T]
        assert advance(conn, {0: T + 5 * M}) == []  # partition 1 is still at T
        assert advance(conn, {1: T + 3 * M}) == [T + M, T + 2 * M, T + 3 * M]
        assert advance(conn, {1: T + 9 * M}) == [T + 4 * M, T + 5 * M]
        assert advance(conn, {0: T + 2 * M}) == []  # a partition going back ticks nothing
        assert clock_store.positions(conn) == {0: T + 2 * M, 1: T + 9 * M}
        assert clock_store.last_tick(conn) == T + 5 * M


def test_racing_consumers_tick_each_minute_exactly_once(stack: Settings) -> None:
    """Several threads, each with its own engine (own connections), move the same
    partitions through the same minutes at once: every minute is claimed by exactly
    one of them."""
    engines = [make_engine(stack) for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in engines]
    start = threading.Barrier(len(engines))

    def run(index: int) -> None:
        start.wait()
        for minute in range(30):
            with engines[index].begin() as conn:
                claimed[index].extend(advance(conn, {0: T + minute * M, 1: T + minute * M}))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    everything = sorted(m for ticks in claimed for m in ticks)
    assert everything == [T + m * M for m in range(30)]
    for ticks in claimed:
        assert ticks == sorted(ticks)


def test_volume_adds_up_per_minute(engine: Engine) -> None:
    with engine.begin() as conn:
        record_volume(conn, {T: 3, T + M: 1})
        record_volume(conn, {T: 2})
        rows = {
            r.minute: r.volume
            for r in conn.execute(select(minute_table.c.minute, minute_table.c.volume))
        }
    assert rows == {T: 5, T + M: 1}


def test_metrics_off_decides_normal_and_stores_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        record_volume(conn, {T - DAY: 100, T - 2 * DAY: 100, T: 10})
        result = evaluate_tick(conn, T + M, Options())
        assert result.decision == Decision.NORMAL
        assert clock_store.decision_at(conn, T + M) == Decision.NORMAL
        assert (
            conn.execute(
                select(minute_table.c.decision).where(minute_table.c.minute == T + M)
            ).first()
            is None
        )


def test_deviation_is_stored_for_the_previous_minute(engine: Engine) -> None:
    """The reference's worked example: history cycling 170, 150, 130, 210, 154 over 30
    days, count 165 => +1.3513513513513442."""
    history = [170, 150, 130, 210, 154] * 6
    with engine.begin() as conn:
        record_volume(conn, {T - (day + 1) * DAY: v for day, v in enumerate(history)})
        record_volume(conn, {T: 165})
        evaluate_tick(conn, T + M, Options(collect_metrics=True))
        value = conn.execute(
            select(minute_table.c.pct_deviation).where(minute_table.c.minute == T)
        ).scalar_one()
    assert value == 1.3513513513513442


def test_an_ingestion_outage_becomes_a_system_incident_and_recovers(engine: Engine) -> None:
    """Volume 1000 a minute on previous days; today it drops to 480 (-52%) for a while:
    INCIDENT from the first low minute, RECOVERING, then NORMAL, and the incident's
    volumes are not kept as history."""
    options = Options(collect_metrics=True)
    minutes = 20
    today = [1000] * 3 + [480] * 4 + [1000] * (minutes - 7)
    with engine.begin() as conn:
        for day in (1, 2, 3):
            record_volume(conn, {T - day * DAY + i * M: 1000 for i in range(minutes)})
        record_volume(conn, {T + i * M: v for i, v in enumerate(today)})
        advance(conn, {0: T})  # the clock exists before its ticks are evaluated
        transitions = {}
        for i in range(1, minutes):
            result = evaluate_tick(conn, T + i * M, options)
            if result.transition is not None:
                transitions[i] = (result.transition, result.decision, result.at)
        status = clock_status(conn)
        volumes = {
            r.minute: r.volume
            for r in conn.execute(select(minute_table.c.minute, minute_table.c.volume))
        }
    at = datetime.fromtimestamp
    assert transitions == {
        4: (Transition.INCIDENT_STARTED, Decision.INCIDENT, at(T + 4 * M, UTC)),
        8: (Transition.INCIDENT_RECOVERING, Decision.RECOVERING, at(T + 8 * M, UTC)),
        12: (Transition.INCIDENT_RECOVERED, Decision.NORMAL, at(T + 8 * M, UTC)),
    }
    assert status.last_tick == at(T, UTC)  # evaluation alone does not move the clock
    assert status.decision is None  # nothing decided for the clock's own tick T
    assert status.system_incident_start == at(T + 4 * M, UTC)
    # the minutes from (start - 1) for (end - start) lost their volume
    assert [volumes.get(T + i * M) for i in range(2, 8)] == [1000, None, None, None, None, 1000]


def test_options_are_read_from_the_option_table(engine: Engine) -> None:
    with engine.begin() as conn:
        assert clock_store.read_options(conn) == Options()
        set_option(conn, clock_store.COLLECT_METRICS, True)
        set_option(conn, clock_store.USE_DECISIONS, True)
        set_option(conn, clock_store.ANOMALY_THRESHOLD, -5)
        set_option(conn, clock_store.INCIDENT_THRESHOLD, -40.5)
        set_option(conn, clock_store.DECISION_WINDOW, "ten")  # a typo: the default
        assert clock_store.read_options(conn) == Options(True, True, -5.0, -40.5, 5)


def test_the_older_option_name_still_collects_metrics(engine: Engine) -> None:
    with engine.begin() as conn:
        set_option(conn, clock_store.COLLECT_METRICS_OLD, True)
        assert clock_store.read_options(conn).collect_metrics
