"""A consumer for the runner's tests: it records each message it applies in a sink table
of the test database, keyed by message id, so re-delivery is harmless and the order of
first application is kept.

Messages are JSON objects `{"id": str, "key": str, "seq": int}`; anything else is
rejected by `decode`. A message with `"poison": true` makes `apply` raise.

Run as a script (`python -m tests.support.sink_consumer`) it reads the settings from
VIGIL_* like `vigil consumer`, and:

- SINK_DELAY_MS: sleep this long inside each batch's transaction, after the inserts,
  so that a test can kill the process mid-batch;
- prints `applying <pid> <size>` before each batch and `applied <pid> <size>` after its
  commit, one line each, flushed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import Message
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
)

from vigil import logs
from vigil.config import Settings, load_settings
from vigil.db.engine import make_engine
from vigil.streams.backend import LogError
from vigil.streams.codecs import CodecError
from vigil.streams.runner import ConsumerDefinition, RetryLater, run_consumer
from vigil.streams.topics import Topic

NAME = "test-sink"
TOPIC = Topic.INGEST_OCCURRENCES.value

sink_metadata = MetaData()
# One row per message id; `n` is the order of first application.
sink = Table(
    "test_sink",
    sink_metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("key", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
)
# One row per committed `apply` call: how many of its messages were already applied.
sink_calls = Table(
    "test_sink_calls",
    sink_metadata,
    Column("n", Integer, primary_key=True, autoincrement=True),
    Column("pid", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("already_applied", Integer, nullable=False),
    Column("single", Boolean, nullable=False),
)


def decode(payload: KafkaPayload) -> dict[str, Any]:
    try:
        value = orjson.loads(payload.value)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("id"), str):
        raise CodecError("expected an object with a string id")
    if not isinstance(value.get("key"), str) or not isinstance(value.get("seq"), int):
        raise CodecError("expected a string key and an integer seq")
    return value


def definition(
    engine: Engine,
    delay_s: float = 0.0,
    announce: bool = False,
    log_failures: int = 0,
    retry_later: int = 0,
) -> ConsumerDefinition[dict[str, Any]]:
    """The sink. `log_failures`: the first that many `apply` calls, once their
    transaction committed, raise the LogError a producer raises when the log does not
    acknowledge a message (as a consumer writing to the log after its commit sees).
    `retry_later`: the first that many calls ask, before writing anything, to be
    retried later (as a consumer waiting for another's decision does)."""
    pid = os.getpid()
    failures_left = [log_failures]
    waits_left = [retry_later]

    def apply(batch: Sequence[Message[dict[str, Any]]]) -> None:
        if waits_left[0] > 0:
            waits_left[0] -= 1
            raise RetryLater("waiting for a decision")
        values = [m.payload for m in batch]
        if announce:
            print(f"applying {pid} {len(values)}", flush=True)
        with engine.begin() as conn:
            ids = [v["id"] for v in values]
            present = set(conn.scalars(select(sink.c.id).where(sink.c.id.in_(ids))))
            for value in values:
                if value.get("poison"):
                    raise RuntimeError(f"poison message {value['id']}")
            rows = [
                {"id": v["id"], "key": v["key"], "seq": v["seq"], "pid": pid}
                for v in values
                if v["id"] not in present
            ]
            if rows:
                conn.execute(insert(sink), rows)
            conn.execute(
                insert(sink_calls).values(
                    pid=pid,
                    size=len(values),
                    already_applied=len(present),
                    single=len(values) == 1,
                )
            )
            if delay_s:
                time.sleep(delay_s)
        if failures_left[0] > 0:
            failures_left[0] -= 1
            raise LogError("message to 'sink-out' was not acknowledged: broker unreachable")
        if announce:
            print(f"applied {pid} {len(values)}", flush=True)

    return ConsumerDefinition(name=NAME, topic=TOPIC, decode=decode, apply=apply)


def applied_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(sink)) or 0)


def main() -> int:
    settings: Settings = load_settings()
    logs.configure(settings.log_level, settings.log_format, role="sink")
    engine = make_engine(settings)
    delay_s = int(os.environ.get("SINK_DELAY_MS", "0")) / 1000
    try:
        run_consumer(definition(engine, delay_s, announce=True), settings)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
