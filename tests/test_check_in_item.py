"""The edge's check-in normalisation (B4.1), the routing key, and what an envelope's items
become (`plan_envelope`), as tables."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.ingest.check_in_item import (
    NIL_CHECK_IN_ID,
    EdgeCheckIn,
    InvalidCheckIn,
    InvalidReason,
    check_in_from_body,
    check_in_from_query,
    normalise_monitor_config,
    read_check_in,
    routing_key,
)
from vigil.ingest.envelope_format import parse_envelope
from vigil.ingest.items import DroppedItem, plan_envelope
from vigil.streams.codecs import CheckInMessage, decode_monitor_message

ID = "71ddda27a9e54e5b8f1b0e7b7f6c3a10"
DASHED = str(uuid.UUID(ID))


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


def normalised(value: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(read_check_in(orjson.dumps(value)).payload)  # type: ignore[no-any-return]


BASE = {"check_in_id": ID, "monitor_slug": "job", "status": "ok"}


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        # What sentry-cli sends passes unchanged.
        ({**BASE, "environment": "production"}, {**BASE, "environment": "production"}),
        # The SDK's extra fields are dropped; contexts keep only the trace id.
        (
            {
                **BASE,
                "type": "check_in",
                "release": "probe@1.2.3",
                "duration": None,
                "event_id": ID,
                "timestamp": "2026-11-22T09:35:49.814392Z",
                "platform": "python",
                "sdk": {"name": "sentry.python"},
                "contexts": {"trace": {"trace_id": DASHED, "span_id": "ab"}, "os": {}},
            },
            {**BASE, "contexts": {"trace": {"trace_id": ID}}},
        ),
        ({**BASE, "contexts": {"os": {}}}, BASE),
        ({**BASE, "contexts": "nope"}, BASE),
        # A trace id that is not a UUID is kept for the consumer to report.
        (
            {**BASE, "contexts": {"trace": {"trace_id": "xyz"}}},
            {**BASE, "contexts": {"trace": {"trace_id": "xyz"}}},
        ),
        # check_in_id: any UUID form, absent/null/empty is the nil UUID.
        ({**BASE, "check_in_id": DASHED}, BASE),
        ({**BASE, "check_in_id": DASHED.upper()}, BASE),
        ({**BASE, "check_in_id": "{" + DASHED + "}"}, BASE),
        ({**BASE, "check_in_id": "urn:uuid:" + DASHED}, BASE),
        ({"monitor_slug": "job", "status": "ok"}, {**BASE, "check_in_id": NIL_CHECK_IN_ID}),
        ({**BASE, "check_in_id": None}, {**BASE, "check_in_id": NIL_CHECK_IN_ID}),
        ({**BASE, "check_in_id": ""}, {**BASE, "check_in_id": NIL_CHECK_IN_ID}),
        # status: the three client statuses as written, anything else is unknown.
        ({**BASE, "status": "in_progress"}, {**BASE, "status": "in_progress"}),
        ({**BASE, "status": "error"}, {**BASE, "status": "error"}),
        ({**BASE, "status": "OK"}, {**BASE, "status": "unknown"}),
        ({**BASE, "status": " error "}, {**BASE, "status": "unknown"}),
        ({**BASE, "status": "missed"}, {**BASE, "status": "unknown"}),
        ({**BASE, "status": "timeout"}, {**BASE, "status": "unknown"}),
        ({**BASE, "status": ""}, {**BASE, "status": "unknown"}),
        ({**BASE, "status": 1}, {**BASE, "status": "unknown"}),
        # slug: cut to 50 characters (not bytes), otherwise as sent.
        ({**BASE, "monitor_slug": "é" * 60}, {**BASE, "monitor_slug": "é" * 50}),
        ({**BASE, "monitor_slug": "Not A Slug!"}, {**BASE, "monitor_slug": "Not A Slug!"}),
        # environment: any string up to 64 characters, null is absent.
        ({**BASE, "environment": ""}, {**BASE, "environment": ""}),
        ({**BASE, "environment": "e" * 64}, {**BASE, "environment": "e" * 64}),
        ({**BASE, "environment": None}, BASE),
        # duration: float seconds, numeric strings accepted.
        ({**BASE, "duration": 2}, {**BASE, "duration": 2.0}),
        ({**BASE, "duration": 1.5}, {**BASE, "duration": 1.5}),
        ({**BASE, "duration": " 0.25 "}, {**BASE, "duration": 0.25}),
        ({**BASE, "duration": "1e3"}, {**BASE, "duration": 1000.0}),
        # Out-of-range but finite durations are the consumer's to report.
        ({**BASE, "duration": -1}, {**BASE, "duration": -1.0}),
        ({**BASE, "duration": 1e300}, {**BASE, "duration": 1e300}),
        # monitor_config: only its keys, schedule in object form.
        (
            {
                **BASE,
                "monitor_config": {
                    "schedule": {"type": "interval", "value": "1", "unit": "minute", "x": 1},
                    "checkin_margin": 5,
                    "max_runtime": 30,
                    "timezone": "Europe/Berlin",
                    "failure_issue_threshold": 2,
                    "recovery_threshold": 3,
                    "owner": "team:ops",
                    "made_up": True,
                },
            },
            {
                **BASE,
                "monitor_config": {
                    "schedule": {"type": "interval", "value": 1, "unit": "minute"},
                    "checkin_margin": 5,
                    "max_runtime": 30,
                    "timezone": "Europe/Berlin",
                    "failure_issue_threshold": 2,
                    "recovery_threshold": 3,
                    "owner": "team:ops",
                },
            },
        ),
        ({**BASE, "monitor_config": None}, BASE),
    ],
)
def test_normalised_check_in(sent: dict[str, Any], expected: dict[str, Any]) -> None:
    assert normalised(sent) == expected


def test_normalised_payload_keeps_relays_key_order() -> None:
    sent = {
        "contexts": {"trace": {"trace_id": ID}},
        "monitor_config": {"schedule": {"type": "crontab", "value": "* * * * *"}},
        "duration": 1,
        "environment": "prod",
        "status": "ok",
        "monitor_slug": "job",
        "check_in_id": ID,
    }
    assert list(normalised(sent)) == [
        "check_in_id",
        "monitor_slug",
        "status",
        "environment",
        "duration",
        "monitor_config",
        "contexts",
    ]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"schedule": {"type": "crontab", "value": "0 3 * * *"}},
            {"schedule": {"type": "crontab", "value": "0 3 * * *"}},
        ),
        (
            {"schedule": {"type": "interval", "value": 10, "unit": "minute"}},
            {"schedule": {"type": "interval", "value": 10, "unit": "minute"}},
        ),
        (
            {"schedule": {"type": "Interval", "value": " 2 ", "unit": "HOURS"}},
            {"schedule": {"type": "Interval", "value": 2, "unit": "HOURS"}},
        ),
        # Not integer-like: passed on for the consumer to report.
        (
            {"schedule": {"type": "interval", "value": "two", "unit": "hour"}},
            {"schedule": {"type": "interval", "value": "two", "unit": "hour"}},
        ),
        ({"schedule": {"type": "interval"}}, {"schedule": {"type": "interval"}}),
        # The API's forms become object forms.
        ({"schedule": "@daily"}, {"schedule": {"type": "crontab", "value": "@daily"}}),
        (
            {"schedule": "0 * * * *", "schedule_type": "crontab"},
            {"schedule": {"type": "crontab", "value": "0 * * * *"}},
        ),
        (
            {"schedule": [2, "hour"], "schedule_type": "interval"},
            {"schedule": {"type": "interval", "value": 2, "unit": "hour"}},
        ),
        (
            {"schedule": ["3", "day"]},
            {"schedule": {"type": "interval", "value": 3, "unit": "day"}},
        ),
        # Contradictions are passed on as sent.
        (
            {"schedule": "0 * * * *", "schedule_type": "interval"},
            {"schedule": "0 * * * *", "schedule_type": "interval"},
        ),
        ({"schedule": 5}, {"schedule": 5}),
        ({"schedule_type": "crontab", "timezone": "UTC"}, {"timezone": "UTC"}),
        ({}, {}),
        ("not a config", "not a config"),
        ([1, 2], [1, 2]),
    ],
)
def test_monitor_config_shape(config: object, expected: object) -> None:
    assert normalise_monitor_config(config) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", InvalidReason.NOT_JSON),
        (b"{", InvalidReason.NOT_JSON),
        (b"[]", InvalidReason.NOT_AN_OBJECT),
        (b'"job"', InvalidReason.NOT_AN_OBJECT),
        (b"{}", InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":null,"status":"ok"}', InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":7,"status":"ok"}', InvalidReason.MISSING_SLUG),
        (b'{"monitor_slug":"","status":"ok"}', InvalidReason.EMPTY_SLUG),
        (b'{"monitor_slug":"   ","status":"ok"}', InvalidReason.EMPTY_SLUG),
        # nothing left once slugified, as Relay refuses it
        (b'{"monitor_slug":"\xf0\x9f\x99\x82","status":"ok"}', InvalidReason.EMPTY_SLUG),
        (b'{"monitor_slug":"..","status":"ok"}', InvalidReason.EMPTY_SLUG),
        (b'{"monitor_slug":"-_-","status":"ok"}', InvalidReason.EMPTY_SLUG),
        (b'{"monitor_slug":"a\\u0000b","status":"ok"}', InvalidReason.INVALID_SLUG),
        (b'{"monitor_slug":"job","status":"ok","environment":"\\u0000"}', "invalid_environment"),
        (b'{"monitor_slug":"job"}', InvalidReason.MISSING_STATUS),
        (b'{"monitor_slug":"job","status":null}', InvalidReason.MISSING_STATUS),
        (b'{"monitor_slug":"job","status":"ok","check_in_id":"nope"}', "invalid_check_in_id"),
        (b'{"monitor_slug":"job","status":"ok","check_in_id":12}', "invalid_check_in_id"),
        # Arabic-Indic digits: uuid.UUID reads them, Relay does not
        (
            b'{"monitor_slug":"job","status":"ok","check_in_id":"' + "\u0661".encode() * 32 + b'"}',
            "invalid_check_in_id",
        ),
        (
            b'{"monitor_slug":"job","status":"ok","check_in_id":"' + b"a" * 33 + b'"}',
            "invalid_check_in_id",
        ),
        (b'{"monitor_slug":"job","status":"ok","environment":5}', "invalid_environment"),
        (
            b'{"monitor_slug":"job","status":"ok","environment":"' + b"e" * 65 + b'"}',
            "invalid_environment",
        ),
        (b'{"monitor_slug":"job","status":"ok","duration":"fast"}', "invalid_duration"),
        (b'{"monitor_slug":"job","status":"ok","duration":true}', "invalid_duration"),
        (b'{"monitor_slug":"job","status":"ok","duration":"nan"}', "invalid_duration"),
        (b'{"monitor_slug":"job","status":"ok","duration":"inf"}', "invalid_duration"),
        (b'{"monitor_slug":"job","status":"ok","duration":"1e999"}', "invalid_duration"),
        (b'{"monitor_slug":"job","status":"ok","duration":[1]}', "invalid_duration"),
    ],
)
def test_what_the_edge_refuses(payload: bytes, reason: str) -> None:
    with pytest.raises(InvalidCheckIn) as caught:
        read_check_in(payload)
    assert caught.value.reason == reason


def test_a_config_nested_too_deeply_is_refused_not_a_crash() -> None:
    deep = b"[" * 300 + b"]" * 300
    payload = b'{"monitor_slug":"j","status":"ok","monitor_config":{"owner":' + deep + b"}}"
    with pytest.raises(InvalidCheckIn) as caught:
        read_check_in(payload)
    assert caught.value.reason is InvalidReason.TOO_DEEP
    # Unknown keys are dropped before encoding, however deep.
    ignored = b'{"monitor_slug":"j","status":"ok","monitor_config":{"x":' + deep + b"}}"
    assert orjson.loads(read_check_in(ignored).payload)["monitor_config"] == {}


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELDS = st.sampled_from(
    [
        "check_in_id",
        "monitor_slug",
        "status",
        "environment",
        "duration",
        "monitor_config",
        "contexts",
        "release",
    ]
)
CHECK_INS = st.dictionaries(FIELDS, JSON | st.text(max_size=70)) | st.fixed_dictionaries(
    {"monitor_slug": st.text(min_size=1, max_size=70), "status": st.text(max_size=12)},
    optional={
        "check_in_id": st.uuids().map(str) | st.text(max_size=40),
        "environment": st.text(max_size=70),
        "duration": st.floats() | st.text(max_size=10),
        "monitor_config": JSON,
        "contexts": st.fixed_dictionaries({"trace": st.fixed_dictionaries({"trace_id": JSON})}),
    },
)


@given(CHECK_INS)
def test_normalising_is_refusal_or_idempotent_with_only_known_keys(value: dict[str, Any]) -> None:
    try:
        first = read_check_in(orjson.dumps(value))
    except InvalidCheckIn:
        return
    again = read_check_in(first.payload)
    assert again == first
    normal = orjson.loads(first.payload)
    assert set(normal) <= {
        "check_in_id",
        "monitor_slug",
        "status",
        "environment",
        "duration",
        "monitor_config",
        "contexts",
    }
    assert normal["status"] in {"in_progress", "ok", "error", "unknown"}
    assert len(normal["check_in_id"]) == 32
    assert 0 < len(normal["monitor_slug"]) <= 50


def test_routing_uses_the_cut_slug_and_the_environment() -> None:
    check_in = read_check_in(orjson.dumps({"monitor_slug": "x" * 70, "status": "ok"}))
    assert (check_in.slug, check_in.environment) == ("x" * 50, None)
    assert check_in.routing_key(3) == routing_key(3, "x" * 50, None)
    empty_env = read_check_in(b'{"monitor_slug":"job","status":"ok","environment":""}')
    assert empty_env.environment is None


# --- the crons HTTP endpoint's two forms -------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "in_progress"}, {"status": "in_progress"}),
        ({"status": "missed"}, {"status": "unknown"}),
        (
            {"status": "ok", "check_in_id": DASHED, "environment": "prod", "duration": "12.5"},
            {"status": "ok", "check_in_id": ID, "environment": "prod", "duration": 12.5},
        ),
        # Empty parameters are absent; other parameters are ignored.
        (
            {"status": "ok", "check_in_id": "", "environment": "", "duration": "", "x": "1"},
            {"status": "ok"},
        ),
    ],
)
def test_check_in_from_query(params: dict[str, str], expected: dict[str, Any]) -> None:
    check_in = check_in_from_query("nightly", params)
    assert orjson.loads(check_in.payload) == {
        "check_in_id": NIL_CHECK_IN_ID,
        "monitor_slug": "nightly",
        **expected,
    }


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, InvalidReason.MISSING_STATUS),
        ({"status": ""}, InvalidReason.MISSING_STATUS),
        ({"status": "ok", "duration": "soon"}, InvalidReason.INVALID_DURATION),
        ({"status": "ok", "check_in_id": "42"}, InvalidReason.INVALID_CHECK_IN_ID),
        ({"status": "ok", "environment": "e" * 65}, InvalidReason.INVALID_ENVIRONMENT),
    ],
)
def test_check_in_from_query_refuses(params: dict[str, str], reason: InvalidReason) -> None:
    with pytest.raises(InvalidCheckIn) as caught:
        check_in_from_query("nightly", params)
    assert caught.value.reason is reason


def test_check_in_from_body_takes_the_slug_from_the_path() -> None:
    body = orjson.dumps({"monitor_slug": "other", "status": "ok"})
    check_in = check_in_from_body(body, "from-path")
    assert check_in == EdgeCheckIn(
        orjson.dumps({"check_in_id": NIL_CHECK_IN_ID, "monitor_slug": "from-path", "status": "ok"}),
        "from-path",
        None,
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", InvalidReason.NOT_JSON),
        (b"[1]", InvalidReason.NOT_AN_OBJECT),
        (b"null", InvalidReason.NOT_AN_OBJECT),
        (b"{}", InvalidReason.MISSING_STATUS),
    ],
)
def test_check_in_from_body_refuses(body: bytes, reason: InvalidReason) -> None:
    with pytest.raises(InvalidCheckIn) as caught:
        check_in_from_body(body, "job")
    assert caught.value.reason is reason


# --- envelopes ---------------------------------------------------------------------------


def test_plan_writes_each_valid_check_in_normalised_and_drops_the_rest() -> None:
    good = b'{"monitor_slug":"job","status":"ok","environment":"prod","release":"1"}'
    body = b"\n".join(
        [
            b"{}",
            b'{"type":"check_in"}',
            good,
            b'{"type":"check_in"}',
            b'{"status":"ok"}',
            b'{"type":"check_in"}',
            b'{"monitor_slug":"job","status":"missed","environment":"' + b"e" * 65 + b'"}',
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
        payload=orjson.dumps(
            {
                "check_in_id": NIL_CHECK_IN_ID,
                "monitor_slug": "job",
                "status": "ok",
                "environment": "prod",
            }
        ),
        start_time=1700000000.5,
        project_id=42,
        sdk="sentry.python/2.75.0",
        retention_days=90,
    )
    assert plan.dropped == (
        DroppedItem("check_in", "missing_slug", "check-in has no string monitor_slug"),
        DroppedItem("check_in", "invalid_environment", "environment is longer than 64 characters"),
        DroppedItem("event", "unsupported_type", "item type 'event' is not ingested"),
        DroppedItem("other", "unsupported_type", "item type 'something_new' is not ingested"),
    )
