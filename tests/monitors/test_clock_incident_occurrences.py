"""Synthetic-failure occurrences through `monitors-incident-occurrences` (B8.1, B8.2) on
both backends: queued when the option is on, sent once the tick's decision allows,
dropped (the check-in made UNKNOWN) during a system incident, held while pending."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from arroyo.types import Message, Value
from sqlalchemy import Engine, update

from tests.support.checkins import Sender, checkins, env_row
from tests.support.log_reader import read_messages
from vigil.config import Settings
from vigil.db.tables import monitor_clock_minute as minute_table
from vigil.monitors import clock_store
from vigil.monitors.checkin_processing import CheckinProcessing
from vigil.monitors.clock_consumers import ClockTasksConsumer
from vigil.monitors.clock_incident_occurrences import NAME, IncidentOccurrencesConsumer
from vigil.monitors.enums import CheckInStatus
from vigil.options import set_option
from vigil.streams import codecs
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.runner import RetryLater
from vigil.streams.topics import Topic
from vigil.tenancy import store as tenancy
from vigil.tenancy.store import Project

HOURLY = {"schedule_type": "crontab", "schedule": "0 * * * *"}
TICK = datetime(2026, 3, 1, 13, 1, tzinfo=UTC)
TICK_TS = int(TICK.timestamp())


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics([NAME])
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


def run_missing_task(stack: Settings, env_id: int, tick: datetime = TICK) -> None:
    consumer = ClockTasksConsumer(stack)
    try:
        task = codecs.ClockTask("mark_missing", tick.timestamp(), env_id)
        consumer.apply([Message(Value(task, {}))])
    finally:
        consumer.close()


def queued(stack: Settings, backend: LogBackend, expect: int) -> list[codecs.IncidentOccurrence]:
    found = read_messages(stack, backend, Topic.MONITORS_INCIDENT_OCCURRENCES, expect)
    return [codecs.decode_incident_occurrence(m.value) for m in found]


def apply_queued(stack: Settings, items: list[codecs.IncidentOccurrence]) -> None:
    consumer = IncidentOccurrencesConsumer(stack)
    try:
        consumer.apply([Message(Value(item, {})) for item in items])
    finally:
        consumer.close()


def set_decision(engine: Engine, minute: int, decision: str) -> None:
    with engine.begin() as conn:
        clock_store.record_volume(conn, {minute: 1})
        conn.execute(
            update(minute_table).where(minute_table.c.minute == minute).values(decision=decision)
        )


@pytest.fixture
def queueing(engine: Engine) -> None:
    with engine.begin() as conn:
        set_option(conn, clock_store.DISPATCH_OCCURRENCES, True)


@pytest.mark.usefixtures("queueing")
def test_a_queued_miss_is_sent_by_the_incident_occurrences_consumer(
    stack: Settings, engine: Engine, send: Sender, log_backend: LogBackend
) -> None:
    send(monitor_config=HOURLY)
    run_missing_task(stack, env_row(engine).id)
    (item,) = queued(stack, log_backend, 1)
    missed = checkins(engine)[-1]
    assert missed.status == CheckInStatus.MISSED
    assert (item.failed_checkin_id, item.previous_checkin_ids) == (missed.id, [missed.id])
    assert (item.clock_tick_ts, item.received_ts) == (TICK_TS, TICK_TS)
    assert item.incident_id is not None
    apply_queued(stack, [item])
    (raw,) = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, 1)
    occurrence = orjson.loads(raw.value)
    assert occurrence["evidence_display"][0]["value"] == "A missed check-in was detected"
    assert occurrence["event"]["tags"]["monitor.incident"] == str(item.incident_id)
    assert occurrence["event"]["received"] == TICK.isoformat()


@pytest.mark.usefixtures("queueing")
def test_a_window_of_misses_queues_one_message_per_checkin(
    stack: Settings, engine: Engine, send: Sender, log_backend: LogBackend
) -> None:
    send(monitor_config={**HOURLY, "failure_issue_threshold": 2})
    env_id = env_row(engine).id
    run_missing_task(stack, env_id)
    run_missing_task(stack, env_id, TICK + timedelta(hours=1))
    items = queued(stack, log_backend, 2)
    misses = [r.id for r in checkins(engine) if r.status == CheckInStatus.MISSED]
    assert [i.failed_checkin_id for i in items] == misses
    assert [i.previous_checkin_ids for i in items] == [misses, misses]
    apply_queued(stack, items)
    found = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, 2)
    reasons = {orjson.loads(m.value)["evidence_display"][0]["value"] for m in found}
    assert reasons == {"2 missed check-ins detected"}


@pytest.mark.usefixtures("queueing")
def test_during_a_system_incident_the_miss_becomes_unknown_and_nobody_is_paged(
    stack: Settings, engine: Engine, send: Sender, log_backend: LogBackend
) -> None:
    send(monitor_config=HOURLY)
    run_missing_task(stack, env_row(engine).id)
    (item,) = queued(stack, log_backend, 1)
    with engine.begin() as conn:
        set_option(conn, clock_store.USE_DECISIONS, True)
    set_decision(engine, TICK_TS, "incident")
    apply_queued(stack, [item])
    assert checkins(engine)[-1].status == CheckInStatus.UNKNOWN
    lag = log_backend.lag("nobody", stack.topic(Topic.INGEST_OCCURRENCES))
    assert sum(lag.values()) == 0  # nothing was written


@pytest.mark.usefixtures("queueing")
def test_an_occurrence_is_held_while_the_decision_is_pending(
    stack: Settings, engine: Engine, send: Sender, log_backend: LogBackend
) -> None:
    send(monitor_config=HOURLY)
    run_missing_task(stack, env_row(engine).id)
    (item,) = queued(stack, log_backend, 1)
    with engine.begin() as conn:
        set_option(conn, clock_store.USE_DECISIONS, True)
    set_decision(engine, TICK_TS, "abnormal")
    # held: the runner is asked to try the batch again later, and nothing was written
    with pytest.raises(RetryLater, match="pending"):
        apply_queued(stack, [item])
    lag = log_backend.lag("nobody", stack.topic(Topic.INGEST_OCCURRENCES))
    assert sum(lag.values()) == 0
    assert checkins(engine)[-1].status == CheckInStatus.MISSED
    set_decision(engine, TICK_TS, "normal")  # the abnormality was a blip
    apply_queued(stack, [item])
    (raw,) = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, 1)
    assert orjson.loads(raw.value)["type"] == 4001
    assert checkins(engine)[-1].status == CheckInStatus.MISSED


def test_a_message_for_a_missing_incident_is_dropped(
    stack: Settings, engine: Engine, log_backend: LogBackend
) -> None:
    item = codecs.IncidentOccurrence(1, [1], TICK_TS, TICK_TS, incident_id=999)
    apply_queued(stack, [item])
    lag = log_backend.lag("nobody", stack.topic(Topic.INGEST_OCCURRENCES))
    assert sum(lag.values()) == 0
