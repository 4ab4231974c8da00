"""The consumer's pure parts, as tables: how a batch is split by processing key, the
newest time per partition the clock will tick from, and the per-minute rate limit that
forgets minutes that are over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arroyo.backends.kafka import KafkaPayload
from arroyo.types import BrokerValue, Message, Partition, Topic

from vigil.monitors.checkin_rate_limit import RATE_LIMIT_HORIZON, MinuteRateLimiter
from vigil.monitors.consumer import (
    DecodedCheckIn,
    MonitorItem,
    decode,
    group_by_key,
    latest_timestamps,
    shares,
)
from vigil.monitors.processing_errors import CheckinItem
from vigil.streams.codecs import CheckInMessage, ClockPulse, CodecError, encode_monitor_message

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def item(slug: str, env: Any = None, project: int = 1, n: int = 0) -> CheckinItem:
    payload: dict[str, Any] = {"monitor_slug": slug, "status": "ok", "n": n}
    if env is not None:
        payload["environment"] = env
    return CheckinItem(T0, 0, {"project_id": project}, payload)


def test_groups_by_processing_key_in_arrival_order() -> None:
    items = [
        item("a", n=0),
        item("b", n=1),
        item("A", n=2),  # slugified: the same monitor as "a"
        item("a", "production", n=3),  # raw environment: another key
        item("a", project=2, n=4),
        item("a", n=5),
    ]
    groups = group_by_key(items)
    assert {k: [i.payload["n"] for i in g] for k, g in groups.items()} == {
        "1:a:None": [0, 2, 5],
        "1:b:None": [1],
        "1:a:production": [3],
        "2:a:None": [4],
    }


@pytest.mark.parametrize(
    ("sizes", "workers", "expected"),
    [
        ([3, 1, 2], 4, [[0, 0, 0], [2, 2], [1]]),  # fewer groups than workers
        ([1, 1, 1, 1, 1], 2, [[0, 2, 4], [1, 3]]),
        ([5, 1, 1, 1], 2, [[0] * 5, [1, 2, 3]]),  # largest first, then the least loaded
        ([2], 1, [[0, 0]]),
    ],
)
def test_key_groups_are_dealt_whole_and_in_order(
    sizes: list[int], workers: int, expected: list[list[int]]
) -> None:
    groups = [[item(f"m{g}", n=i) for i in range(size)] for g, size in enumerate(sizes)]
    dealt = shares(groups, workers)
    assert [[int(i.payload["monitor_slug"][1:]) for i in share] for share in dealt] == expected
    for share in dealt:  # each key's check-ins in their order
        for g in {i.payload["monitor_slug"] for i in share}:
            ns = [i.payload["n"] for i in share if i.payload["monitor_slug"] == g]
            assert ns == sorted(ns)


def message(partition: int, at: datetime) -> Message[MonitorItem]:
    value = BrokerValue[MonitorItem](
        ClockPulse(), Partition(Topic("t"), partition), 0, at.replace(tzinfo=None)
    )
    return Message(value)


def test_latest_timestamps_per_partition() -> None:
    batch = [
        message(0, T0),
        message(1, T0 + 3 * MINUTE),
        message(0, T0 + MINUTE),
        message(1, T0 + 2 * MINUTE),  # never behind the newest already seen
    ]
    assert latest_timestamps(batch) == {0: T0 + MINUTE, 1: T0 + 3 * MINUTE}
    assert latest_timestamps([]) == {}


@pytest.mark.parametrize(
    ("sent", "limited"),
    [
        # (key, minutes after T0) per check-in ; which were limited
        ([("k", 0)] * 6, [False] * 6),
        ([("k", 0)] * 7, [False] * 6 + [True]),
        ([("k", 0)] * 6 + [("k", 1)], [False] * 7),  # a new minute, a new bucket
        ([("k", 0)] * 6 + [("j", 0)], [False] * 7),  # keys are counted apart
    ],
)
def test_six_per_key_and_minute(sent: list[tuple[str, int]], limited: list[bool]) -> None:
    limiter = MinuteRateLimiter()
    assert [limiter.is_limited(k, T0 + m * MINUTE) for k, m in sent] == limited


def test_minutes_that_are_over_are_forgotten() -> None:
    limiter = MinuteRateLimiter()
    for minute in range(100):
        for key in ("a", "b", "c"):
            limiter.is_limited(key, T0 + minute * MINUTE)
    kept = sorted(limiter.buckets)
    newest = T0 + 99 * MINUTE
    assert kept[0] >= newest - RATE_LIMIT_HORIZON and kept[-1] == newest
    # a late message of a minute still kept is counted in its bucket
    late = newest - MINUTE
    assert [limiter.is_limited("a", late) for _ in range(6)] == [False] * 5 + [True]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [(b"{not json", "not JSON"), (b"[1, 2]", "must be a JSON object")],
)
def test_a_checkin_whose_payload_is_not_a_json_object_is_refused(
    payload: bytes, reason: str
) -> None:
    message = CheckInMessage(payload, 1.0, 1, None, 90)
    with pytest.raises(CodecError, match=reason):
        decode(KafkaPayload(None, encode_monitor_message(message), []))


def test_a_checkin_decodes_with_its_payload() -> None:
    message = CheckInMessage(b'{"monitor_slug": "a"}', 1.5, 7, "sdk/1", 90)
    decoded = decode(KafkaPayload(None, encode_monitor_message(message), []))
    assert isinstance(decoded, DecodedCheckIn)
    assert decoded.payload == {"monitor_slug": "a"}
    assert decoded.message_map()["project_id"] == 7
