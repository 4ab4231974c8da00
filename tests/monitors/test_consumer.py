"""The `ingest-monitors` consumer run for real (`run_consumer` in a thread) on both
backends: check-ins written to the log reach the database in order per key in both
modes, the reference's example messages are applied, a bad message is dead-lettered,
failures become occurrences on `ingest-occurrences` and recovery a RESOLVED status
change, an occurrence the log refuses stays in the outbox until a later flush writes it,
and the operator's killswitch drops an organization's check-ins."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from tests.support.consumers import WAIT_S, checkins, running, wait_until
from tests.support.log_reader import read_messages
from tests.support.tenants import Tenant, make_tenant
from vigil.config import Settings
from vigil.db.tables import monitor as monitor_table
from vigil.db.tables import monitor_clock_partition as clock_partitions
from vigil.db.tables import monitor_incident as incident_table
from vigil.db.tables import outbox as outbox_table
from vigil.monitors import processing_error_store
from vigil.monitors import store as monitor_store
from vigil.monitors.consumer import NAME
from vigil.monitors.enums import CheckInStatus
from vigil.monitors.slugs import routing_key
from vigil.options import CRONS_DISABLE_CHECKIN, set_option
from vigil.streams import codecs, outbox
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.outbox import PeriodicFlush
from vigil.streams.runner import produce
from vigil.streams.topics import Topic, dlq_topic

EXAMPLES = (
    Path(__file__).resolve().parents[3]
    / "shared/vendor-data/sentry-kafka-schemas/examples/ingest-monitors/1"
)
HOURLY = {"schedule": {"type": "crontab", "value": "0 * * * *"}}
HOURLY_STORED = {"schedule_type": 1, "schedule": "0 * * * *", "checkin_margin": None}


@pytest.fixture
def log_backend(stack: Settings) -> Iterator[LogBackend]:
    backend = get_backend(stack)
    backend.ensure_topics([NAME])
    yield backend
    backend.close()


@pytest.fixture
def producer(log_backend: LogBackend) -> Iterator[Producer[KafkaPayload]]:
    made = log_backend.get_producer()
    yield made
    made.close().result(timeout=WAIT_S)


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


class Log:
    """Writes `ingest-monitors` messages as Relay does (msgpack, routing key)."""

    def __init__(self, settings: Settings, producer: Producer[KafkaPayload], tenant: Tenant):
        self.settings, self.producer, self.tenant = settings, producer, tenant

    def raw(self, value: bytes, key: bytes | None = None) -> None:
        produce(self.producer, self.settings, Topic.INGEST_MONITORS, value, key)

    def checkin(self, at: datetime | None = None, **payload: Any) -> str:
        payload.setdefault("monitor_slug", "nightly")
        payload.setdefault("check_in_id", uuid.uuid4().hex)
        payload.setdefault("status", "ok")
        moment = datetime.now(UTC) if at is None else at
        message = codecs.CheckInMessage(
            orjson.dumps(payload), moment.timestamp(), self.tenant.project.id, "test/1", 90
        )
        key = routing_key(self.tenant.project.id, payload["monitor_slug"], None)
        self.raw(codecs.encode_monitor_message(message), key)
        return str(payload["check_in_id"])


@pytest.fixture
def log(stack: Settings, producer: Producer[KafkaPayload], tenant: Tenant) -> Log:
    return Log(stack, producer, tenant)


def dead_lettered() -> float:
    return REGISTRY.get_sample_value("vigil_dead_lettered_total", {"consumer": NAME}) or 0.0


def all_lag(settings: Settings, backend: LogBackend) -> int:
    return sum(backend.lag(settings.topic(NAME), settings.topic(Topic.INGEST_MONITORS)).values())


# --- the log into the database ----------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 4], ids=["serial", "parallel"])
def test_checkins_in_one_batch_keep_their_order_per_key(
    stack: Settings, engine: Engine, log: Log, log_backend: LogBackend, workers: int
) -> None:
    # Everything is written before the consumer starts, so it arrives in one batch.
    started = log.checkin(status="in_progress", monitor_config=HOURLY)
    log.checkin(check_in_id=started, status="ok")
    other = [
        log.checkin(monitor_slug=f"job-{i}", status="error", monitor_config=HOURLY)
        for i in range(5)
    ]
    log.raw(codecs.encode_monitor_message(codecs.ClockPulse()))
    log.raw(b"\xc1 not msgpack", b"bad")
    after_bad = log.checkin(monitor_slug="after-bad", monitor_config=HOURLY)

    with running(stack, workers) as alive:
        wait_until(lambda: len(checkins(engine)) == 7, "seven check-ins", alive)
        wait_until(lambda: all_lag(stack, log_backend) == 0, "the batch committed", alive)

    found = checkins(engine)
    first = found[uuid.UUID(started)]
    assert first.status == CheckInStatus.OK  # in_progress, then ok: one completed run
    assert first.duration is not None
    assert {found[uuid.UUID(g)].status for g in other} == {CheckInStatus.ERROR}
    assert found[uuid.UUID(after_bad)].status == CheckInStatus.OK
    (dead,) = read_messages(stack, log_backend, dlq_topic(NAME), expect=1)
    assert dead.value == b"\xc1 not msgpack"
    reason = dict(dead.headers)["reason"].decode()
    assert "not msgpack" in reason


@pytest.mark.parametrize("workers", [1, 4], ids=["serial", "parallel"])
def test_a_checkin_that_fails_unexpectedly_is_dead_lettered_with_the_reason(
    stack: Settings, engine: Engine, log: Log, log_backend: LogBackend, workers: int
) -> None:
    log.checkin(monitor_slug="broken", monitor_config=HOURLY)
    log.checkin(monitor_slug="fine", monitor_config=HOURLY)
    with running(stack, workers) as alive:
        wait_until(lambda: len(checkins(engine)) == 2, "two check-ins", alive)
    # A stored schedule that never runs (a row edited by hand, say) cannot compute the
    # next check-in: no processing error covers it.
    with engine.begin() as conn:
        conn.execute(
            monitor_table.update()
            .where(monitor_table.c.slug == "broken")
            .values(config={**dict(HOURLY_STORED), "schedule": "0 0 31 2 *"})
        )
    broken = log.checkin(monitor_slug="broken")
    after = log.checkin(monitor_slug="fine")
    with running(stack, workers) as alive:
        wait_until(lambda: uuid.UUID(after) in checkins(engine), "the next check-in", alive)
        (dead,) = read_messages(stack, log_backend, dlq_topic(NAME), expect=1)
    assert uuid.UUID(broken) not in checkins(engine)
    message = msgpack.unpackb(dead.value)
    assert orjson.loads(message["payload"])["check_in_id"] == broken
    reason = dict(dead.headers)["reason"].decode()
    assert "InvalidSchedule" in reason, reason


def test_a_clock_failure_after_the_batch_is_logged_and_its_checkins_stay_applied(
    stack: Settings, engine: Engine, log: Log, log_backend: LogBackend
) -> None:
    # The clock's storage is gone (a real failure of the tick after the batch applied).
    clock_partitions.drop(engine)
    try:
        first = log.checkin(monitor_config=HOURLY)
        second = log.checkin(monitor_slug="other", monitor_config=HOURLY)
        dead_before = dead_lettered()
        with running(stack) as alive:
            wait_until(lambda: len(checkins(engine)) == 2, "two check-ins", alive)
            wait_until(lambda: all_lag(stack, log_backend) == 0, "the batch committed", alive)
        found = checkins(engine)
        assert {found[uuid.UUID(first)].status, found[uuid.UUID(second)].status} == {
            CheckInStatus.OK
        }
        assert dead_lettered() == dead_before  # applied once, never dead-lettered
    finally:
        clock_partitions.create(engine)


def test_reference_examples_are_applied_and_a_pulse_ignored(
    stack: Settings, engine: Engine, log: Log, tenant: Tenant, log_backend: LogBackend
) -> None:
    example = msgpack.unpackb((EXAMPLES / "checkin.msgpack").read_bytes(), raw=False)
    payload = orjson.loads(example["payload"])
    with engine.begin() as conn:  # the example names no config: its monitor must exist
        monitor_store.ensure_monitor_with_config(
            conn,
            tenant.project,
            payload["monitor_slug"],
            {"schedule_type": "crontab", "schedule": "0 * * * *"},
            monitor_store.no_owners,
            10,
        )
    example["project_id"] = tenant.project.id
    log.raw(msgpack.packb(example, use_bin_type=True), b"example")
    log.raw((EXAMPLES / "clock_pulse.msgpack").read_bytes())
    dead_before = dead_lettered()

    with running(stack) as alive:
        wait_until(lambda: len(checkins(engine)) == 1, "the example's check-in", alive)
        wait_until(lambda: all_lag(stack, log_backend) == 0, "both committed", alive)

    (row,) = checkins(engine).values()
    assert row.guid == uuid.UUID(payload["check_in_id"])
    assert (row.status, row.duration) == (CheckInStatus.OK, 100_000)
    start = datetime.fromtimestamp(example["start_time"], UTC)
    added = row.date_added if row.date_added.tzinfo else row.date_added.replace(tzinfo=UTC)
    assert added == start - timedelta(seconds=100)
    assert dead_lettered() == dead_before  # the pulse was accepted


# --- occurrences ----------------------------------------------------------------------


def test_failure_produces_an_occurrence_and_recovery_resolves_it(
    stack: Settings, engine: Engine, log: Log, tenant: Tenant, log_backend: LogBackend
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    log.checkin(now - timedelta(hours=2), monitor_config=HOURLY)
    failed = log.checkin(now - timedelta(hours=1), status="error")
    log.checkin(now)

    with running(stack, workers=4) as alive:
        wait_until(lambda: len(checkins(engine)) == 3, "three check-ins", alive)
        occurrence, change = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, expect=2)

    with engine.connect() as conn:
        (incident,) = conn.execute(select(incident_table))
    key = f"{incident.grouphash}-{tenant.project.id}".encode()
    assert occurrence.key == key and change.key == key
    body = codecs.decode_occurrence_message(occurrence.value)
    assert body["payload_type"] == "occurrence"
    assert body["type"] == 4001
    assert body["project_id"] == tenant.project.id
    assert body["fingerprint"] == [incident.grouphash]
    assert body["issue_title"] == "Monitor failure: nightly"
    assert body["subtitle"] == "Your monitor has reached its failure threshold."
    assert body["level"] == "error"
    assert body["evidence_display"][0] == {
        "name": "Failure reason",
        "value": "An error check-in was detected",
        "important": True,
    }
    assert body["evidence_display"][1]["value"] == "production"
    assert body["event"]["tags"]["monitor.slug"] == "nightly"
    assert body["event"]["contexts"]["monitor"]["type"] == "cron_job"
    assert incident.starting_checkin_id == checkins(engine)[uuid.UUID(failed)].id
    status_change = codecs.decode_occurrence_message(change.value)
    assert status_change["payload_type"] == "status_change"
    assert status_change["fingerprint"] == [incident.grouphash]
    assert (status_change["new_status"], status_change["new_substatus"]) == (1, None)
    assert incident.resolving_checkin_id is not None


def test_killswitch_set_by_the_operator_drops_the_organizations_checkins(
    stack: Settings, engine: Engine, log: Log, tenant: Tenant
) -> None:
    with engine.begin() as conn:
        set_option(conn, CRONS_DISABLE_CHECKIN, [{"organization_id": tenant.org.id}])
    log.checkin(monitor_config=HOURLY)

    def recorded() -> bool:
        with engine.connect() as conn:
            records = processing_error_store.list_for_project(
                conn, tenant.project.id, datetime.now(UTC)
            )
        return [[e.to_dict() for e in r.errors] for r in records] == [[{"type": 15}]]

    with running(stack) as alive:
        wait_until(recorded, "the killswitch processing error", alive)
    assert checkins(engine) == {}


def test_an_occurrence_the_log_refuses_is_kept_and_written_by_a_later_flush(
    stack: Settings, engine: Engine, log: Log, tenant: Tenant, log_backend: LogBackend
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    log.checkin(now - timedelta(hours=2), monitor_config=HOURLY)
    log.checkin(now - timedelta(hours=1), status="error")
    # A consumer whose log refuses messages the size of an occurrence (check-ins fit):
    # the check-in commits, the produce fails after it.
    strict = replace(stack, max_message_bytes=700)

    def outbox_rows() -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(select(outbox_table)))

    with running(strict) as alive:
        wait_until(lambda: len(checkins(engine)) == 2, "two check-ins", alive)
        wait_until(lambda: all_lag(stack, log_backend) == 0, "the batch committed", alive)
    (kept,) = outbox_rows()
    with engine.connect() as conn:
        (incident,) = conn.execute(select(incident_table))
    assert bytes(kept.key) == f"{incident.grouphash}-{tenant.project.id}".encode()

    # `vigil periodic`'s flush (time as a parameter) writes it once and deletes it.
    job = PeriodicFlush(stack, log_backend)
    try:
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert job(engine, later) == 1
        assert job(engine, later) == 0
    finally:
        job.close()
    assert outbox_rows() == []
    (occurrence,) = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, expect=1)
    body = codecs.decode_occurrence_message(occurrence.value)
    assert (body["payload_type"], body["fingerprint"]) == ("occurrence", [incident.grouphash])


def test_a_consumer_flushes_rows_an_earlier_process_left(
    stack: Settings, engine: Engine, log: Log, log_backend: LogBackend
) -> None:
    # A row committed by a process that died before its flush.
    with engine.begin() as conn:
        outbox.enqueue(conn, Topic.INGEST_OCCURRENCES, b"left-1", b'{"left": "behind"}')
    log.checkin(monitor_config=HOURLY)

    with running(stack) as alive:
        wait_until(lambda: len(checkins(engine)) == 1, "the check-in", alive)
        (left,) = read_messages(stack, log_backend, Topic.INGEST_OCCURRENCES, expect=1)
    assert (left.key, left.value) == (b"left-1", b'{"left": "behind"}')
    with engine.connect() as conn:
        assert outbox.pending(conn) == 0
