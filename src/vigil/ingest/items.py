"""What each item of an accepted envelope becomes. No I/O.

`plan_envelope` turns an envelope into the `ingest-monitors` messages to write (one per
valid `check_in` item) and the items to drop, each with a reason. It never fails: an
envelope the parser accepted is always answered 200, as Relay does; dropped items are
counted and logged by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vigil.ingest.check_in_item import EdgeCheckIn, InvalidCheckIn, read_check_in
from vigil.ingest.envelope_format import Envelope
from vigil.streams.codecs import CheckInMessage, encode_monitor_message

RETENTION_DAYS = 90
CHECK_IN = "check_in"

# Item types Sentry clients send, used as metric labels; anything else is "other", so a
# client cannot grow the label set.
KNOWN_ITEM_TYPES = frozenset(
    {
        "attachment",
        "check_in",
        "client_report",
        "event",
        "feedback",
        "form_data",
        "log",
        "metric_buckets",
        "nel",
        "otel_log",
        "otel_span",
        "profile",
        "profile_chunk",
        "raw_security",
        "replay_event",
        "replay_recording",
        "replay_video",
        "security",
        "session",
        "sessions",
        "span",
        "statsd",
        "trace_metric",
        "transaction",
        "unreal_report",
        "user_report",
    }
)

UNSUPPORTED_TYPE = "unsupported_type"


@dataclass(frozen=True)
class MonitorWrite:
    """One `ingest-monitors` message: routing key and encoded value, with what names
    its check-in in an answer: the monitor slug and, for an envelope's, the 1-based
    position of its item in the envelope."""

    key: bytes
    value: bytes
    slug: str
    item: int | None = None


@dataclass(frozen=True)
class DroppedItem:
    """An item accepted but not processed. `item_type` and `reason` are metric labels
    (bounded sets); `detail` is for the log line."""

    item_type: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Plan:
    writes: tuple[MonitorWrite, ...]
    dropped: tuple[DroppedItem, ...]


def item_type_label(item_type: str) -> str:
    return item_type if item_type in KNOWN_ITEM_TYPES else "other"


def plan_envelope(
    envelope: Envelope, *, project_id: int, sdk: str | None, received_at: float
) -> Plan:
    """The messages to write and the items to drop for `envelope` sent to `project_id`.

    Each valid `check_in` item becomes a `CheckInMessage` whose payload is the item's
    normalised check-in (`read_check_in`), `start_time` is `received_at` and key is the
    routing key of its (project, slug, environment). Invalid check-ins and items of
    other types are dropped.
    """
    writes: list[MonitorWrite] = []
    dropped: list[DroppedItem] = []
    for position, item in enumerate(envelope.items, start=1):
        label = item_type_label(item.type)
        if item.type != CHECK_IN:
            dropped.append(
                DroppedItem(label, UNSUPPORTED_TYPE, f"item type {item.type!r} is not ingested")
            )
            continue
        try:
            check_in = read_check_in(item.payload)
        except InvalidCheckIn as exc:
            dropped.append(DroppedItem(label, exc.reason.value, str(exc)))
            continue
        write = monitor_write(check_in, project_id=project_id, sdk=sdk, received_at=received_at)
        writes.append(replace(write, item=position))
    return Plan(tuple(writes), tuple(dropped))


def monitor_write(
    check_in: EdgeCheckIn, *, project_id: int, sdk: str | None, received_at: float
) -> MonitorWrite:
    """The `ingest-monitors` message of one normalised check-in received at
    `received_at` for `project_id`."""
    message = CheckInMessage(
        payload=check_in.payload,
        start_time=received_at,
        project_id=project_id,
        sdk=sdk,
        retention_days=RETENTION_DAYS,
    )
    return MonitorWrite(
        check_in.routing_key(project_id), encode_monitor_message(message), check_in.slug
    )
