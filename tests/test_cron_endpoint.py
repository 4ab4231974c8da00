"""The crons HTTP endpoint (`GET|POST /api/{project_id}/cron/{monitor_slug}[/{key}]/`)
through a real server, on both backends: what `curl` and other HTTP clients send arrives
on `ingest-monitors` normalised, answered 202 with no body; what cannot be a check-in is
refused with the reason and nothing is written."""

from __future__ import annotations

import base64
import gzip
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest
from arroyo.backends.kafka import KafkaPayload
from sqlalchemy import Engine

from tests.support.cron_requests import cron_url, curl
from tests.support.live_server import live_server
from tests.support.log_reader import read_messages
from tests.support.services import free_port
from tests.support.tenants import Tenant, make_tenant, set_key_active
from vigil.api.app import create_app
from vigil.config import Settings
from vigil.ingest.check_in_item import NIL_CHECK_IN_ID, routing_key
from vigil.ingest.cron_endpoint import MISSING_KEY
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import CheckInMessage, decode_monitor_message
from vigil.streams.topics import Topic

MONITORS = Topic.INGEST_MONITORS.value


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


# --- helpers ---------------------------------------------------------------------------


def basic(tenant: Tenant) -> str:
    return "Basic " + base64.b64encode(f"{tenant.key.public_key}:".encode()).decode()


def decoded(payload: KafkaPayload) -> CheckInMessage:
    message = decode_monitor_message(payload.value)
    assert isinstance(message, CheckInMessage)
    return message


def read_check_ins(stack: Settings, backend: LogBackend, expect: int) -> list[CheckInMessage]:
    return [decoded(m) for m in read_messages(stack, backend, MONITORS, expect)]


def assert_accepted(response: httpx.Response) -> None:
    assert (response.status_code, response.content) == (202, b""), response.text


