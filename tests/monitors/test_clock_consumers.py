"""The crons clock run for real on both backends: ticks dispatched to
`monitors-clock-tick` from chosen message times, the tick and task consumers
(`run_consumer` in threads) turning a due environment into a missed check-in and an
occurrence on `ingest-occurrences`, the idle clock moving from wall time only when
`ingest-monitors` is caught up, and unknowns instead of timeouts during a system
incident."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from arroyo.types import Message, Value
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from tests.support.checkins import T0, Sender, checkins, env_row
from tests.support.log_reader import read_messages
from vigil import metrics
from vigil.config import Settings
from vigil.db.timestamps import aware_utc
from vigil.monitors import clock_store
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_consumers import (
    INGEST_MONITORS_GROUP,
    TASKS_CONSUMER,
    TICK_CONSUMER,
    ClockTasksConsumer,
    ClockTickConsumer,
    ClockTicker,
)
from vigil.monitors.enums import CheckInStatus, MonitorStatus
from vigil.options import set_option
from vigil.streams import codecs
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.runner import produce, run_consumer
from vigil.streams.topics import Topic
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

WAIT_S = 120.0
HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}  # margin 1 minute
H13 = datetime(2026, 3, 1, 13, 0, tzinfo=UTC)
M = timedelta(minutes=1)
S = timedelta(seconds=1)


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics([TICK_CONSUMER, TASKS_CONSUMER, INGEST_MONITORS_GROUP])
    yield backend
    backend.close()


@pytest.fixture
def project(engine: Engine) -> Project:
    with engine.begin() as conn:
        org = tenancy.create_organization(conn, "acme")
        return tenancy.create_project(conn, org, "app")


@pytest.fixture
def send(engine: Engine, project: Project) -> Sender:
    return Sender(engine, project, CheckinProcessing(produce_occurrence=lambda p, k: None))


@pytest.fixture
def ticker(stack: Settings, engine: Engine, log_backend: LogBackend) -> Iterator[ClockTicker]:
    made = ClockTicker(stack, engine=engine, backend=log_backend)
    yield made
    made.close()


@contextmanager
def consumers_running(settings: Settings) -> Iterator[Callable[[], bool]]:
    """The tick and task consumers, each in a thread, until the block ends."""
    made = [ClockTickConsumer(settings), ClockTasksConsumer(settings)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def target(consumer: ClockTickConsumer | ClockTasksConsumer) -> None:
        try:
            run_consumer(consumer.definition(), settings, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(c,)) for c in made]
    for thread in threads:
        thread.start()
    try:
        yield lambda: all(t.is_alive() for t in threads)
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT_S)
        for consumer in made:
            consumer.close()
    assert not any(t.is_alive() for t in threads), "a consumer did not stop"
    if errors:
        raise errors[0]


def wait_until(condition: Callable[[], bool], what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if not alive():
            raise AssertionError(f"a consumer stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ticks_on_the_log(settings: Settings, backend: LogBackend, expect: int) -> list[float]:
    found = read_messages(settings, backend, Topic.MONITORS_CLOCK_TICK, expect)
    return [codecs.decode_clock_tick(m.value).ts for m in found]


def caught_up(settings: Settings, backend: LogBackend) -> bool:
    pairs = [
        (TICK_CONSUMER, Topic.MONITORS_CLOCK_TICK),
        (TASKS_CONSUMER, Topic.MONITORS_CLOCK_TASKS),
    ]
    return all(
        sum(backend.lag(settings.topic(group), settings.topic(topic)).values()) == 0
        for group, topic in pairs
    )


def ts(moment: datetime) -> float:
    return moment.timestamp()


# --- ticks from message times --------------------------------------------------------------


def test_a_due_environment_gets_its_missed_checkin_and_occurrence(
    stack: Settings,
    engine: Engine,
    send: Sender,
    ticker: ClockTicker,
    log_backend: LogBackend,
) -> None:
    send(monitor_config=HOURLY)  # 12:00:05 ok: next 13:00, latest 13:01
    assert ticker.batch_applied({0: H13 + 30 * S}, {ts(H13): 1}) == [ts(H13)]
    assert ticker.batch_applied({0: H13 + 2 * M + S}) == [ts(H13 + M), ts(H13 + 2 * M)]
    with consumers_running(stack) as alive:
        wait_until(
            lambda: any(r.status == CheckInStatus.MISSED for r in checkins(engine)),
            "the missed check-in",
            alive,
        )
        (occurrence,) = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, expect=1)
    assert ticks_on_the_log(stack, log_backend, 3) == [ts(H13 + k * M) for k in range(3)]
    missed = checkins(engine)[-1]
    assert aware_utc(missed.expected_time) == H13
    env = env_row(engine)
    assert env.status == MonitorStatus.ERROR
    assert aware_utc(env.last_checkin) == T0
    value = orjson.loads(occurrence.value)
    assert value["issue_title"] == "Monitor failure: nightly"
    assert value["evidence_display"][0]["value"] == "A missed check-in was detected"
    assert [r.status for r in checkins(engine)].count(CheckInStatus.MISSED) == 1


def test_a_backlog_on_one_partition_creates_no_false_misses(
    stack: Settings, engine: Engine, send: Sender, ticker: ClockTicker, log_backend: LogBackend
) -> None:
    """Partition 0 is at 13:05 while partition 1 still holds the 13:00:30 check-in
    that keeps the monitor on time: the clock waits for partition 1."""
    send(monitor_config=HOURLY)
    assert ticker.batch_applied({0: H13, 1: H13}) == [ts(H13)]
    assert ticker.batch_applied({0: H13 + 5 * M}) == []  # partition 1 holds the clock
    send(H13 + 30 * S)  # the backlog is applied: on time for the 13:00 slot
    due = ticker.batch_applied({1: H13 + 5 * M + S})
    assert due == [ts(H13 + k * M) for k in range(1, 6)]  # back-filled in order, once
    with consumers_running(stack) as alive:
        wait_until(lambda: caught_up(stack, log_backend), "every tick processed", alive)
    assert [r.status for r in checkins(engine)] == [CheckInStatus.OK, CheckInStatus.OK]
    assert env_row(engine).status == MonitorStatus.OK


# --- the idle clock ------------------------------------------------------------------------


def test_an_idle_install_ticks_from_wall_time(
    stack: Settings, ticker: ClockTicker, log_backend: LogBackend, engine: Engine
) -> None:
    """Nothing waits in ingest-monitors: wall time moves the clock (to the minute
    0.25 s before "now"), minute by minute, never backwards."""
    assert ticker.idle_tick(H13 + 10 * S) == [ts(H13)]
    assert ticker.idle_tick(H13 + 40 * S) == []
    assert ticker.idle_tick(H13 + 2 * M + 10 * S) == [ts(H13 + M), ts(H13 + 2 * M)]
    assert ticker.idle_tick(H13 + 2 * M + 100 * S) == [ts(H13 + 3 * M)]
    with engine.connect() as conn:
        status = clock_store.clock_status(conn)
    assert status.last_tick == H13 + 3 * M
    assert set(status.partitions.values()) == {H13 + 3 * M}


def test_the_idle_clock_never_ticks_past_an_unprocessed_message(
    stack: Settings, ticker: ClockTicker, log_backend: LogBackend
) -> None:
    assert ticker.idle_tick(H13 + 10 * S) == [ts(H13)]
    pulse = codecs.encode_monitor_message(codecs.ClockPulse())
    produce(log_backend, stack, Topic.INGEST_MONITORS, pulse, b"k")
    assert ticker.idle_tick(H13 + 5 * M) == []  # ingest-monitors has not applied it


def test_clock_pulses_go_into_every_partition(
    stack: Settings, ticker: ClockTicker, log_backend: LogBackend
) -> None:
    ticker.pulse()
    lag = log_backend.lag(stack.topic(INGEST_MONITORS_GROUP), stack.topic(Topic.INGEST_MONITORS))
    assert lag == dict.fromkeys(range(stack.partitions), 1)


# --- system incidents ------------------------------------------------------------------------


def test_during_a_system_incident_runs_become_unknown_instead_of_timing_out(
    stack: Settings, engine: Engine, send: Sender, log_backend: LogBackend
) -> None:
    send(monitor_config=HOURLY, status="in_progress")  # times out at 12:30
    tick = datetime(2026, 3, 1, 12, 31, tzinfo=UTC)
    previous = int(ts(tick - M))
    with engine.begin() as conn:
        set_option(conn, clock_store.COLLECT_METRICS, True)
        set_option(conn, clock_store.USE_DECISIONS, True)
        day = 86_400
        clock_store.record_volume(conn, {previous - d * day: 1000 for d in (1, 2, 3)})
        clock_store.record_volume(conn, {previous: 100})  # -90%: an ingestion outage
        clock_store.advance(conn, {0: previous})
    tick_consumer, tasks_consumer = ClockTickConsumer(stack), ClockTasksConsumer(stack)
    try:
        tick_consumer.apply([Message(Value(codecs.ClockTick(ts(tick)), {}))])
        (raw,) = read_messages(stack, log_backend, Topic.MONITORS_CLOCK_TASKS, expect=1)
        task = codecs.decode_clock_task(raw.value)
        assert task.type == "mark_unknown"
        tasks_consumer.apply([Message(Value(task, {}))])
    finally:
        tick_consumer.close()
        tasks_consumer.close()
    [row] = checkins(engine)
    assert row.status == CheckInStatus.UNKNOWN
    assert env_row(engine).status == MonitorStatus.ACTIVE
    with engine.connect() as conn:
        assert clock_store.decision_at(conn, int(ts(tick))).value == "incident"


def test_the_clock_position_is_in_the_metrics(stack: Settings, ticker: ClockTicker) -> None:
    ticker.idle_tick(H13 + 10 * S)
    assert REGISTRY.get_sample_value("vigil_crons_clock_last_tick_seconds") == ts(H13)
    body = metrics.render()[0].decode()
    for name in ("last_tick_seconds", "ticks_total", "tick_delay_seconds", "decision"):
        assert f"vigil_crons_clock_{name}" in body
