"""What the edge checks in a check-in item, the routing key, and what an envelope's
items become (`plan_envelope`), as tables."""

from __future__ import annotations

import uuid

import orjson
import pytest

from vigil.ingest.check_in_item import (
    CheckInRef,
    InvalidCheckIn,
    InvalidReason,
    inspect_check_in,
    routing_key,
)
from vigil.ingest.envelope_format import parse_envelope
from vigil.ingest.items import DroppedItem, plan_envelope
from vigil.streams.codecs import CheckInMessage, decode_monitor_message


@pytest.mark.parametrize(
    ("project_id", "slug", "environment", "expected"),
    [
        (1, "my-monitor", None, "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "production", "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "", "9aa99731-a8e3-5594-9f00-c3e8a62c2b11"),
        (1, "my-monitor", "prod", "f97ad155-c5c6-57f4-b748-03a301a14e54"),
    ],
)
def test_routing_key_is_relays_uuid(
    project_id: int, slug: str, environment: str | None, expected: str
) -> None:
    assert routing_key(project_id, slug, environment) == uuid.UUID(expected).bytes


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"monitor_slug":"job"}', CheckInRef("job", None)),
        (b'{"monitor_slug":"job","environment":"prod"}', CheckInRef("job", "prod")),
        (b'{"monitor_slug":"job","environment":""}', CheckInRef("job", None)),
        (b'{"monitor_slug":"job","environment":5}', CheckInRef("job", None)),
        (orjson.dumps({"monitor_slug": "é" * 60}), CheckInRef("é" * 50, None)),
        (b'{"monitor_slug":"Not A Slug Yet"}', CheckInRef("Not A Slug Yet", None)),
    ],
)
def test_inspect_check_in(payload: bytes, expected: CheckInRef) -> None:
    assert inspect_check_in(payload) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", InvalidReason.NOT_JSON),
        (b"{", InvalidReason.NOT_JSON),
        (b"[]", InvalidReason.NOT_AN_OBJECT),
        (b'"job"', InvalidReason.NOT_AN_OBJECT),
        (b"{}", InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":null}', InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":7}', InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":""}', InvalidReason.EMPTY_SLUG),
        (b'{"monitor_slug":"   "}', InvalidReason.EMPTY_SLUG),
    ],
)
def test_what_cannot_be_a_check_in(payload: bytes, reason: InvalidReason) -> None:
    with pytest.raises(InvalidCheckIn) as caught:
        inspect_check_in(payload)
    assert caught.value.reason is reason


def test_plan_writes_each_valid_check_in_and_drops_the_rest() -> None:
    good = b'{"monitor_slug":"job","status":"ok","environment":"prod"}'
    body = b"\n".join(
        [
            b"{}",
            b'{"type":"check_in"}',
            good,
            b'{"type":"check_in"}',
            b'{"status":"ok"}',
            b'{"type":"event"}',
            b"{}",
            b'{"type":"something_new"}',
            b"{}",
        ]
    )
    plan = plan_envelope(
        parse_envelope(body), project_id=42, sdk="sentry.python/2.75.0", received_at=1700000000.5
    )
    assert [w.key for w in plan.writes] == [routing_key(42, "job", "prod")]
    assert decode_monitor_message(plan.writes[0].value) == CheckInMessage(
        payload=good,
        start_time=1700000000.5,
        project_id=42,
        sdk="sentry.python/2.75.0",
        retention_days=90,
    )
    assert plan.dropped == (
        DroppedItem("check_in", "missing_slug", "check-in has no string monitor_slug"),
        DroppedItem("event", "unsupported_type", "item type 'event' is not ingested"),
        DroppedItem("other", "unsupported_type", "item type 'something_new' is not ingested"),
    )
