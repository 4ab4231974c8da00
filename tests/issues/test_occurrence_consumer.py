"""The ingest-occurrences consumer run for real with `run_consumer`, on both logs
(embedded + SQLite, Kafka + PostgreSQL), batched and single-message: valid messages
become issues, the reference's example among them; undecodable, malformed and
unknown-project messages go to the dead-letter topic with their reason while the rest
of their fingerprint group is applied; and a replayed batch changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Message, Partition
from arroyo.types import Topic as ArroyoTopic
from sqlalchemy import Engine, select

from tests.issues.occurrences import (
    count,
    groups,
    make_project,
    occurrence,
    occurrences,
    status_change,
)
from tests.support.consumers import consumer_thread, wait_until
from tests.support.log_reader import headers_of, read_topic
from vigil.config import Settings
from vigil.db.tables import (
    group,
    grouphash,
    issue_noise_counter,
    processed_message,
    quota_bucket,
)
from vigil.issues.consumer import NAME, OPTIONS_EVERY, OccurrenceConsumer
from vigil.issues.enums import GroupStatus
from vigil.issues.fingerprint import md5_hex
from vigil.issues.messages import message_key
from vigil.issues.quota import RATE_LIMIT_ENABLED_OPTION, RATE_LIMIT_QUOTA_OPTION
from vigil.options import set_option
from vigil.streams.backend import LogBackend, get_backend
from vigil.streams.consumers import get_definition
from vigil.streams.runner import produce
from vigil.streams.topics import Topic, dlq_topic

EXAMPLE = (
    Path(__file__).resolve().parents[3]
    / "shared/vendor-data/sentry-kafka-schemas/examples/ingest-occurrences/1/monitor-failure.json"
)
WAIT_S = 120.0


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


def send(producer: Producer[KafkaPayload], settings: Settings, payload: Any) -> None:
    if isinstance(payload, bytes):
        produce(producer, settings, Topic.INGEST_OCCURRENCES, payload, key=b"garbage")
        return
    key = message_key(payload.get("fingerprint") or [], payload.get("project_id", 0))
    produce(producer, settings, Topic.INGEST_OCCURRENCES, orjson.dumps(payload), key=key)


def group_of(engine: Engine, fingerprint: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(group)
            .join(grouphash, grouphash.c.group_id == group.c.id)
            .where(grouphash.c.hash == md5_hex(fingerprint))
        ).one()


def lag(settings: Settings, backend: LogBackend) -> int:
    group_name = settings.topic(NAME)  # the consumer group carries the prefix too
    return sum(backend.lag(group_name, settings.topic(Topic.INGEST_OCCURRENCES)).values())


def test_the_consumer_is_registered(stack: Settings) -> None:
    definition = get_definition("ingest-occurrences", stack)
    assert (definition.name, definition.topic) == (NAME, Topic.INGEST_OCCURRENCES)


@pytest.mark.parametrize("mode", ["batched", "single"])
def test_consumer_applies_valid_messages_and_dead_letters_the_rest(
    stack: Settings,
    engine: Engine,
    log_backend: LogBackend,
    producer: Producer[KafkaPayload],
    mode: str,
) -> None:
    project = make_project(engine)
    example = orjson.loads(EXAMPLE.read_bytes())
    example["project_id"] = example["event"]["project_id"] = project.id
    broken = occurrence(project.id, "fp-a")
    del broken["issue_title"]
    messages: list[Any] = [
        occurrence(project.id, "fp-a"),
        b"\x00 not json",
        broken,
        occurrence(project.id + 50, "fp-a"),
        occurrence(project.id, "fp-a"),
        status_change(project.id, "fp-b", GroupStatus.RESOLVED, None),  # no such group
        example,
        occurrence(project.id, "fp-b"),
        status_change(project.id, "fp-b", GroupStatus.RESOLVED, None),
    ]
    for payload in messages:
        send(producer, stack, payload)
    settings = replace(stack, batch_time_ms=1000, occurrence_mode=mode, occurrence_workers=2)
    consumer = OccurrenceConsumer(settings)

    with consumer_thread(consumer.definition(), settings) as alive:
        wait_until(lambda: lag(stack, log_backend) == 0, "the commit", alive)
    consumer.close()

    assert sorted(g.title for g in groups(engine)) == [
        "Monitor failure: poll_service",
        "Something broke",
        "Something broke",
    ]
    fp_a, fp_b = group_of(engine, "fp-a"), group_of(engine, "fp-b")
    assert (fp_a.times_seen, fp_b.times_seen) == (2, 1)
    assert (fp_a.status, fp_b.status) == (GroupStatus.UNRESOLVED, GroupStatus.RESOLVED)
    assert len(occurrences(engine)) == 4

    dead = read_topic(stack, log_backend, dlq_topic(NAME), expect=3)
    reasons = sorted(headers_of(d)["reason"] for d in dead)
    assert reasons[0].startswith("CodecError")
    assert reasons[1] == "InvalidEventPayloadError: Missing required field: issue_title"
    assert reasons[2] == f"UnknownProjectError: project {project.id + 50} does not exist"


def test_replaying_a_batch_applies_nothing_twice(stack: Settings, engine: Engine) -> None:
    project = make_project(engine)
    payloads = [occurrence(project.id, "fp") for _ in range(3)]
    batch = batch_of(payloads)
    consumer = OccurrenceConsumer(stack)
    assert consumer.apply(batch) == []
    # a crash before the commit: the same batch again, after the dedupe window
    later = OccurrenceConsumer(stack, clock=lambda: datetime.now(UTC) + timedelta(hours=1))
    assert later.apply(batch) == []
    consumer.close()
    later.close()
    [grp] = groups(engine)
    assert grp.times_seen == 3
    assert len(occurrences(engine)) == 3


def batch_of(payloads: list[dict[str, Any]]) -> list[Message[dict[str, Any]]]:
    partition = Partition(ArroyoTopic("t"), 0)
    return [
        Message(BrokerValue(p, partition, i, datetime.now(UTC))) for i, p in enumerate(payloads)
    ]


def test_rate_limit_options_limit_occurrences_per_fingerprint(
    stack: Settings, engine: Engine
) -> None:
    project = make_project(engine)
    with engine.begin() as conn:
        set_option(conn, RATE_LIMIT_ENABLED_OPTION, True)
        set_option(conn, RATE_LIMIT_QUOTA_OPTION, {"limit": 2})
    clock = [datetime.now(UTC)]
    consumer = OccurrenceConsumer(stack, clock=lambda: clock[0])
    payloads = [occurrence(project.id, "hot") for _ in range(3)] + [occurrence(project.id, "cold")]
    assert consumer.apply(batch_of(payloads)) == []
    with engine.begin() as conn:
        set_option(conn, RATE_LIMIT_ENABLED_OPTION, False)
    # The options read are used for OPTIONS_EVERY: still limited (in the quota's minute),
    assert consumer.apply(batch_of([occurrence(project.id, "hot")])) == []
    assert group_of(engine, "hot").times_seen == 2
    # then read again: the limit is lifted.
    clock[0] += OPTIONS_EVERY
    assert consumer.apply(batch_of([occurrence(project.id, "hot")])) == []
    consumer.close()
    assert (group_of(engine, "hot").times_seen, group_of(engine, "cold").times_seen) == (3, 1)
    # dropped occurrences are not stored: 2 + 1 + the one after the limit was lifted
    assert len(occurrences(engine)) == 4


def test_expired_dedupe_ids_noise_counters_and_quota_buckets_are_forgotten(
    stack: Settings, engine: Engine
) -> None:
    project = make_project(engine)
    now = datetime.now(UTC)
    clock = [now]
    consumer = OccurrenceConsumer(stack, clock=lambda: clock[0])
    noisy = occurrence(project.id, "noisy", type=1006)  # noise gate: counted, no group
    resolve = status_change(project.id, "kept", GroupStatus.RESOLVED, None)
    assert consumer.apply(batch_of([noisy, occurrence(project.id, "kept"), resolve])) == []
    # only the status change has a dedupe record: an occurrence's is its stored row
    assert (count(engine, processed_message), count(engine, issue_noise_counter)) == (1, 1)
    assert count(engine, quota_bucket) == 1  # the creation quota of "kept"
    clock[0] = now + timedelta(days=2)
    assert consumer.apply(batch_of([])) == []
    consumer.close()
    assert count(engine, processed_message) == 0
    assert count(engine, issue_noise_counter) == 0
    assert count(engine, quota_bucket) == 0
    assert len(groups(engine)) == 1
