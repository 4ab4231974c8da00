"""Producing to `ingest-occurrences` (spec A7): the Python API other parts of vigil (crons,
detectors, the occurrences HTTP endpoint) use to hand the issue platform an occurrence
or a status change.

`vigil.issues.messages` decides what a message is (its key and value, and the errors of
a message that cannot be built); this module only writes it to the log and waits for
the log's acknowledgement, through `vigil.streams.runner.produce`.

Unlike the reference, which logs and swallows a failed produce, a message the log did
not acknowledge raises `LogError` (`MessageTooLarge` for one over the size limit): the
caller decides whether to retry (a consumer's batch is then re-delivered) or to answer
503, so nothing is lost silently. vigil always has a log (the embedded one by default),
so there is no "process in place" fallback either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from arroyo.backends.abstract import Producer
from arroyo.backends.kafka import KafkaPayload
from sqlalchemy import Connection

from vigil.config import Settings
from vigil.issues.enums import PayloadType
from vigil.issues.messages import OccurrenceMessage, build_message
from vigil.issues.occurrence import IssueOccurrence
from vigil.issues.status_change_message import StatusChangeMessage
from vigil.streams import outbox
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import encode_json
from vigil.streams.runner import ACK_TIMEOUT_S, produce
from vigil.streams.topics import Topic

ProduceTarget = LogBackend | Producer[KafkaPayload]
"""Where messages go: a producer (reuse one for many messages) or a backend (a producer
is made for each message and closed)."""


def produce_message(
    target: ProduceTarget,
    settings: Settings,
    message: OccurrenceMessage,
    *,
    timeout: float = ACK_TIMEOUT_S,
) -> OccurrenceMessage:
    """Write a built message to `ingest-occurrences` with its key and wait for the log's
    acknowledgement; returns the message. MessageTooLarge / LogError if the log does not
    take it."""
    produce(
        target,
        settings,
        Topic.INGEST_OCCURRENCES,
        encode_json(message.value),
        message.key,
        timeout=timeout,
    )
    return message


def produce_occurrence(
    target: ProduceTarget,
    settings: Settings,
    occurrence: IssueOccurrence | None,
    *,
    event_data: Mapping[str, Any] | None = None,
    is_buffered_spans: bool = False,
    timeout: float = ACK_TIMEOUT_S,
) -> OccurrenceMessage:
    """Produce an occurrence (payload_type "occurrence"), with its event if given, keyed
    `"{fingerprint[0]}-{project_id}"` on the raw first fingerprint part (no key for an
    empty fingerprint). `occurrence.fingerprint` holds the parts as the detector made
    them: the consumer hashes them.

    ValueError("occurrence must be provided") without an occurrence and ValueError("Event
    id on occurrence and event_data must be the same") when `event_data` names another
    event, before anything is written; MessageTooLarge / LogError from the log."""
    message = build_message(
        PayloadType.OCCURRENCE,
        occurrence=occurrence,
        event_data=event_data,
        is_buffered_spans=is_buffered_spans,
    )
    return produce_message(target, settings, message, timeout=timeout)


def produce_status_change(
    target: ProduceTarget,
    settings: Settings,
    status_change: StatusChangeMessage | None,
    *,
    timeout: float = ACK_TIMEOUT_S,
) -> OccurrenceMessage:
    """Produce a status change (payload_type "status_change") keyed like the occurrences
    of its fingerprint, so it is applied after them. Build one with
    `status_change_message.new_status_change`.

    ValueError("status_change must be provided") without one, before anything is
    written; MessageTooLarge / LogError from the log."""
    message = build_message(PayloadType.STATUS_CHANGE, status_change=status_change)
    return produce_message(target, settings, message, timeout=timeout)


def produce_payload(
    target: ProduceTarget,
    settings: Settings,
    payload: Mapping[str, Any],
    key: bytes | str | None,
    *,
    timeout: float = ACK_TIMEOUT_S,
) -> None:
    """Write an already-built wire payload (either kind) with its key, for producers that
    build payloads themselves (see `payload_producer`). MessageTooLarge / LogError from
    the log."""
    produce(
        target,
        settings,
        Topic.INGEST_OCCURRENCES,
        encode_json(dict(payload)),
        key,
        timeout=timeout,
    )


OutboxRow = tuple[str, bytes | str | None, bytes]


def outbox_row(payload: Mapping[str, Any], key: bytes | str | None) -> OutboxRow:
    """The outbox row (topic, key, value) of an already-built wire payload, for
    `vigil.streams.outbox.enqueue_many`."""
    return (Topic.INGEST_OCCURRENCES, key, encode_json(dict(payload)))


def enqueue_payload(conn: Connection, payload: Mapping[str, Any], key: bytes | str | None) -> None:
    """The transactional form of `produce_payload`: the message goes to the outbox in
    the caller's transaction (`vigil.streams.outbox`), so it exists exactly when what
    decided it committed; the caller's flush produces it. How crons hands the issue
    platform its monitor-failure occurrences and resolving status changes."""
    outbox.enqueue_many(conn, [outbox_row(payload, key)])


def payload_producer(
    target: ProduceTarget, settings: Settings
) -> Callable[[dict[str, Any], str], None]:
    """A `produce(payload, key)` callable writing to `ingest-occurrences` through
    `target`: what the check-in processing takes as its `produce_occurrence`."""

    def produce_one(payload: dict[str, Any], key: str) -> None:
        produce_payload(target, settings, payload, key)

    return produce_one