def assert_refused(response: httpx.Response, status: int, reason: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert reason in response.json()["detail"]


# --- with curl, as the documentation shows ------------------------------------------------


def test_curl_get_in_progress_then_ok(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    before = time.time()
    url = cron_url(server, tenant, "nightly-backup")
    assert curl(f"{url}?status=in_progress") == (202, b"")
    assert curl(f"{url}?status=ok") == (202, b"")

    raws = read_messages(stack, log_backend, MONITORS, 2)
    # One monitor environment: one routing key, so the two arrive in order.
    assert {raw.key for raw in raws} == {routing_key(tenant.project.id, "nightly-backup", None)}
    messages = [decoded(raw) for raw in raws]
    assert [m.payload_json() for m in messages] == [
        {"check_in_id": NIL_CHECK_IN_ID, "monitor_slug": "nightly-backup", "status": status}
        for status in ("in_progress", "ok")
    ]
    for message in messages:
        assert message.project_id == tenant.project.id
        assert message.sdk == "relay-http"
        assert message.retention_days == 90
        assert before <= message.start_time <= time.time()


def test_curl_json_post_with_monitor_config(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    check_in_id = uuid.uuid4()
    body = {
        "monitor_slug": "ignored-the-path-wins",
        "status": "in_progress",
        "check_in_id": str(check_in_id),
        "environment": "staging",
        "monitor_config": {
            "schedule": {"type": "crontab", "value": "0 * * * *"},
            "checkin_margin": 1,
            "max_runtime": 20,
            "timezone": "America/Los_Angeles",
        },
        "contexts": {"trace": {"trace_id": uuid.uuid4().hex, "span_id": "abc"}},
    }
    status, answer = curl(
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        orjson.dumps(body).decode(),
        cron_url(server, tenant, "hourly-sync"),
    )
    assert (status, answer) == (202, b"")

    [raw] = read_messages(stack, log_backend, MONITORS, 1)
    assert raw.key == routing_key(tenant.project.id, "hourly-sync", "staging")
    assert decoded(raw).payload_json() == {
        "check_in_id": check_in_id.hex,
        "monitor_slug": "hourly-sync",
        "status": "in_progress",
        "environment": "staging",
        "monitor_config": body["monitor_config"],
        "contexts": {"trace": {"trace_id": body["contexts"]["trace"]["trace_id"]}},
    }


def test_curl_basic_auth_without_the_key_in_the_path(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    url = cron_url(server, tenant, "weekly-report", key=False)
    params = "?status=error&duration=12.5&environment=prod"
    assert curl("--user", f"{tenant.key.public_key}:", url + params) == (202, b"")
    # Without the trailing slash too.
    assert curl("--user", f"{tenant.key.public_key}:", url.rstrip("/") + params) == (202, b"")

    for message in read_check_ins(stack, log_backend, 2):
        assert message.payload_json() == {
            "check_in_id": NIL_CHECK_IN_ID,
            "monitor_slug": "weekly-report",
            "status": "error",
            "environment": "prod",
            "duration": 12.5,
        }


# --- every route and every place a key can be ----------------------------------------------


def test_every_route_and_key_form_is_accepted(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    public = tenant.key.public_key
    keyed = cron_url(server, tenant, "job")
    keyless = cron_url(server, tenant, "job", key=False)
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", keyed, {}),
        ("GET", keyed.rstrip("/"), {}),
        ("POST", keyed, {}),
        ("POST", keyed.rstrip("/"), {}),
        ("GET", keyless, {"headers": {"Authorization": basic(tenant)}}),
        ("POST", keyless.rstrip("/"), {"headers": {"Authorization": basic(tenant)}}),
        ("GET", keyless, {"headers": {"X-Sentry-Auth": f"Sentry sentry_key={public}"}}),
        ("GET", keyless.rstrip("/"), {"params": {"sentry_key": public}}),
        ("POST", keyless, {"params": {"sentry_key": public}}),
    ]
    for method, url, options in requests:
        params = {"status": "ok", **options.pop("params", {})}
        response = httpx.request(method, url, params=params, timeout=60, **options)
        assert_accepted(response)

    messages = read_check_ins(stack, log_backend, len(requests))
    assert {m.payload_json()["monitor_slug"] for m in messages} == {"job"}


def test_a_post_without_json_content_type_uses_the_query(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    response = httpx.post(
        cron_url(server, tenant, "form-job"),
        params={"status": "in_progress"},
        data={"status": "ok"},  # a form body is not a check-in
        timeout=60,
    )
    assert_accepted(response)
    [message] = read_check_ins(stack, log_backend, 1)
    assert message.payload_json()["status"] == "in_progress"


def test_a_json_content_type_without_a_body_uses_the_query(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    response = httpx.get(
        cron_url(server, tenant, "json-get"),
        params={"status": "ok"},
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert_accepted(response)
    [message] = read_check_ins(stack, log_backend, 1)
    assert message.payload_json()["status"] == "ok"


def test_sdk_is_the_clients_name_when_it_gives_one(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    public = tenant.key.public_key
    url = cron_url(server, tenant, "named", key=False)
    auth = f"Sentry sentry_key={public}, sentry_client=my-scheduler/1.0"
    assert_accepted(
        httpx.get(url, params={"status": "ok"}, headers={"X-Sentry-Auth": auth}, timeout=60)
    )
    # With the key in the path, the client can still name itself.
    assert_accepted(
        httpx.get(
            cron_url(server, tenant, "named"),
            params={"status": "ok", "sentry_client": "other-scheduler/2"},
            headers={"User-Agent": "curl/8.0"},
            timeout=60,
        )
    )
    sdks = {m.sdk for m in read_check_ins(stack, log_backend, 2)}
    assert sdks == {"my-scheduler/1.0", "other-scheduler/2"}


def test_json_body_under_content_encoding(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    body = gzip.compress(orjson.dumps({"status": "ok", "duration": 3}))
    response = httpx.post(
        cron_url(server, tenant, "gz"),
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8", "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert_accepted(response)
    [message] = read_check_ins(stack, log_backend, 1)
    assert message.payload_json()["duration"] == 3.0


# --- lenient where clients are sloppy --------------------------------------------------------


def test_lenient_values_are_normalised(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    check_in_id = uuid.uuid4()
    url = cron_url(server, tenant, "lenient")
    assert_accepted(
        httpx.get(
            url,
            params={"status": "missed", "check_in_id": str(check_in_id).upper()},
            timeout=60,
        )
    )
    assert_accepted(
        httpx.post(
            url,
            json={
                "status": "ok",
                "monitor_config": {
                    "schedule": {"type": "interval", "value": "1", "unit": "hour"},
                    "made_up": 1,
                },
            },
            timeout=60,
        )
    )
    by_status = {
        m.payload_json()["status"]: m.payload_json() for m in read_check_ins(stack, log_backend, 2)
    }
    assert by_status["unknown"]["check_in_id"] == check_in_id.hex
    assert by_status["ok"]["monitor_config"] == {
        "schedule": {"type": "interval", "value": 1, "unit": "hour"}
    }


# --- refused --------------------------------------------------------------------------------


BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("no status", {"params": {}}, "check-in has no status"),
    ("empty status", {"params": {"status": ""}}, "check-in has no status"),
    ("bad duration", {"params": {"status": "ok", "duration": "soon"}}, "duration must be"),
    ("nan duration", {"params": {"status": "ok", "duration": "nan"}}, "duration must be"),
    ("inf duration", {"params": {"status": "ok", "duration": "-1e999"}}, "duration must be"),
    ("bad id", {"params": {"status": "ok", "check_in_id": "42"}}, "check_in_id must be a UUID"),
    ("huge id", {"params": {"status": "ok", "check_in_id": "a" * 5000}}, "check_in_id must be"),
    ("huge duration", {"params": {"status": "ok", "duration": "9" * 5000}}, "duration must be"),
    (
        "long environment",
        {"params": {"status": "ok", "environment": "e" * 65}},
        "environment is longer than 64 characters",
    ),
    (
        "malformed JSON",
        {"content": b'{"status": ', "headers": {"Content-Type": "application/json"}},
        "request body is not valid JSON",
    ),
    ("JSON list", {"json": [{"status": "ok"}]}, "request body must be a JSON object"),
    ("JSON string", {"json": "ok"}, "request body must be a JSON object"),
    (
        "JSON null",
        {"content": b"null", "headers": {"Content-Type": "application/json"}},
        "request body must be a JSON object",
    ),
    ("JSON without status", {"json": {"duration": 1}}, "check-in has no status"),
    ("JSON bad duration", {"json": {"status": "ok", "duration": True}}, "duration must be"),
    ("JSON bad id", {"json": {"status": "ok", "check_in_id": 1}}, "check_in_id must be"),
    ("JSON bad environment", {"json": {"status": "ok", "environment": 1}}, "environment"),
    (
        "JSON nested too deeply",
        {
            "content": b'{"status":"ok","monitor_config":{"timezone":'
            + b"[" * 300
            + b"]" * 300
            + b"}}",
            "headers": {"Content-Type": "application/json"},
        },
        "nests too deeply",
    ),
    (
        "JSON nested deeper than the decoder goes",
        {
            "content": b'{"status":"ok","x":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
        "request body is not valid JSON",
    ),
    (
        "not gzip",
        {
            "content": b"{}",
            "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        },
        "not valid gzip data",
    ),
]


def test_bad_check_ins_get_400_with_the_reason_and_nothing_is_written(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    url = cron_url(server, tenant, "job")
    for name, options, reason in BAD_REQUESTS:
        response = httpx.post(url, timeout=60, **options)
        assert response.status_code == 400, name
        assert response.json()["detail"].startswith("invalid "), name
        assert reason in response.json()["detail"], name
        assert len(response.json()["detail"]) < 200, name  # never the input echoed whole
    # The same monitor environment, so the same partition: had any refused one been
    # written, it would be read before this one.
    assert_accepted(httpx.get(url, params={"status": "ok", "duration": "7"}, timeout=60))
    [message] = read_check_ins(stack, log_backend, 1)
    assert message.payload_json()["duration"] == 7.0


@pytest.mark.parametrize("slug", ["%20", "%20%20%20", "%09"])
def test_a_slug_empty_after_normalisation_gets_400(server: str, tenant: Tenant, slug: str) -> None:
    response = httpx.get(cron_url(server, tenant, slug), params={"status": "ok"}, timeout=60)
    assert_refused(response, 400, "monitor_slug is empty")


def test_a_nul_character_in_the_slug_or_environment_gets_400(server: str, tenant: Tenant) -> None:
    # PostgreSQL text cannot hold NUL: such a check-in could never be applied or reported.
    response = httpx.get(cron_url(server, tenant, "a%00b"), params={"status": "ok"}, timeout=60)
    assert_refused(response, 400, "monitor_slug contains a NUL character")
    response = httpx.get(
        cron_url(server, tenant, "job"),
        params={"status": "ok", "environment": "prod\x00"},
        timeout=60,
    )
    assert_refused(response, 400, "environment contains a NUL character")


def test_unknown_content_encoding_of_a_json_body_gets_415(server: str, tenant: Tenant) -> None:
    response = httpx.post(
        cron_url(server, tenant, "job"),
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
        timeout=60,
    )
    assert_refused(response, 415, "unsupported Content-Encoding 'zstd'")


# --- auth -----------------------------------------------------------------------------------


def test_missing_key_gets_401_with_how_to_send_one(server: str, tenant: Tenant) -> None:
    response = httpx.get(
        cron_url(server, tenant, "job", key=False), params={"status": "ok"}, timeout=60
    )
    assert response.status_code == 401
    assert response.json() == {"detail": MISSING_KEY}


def test_unknown_and_malformed_keys_get_401(server: str, tenant: Tenant) -> None:
    base = f"{server}/api/{tenant.project.id}/cron/job"
    unknown = httpx.get(f"{base}/{'0' * 32}/", params={"status": "ok"}, timeout=60)
    assert (unknown.status_code, unknown.json()) == (401, {"detail": "unknown DSN key"})
    malformed = httpx.get(f"{base}/not-a-key/", params={"status": "ok"}, timeout=60)
    assert_refused(malformed, 401, "malformed DSN key")
    bad_basic = httpx.get(
        f"{base}/", params={"status": "ok"}, headers={"Authorization": "Basic !!"}, timeout=60
    )
    assert_refused(bad_basic, 401, "Authorization: Basic")


def test_disabled_key_gets_403(engine: Engine, server: str, tenant: Tenant) -> None:
    set_key_active(engine, tenant.key, False)
    response = httpx.get(cron_url(server, tenant, "job"), params={"status": "ok"}, timeout=60)
    assert (response.status_code, response.json()) == (403, {"detail": "DSN key is disabled"})


def test_a_key_cannot_check_in_to_another_project(
    engine: Engine, server: str, tenant: Tenant
) -> None:
    other = make_tenant(engine, "other-org")
    for url, headers in (
        (f"{server}/api/{other.project.id}/cron/job/{tenant.key.public_key}/", {}),
        (f"{server}/api/{other.project.id}/cron/job/", {"Authorization": basic(tenant)}),
    ):
        response = httpx.get(url, params={"status": "ok"}, headers=headers, timeout=60)
        assert_refused(response, 403, "DSN key belongs to another project")


def test_auth_is_checked_before_the_check_in(server: str, tenant: Tenant) -> None:
    response = httpx.get(f"{server}/api/{tenant.project.id}/cron/job/", timeout=60)
    assert response.status_code == 401


# --- hostile input --------------------------------------------------------------------------


def test_hostile_slugs_are_cut_and_passed_on_as_sent(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    slugs = {
        "h" * 5000: "h" * 50,
        "ñandú-☃-ジョブ": "ñandú-☃-ジョブ",
        "a.b!c$d(e)*f+g,h;i=j@k~l": "a.b!c$d(e)*f+g,h;i=j@k~l",
        "tab\there\x01ctl": "tab\there\x01ctl",
    }
    for sent in slugs:
        url = cron_url(server, tenant, quote(sent, safe=""))
        assert_accepted(httpx.get(url, params={"status": "ok"}, timeout=60))
    arrived = {m.payload_json()["monitor_slug"] for m in read_check_ins(stack, log_backend, 4)}
    assert arrived == set(slugs.values())


def test_absurd_but_finite_durations_are_for_the_consumer_to_judge(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    url = cron_url(server, tenant, "slow")
    for duration in ("-5", "1e300"):
        assert_accepted(httpx.get(url, params={"status": "ok", "duration": duration}, timeout=60))
    durations = [m.payload_json()["duration"] for m in read_check_ins(stack, log_backend, 2)]
    assert durations == [-5.0, 1e300]


LIMIT = 64 * 1024


@pytest.fixture
def small_server(stack: Settings) -> Iterator[str]:
    with live_server(create_app(replace(stack, max_message_bytes=LIMIT))) as url:
        yield url


def test_body_over_the_limit_gets_413(small_server: str, tenant: Tenant) -> None:
    response = httpx.post(
        cron_url(small_server, tenant, "big"),
        json={"status": "ok", "padding": "x" * LIMIT},
        timeout=60,
    )
    assert (response.status_code, response.json()) == (
        413,
        {"detail": f"request body exceeds the limit of {LIMIT} bytes"},
    )


def test_gzip_bomb_gets_413(small_server: str, tenant: Tenant) -> None:
    bomb = gzip.compress(orjson.dumps({"status": "ok", "padding": "0" * 100 * LIMIT}))
    assert len(bomb) < LIMIT
    response = httpx.post(
        cron_url(small_server, tenant, "bomb"),
        content=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert (response.status_code, response.json()) == (
        413,
        {"detail": f"decompressed request body exceeds the limit of {LIMIT} bytes"},
    )


def test_check_in_message_over_the_limit_gets_413(small_server: str, tenant: Tenant) -> None:
    # The body fits; the message on the log (a kept field, and its envelope) does not.
    body = orjson.dumps({"status": "ok", "monitor_config": {"timezone": "x" * (LIMIT - 100)}})
    assert len(body) <= LIMIT
    response = httpx.post(
        cron_url(small_server, tenant, "big"),
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert_refused(response, 413, "exceeds the limit of")


# --- the log ----------------------------------------------------------------------------------


def test_log_unavailable_gets_503(stack: Settings, engine: Engine, backend_name: str) -> None:
    if backend_name != "kafka":
        pytest.skip("an unreachable broker is a Kafka situation")
    tenant = make_tenant(engine, "acme")
    down = replace(stack, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with live_server(create_app(down)) as server:
        response = httpx.get(cron_url(server, tenant, "down"), params={"status": "ok"}, timeout=60)
    assert (response.status_code, response.json()) == (
        503,
        {"detail": "the log is unavailable; retry later"},
    )


def test_many_check_ins_are_never_answered_429(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    url = cron_url(server, tenant, "chatty")
    with httpx.Client(timeout=60) as client:
        for _ in range(80):
            assert_accepted(client.get(url, params={"status": "ok"}))
    assert len(read_check_ins(stack, log_backend, 80)) == 80
